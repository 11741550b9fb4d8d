package api_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/api"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/definitions"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestFeaturesAPI(t *testing.T) {
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
	f := api.NewFeatures(defs, nil)
	if err := f.Seed(ctx, []config.Feature{{Name: "orders_7d", Event: "Order Completed", Agg: "count", Window: "7d"}}); err != nil {
		t.Fatal(err)
	}
	f.Register(srv, profiles)
	profiles.Register(srv)
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
		{"GET", "/v1/features", "", "", 401, "admin token"},
		{"GET", "/v1/features", "tok", "", 200, `"name":"orders_7d"`},
		{"GET", "/v1/features", "view", "", 403, "needs the admin token"},
		{"POST", "/v1/features", "view", `{"name":"x","event":"x","agg":"count","window":"7d"}`, 403, "needs the admin token"},
		{"GET", "/v1/whoami", "view", "", 200, `"role":"viewer"`},
		{"GET", "/v1/whoami", "tok", "", 200, `"role":"admin"`},
		{"GET", "/v1/whoami", "nope", "", 401, "admin token"},
		{"POST", "/v1/features", "tok", `{"name":"revenue_30d","event":"Order Completed","agg":"sum","property":"revenue","window":"30d"}`, 201, `"name":"revenue_30d"`},
		{"GET", "/v1/features/revenue_30d", "tok", "", 200, `"agg":"sum"`},
		{"PUT", "/v1/features/revenue_30d", "tok", `{"event":"Order Completed","agg":"max","property":"revenue","window":"30d"}`, 200, `"agg":"max"`},
		{"POST", "/v1/features", "tok", `{"name":"bad","event":"x","agg":"sum","window":"30d"}`, 400, "features[0].property: is required for agg sum"},
		{"POST", "/v1/features", "tok", `{"name":"bad","event":"x","agg":"count","window":"400d"}`, 400, "at most 365d"},
		{"POST", "/v1/features", "tok", `{"name":"bad","event":"x","agg":"count","window":"7d","colour":"red"}`, 400, `unknown field \"colour\"`},
		{"PUT", "/v1/features/a", "tok", `{"name":"b","event":"x","agg":"count","window":"7d"}`, 400, "does not match"},
		{"DELETE", "/v1/features/revenue_30d", "tok", "", 204, ""},
		{"GET", "/v1/features/revenue_30d", "tok", "", 404, "no feature named"},
		{"DELETE", "/v1/features/nope", "tok", "", 404, "no feature named"},
	}
	for _, tt := range tests {
		code, body := do(tt.method, tt.path, tt.token, tt.body)
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s: %d %s, want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.want)
		}
	}
}
