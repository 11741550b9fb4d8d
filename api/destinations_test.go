package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/api"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/definitions"
)

func TestDestinationsAPI(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defs, err := definitions.Open(ctx, "app", nil, kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer defs.Close()
	srv := api.New(api.Options{Addr: "127.0.0.1:0"})
	addr, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	profiles := api.NewProfiles(nil, api.Tokens{Admin: "tok", Viewer: "view"})
	// The check stands for building the sink: a webhook needs a URL.
	check := func(d config.Destination) error {
		if d.Type == "webhook" && d.URL == "" {
			return errors.New("destination " + d.Name + ": url is required for a webhook")
		}
		return nil
	}
	status := func(name string) (any, bool) {
		if name == "crm" {
			return map[string]any{"state": "connected", "sent": 7}, true
		}
		return nil, false
	}
	d := api.NewDestinations(defs, check, status)
	if err := d.Seed(ctx, []config.Destination{{Name: "crm", Type: "webhook", URL: "http://crm.example/hook", SecretEnv: "CRM_SECRET"}}); err != nil {
		t.Fatal(err)
	}
	d.Register(srv, profiles)
	api.NewAudiences(defs, nil, nil, nil, "tok").Register(srv, profiles)
	base := "http://" + addr.String()
	do := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		method, path, token, body string
		code                      int
		want                      string
	}{
		{"GET", "/v1/destinations", "", "", 401, "admin token"},
		{"GET", "/v1/destinations", "view", "", 403, "needs the admin token"},
		{"GET", "/v1/destinations", "tok", "", 200, `"secret_env":"CRM_SECRET"`},
		{"GET", "/v1/destinations/crm", "tok", "", 200, `"status":{"sent":7,"state":"connected"}`},
		{"POST", "/v1/destinations", "tok", `{"name":"ops","type":"slack","url":"http://slack.example/x"}`, 201, `"type":"slack"`},
		{"GET", "/v1/destinations/ops", "tok", "", 200, `"url":"http://slack.example/x"`},
		{"PUT", "/v1/destinations/ops", "tok", `{"type":"slack","url":"http://slack.example/y","types":["audience_entered"]}`, 200, `"types":["audience_entered"]`},
		{"POST", "/v1/destinations", "tok", `{"name":"x","type":"pigeon"}`, 400, "destinations[0].type: must be one of"},
		{"POST", "/v1/destinations", "tok", `{"name":"x","type":"webhook"}`, 400, "url is required for a webhook"},
		{"POST", "/v1/destinations", "tok", `{"name":"x","type":"webhook","secret":"hunter2"}`, 400, `unknown field \"secret\"`},
		{"POST", "/v1/destinations", "tok", `{"name":"x","type":"webhook","types":["sent"]}`, 400, "destinations[0].types[0]"},
		{"PUT", "/v1/destinations/a", "tok", `{"name":"b","type":"file","path":"/tmp/x"}`, 400, "does not match"},
		{"POST", "/v1/destinations", "view", `{"name":"y","type":"file","path":"/tmp/y"}`, 403, "needs the admin token"},
		{"POST", "/v1/audiences", "tok", `{"name":"vip","rule":"true","destinations":["ops","nope"]}`, 400, `destinations[1]: no destination named \"nope\"`},
		{"POST", "/v1/audiences", "tok", `{"name":"vip","rule":"true","destinations":["ops","crm"]}`, 201, `"destinations":["ops","crm"]`},
		{"DELETE", "/v1/destinations/ops", "tok", "", 204, ""},
		{"GET", "/v1/destinations/ops", "tok", "", 404, "no destination named"},
		{"DELETE", "/v1/destinations/ops", "tok", "", 404, "no destination named"},
	}
	for _, tt := range tests {
		code, body := do(tt.method, tt.path, tt.token, tt.body)
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s %s: %d %s, want %d containing %q", tt.method, tt.path, tt.body, code, body, tt.code, tt.want)
		}
	}
	var names []string
	for _, dest := range d.Definitions() {
		names = append(names, dest.Name)
	}
	if strings.Join(names, ",") != "crm" {
		t.Errorf("definitions after the changes: %v, want [crm]", names)
	}
}
