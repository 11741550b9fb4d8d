package sink_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

func TestTemplate(t *testing.T) {
	a := sink.Activation{
		ID: "a1", Type: sink.EventTriggered, Name: "big_order", ProfileID: "p1",
		Timestamp: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC),
		Profile:   json.RawMessage(`{"traits":{"email":"ada@example.com","score":1e6,"ltv":12.50},"audiences":["vip","new"]}`),
		Event:     json.RawMessage(`{"event":"Order Completed","properties":{"revenue":612.5}}`),
	}
	for _, tc := range []struct {
		name, text, def, want, wantErr string
		permanent                      bool
	}{
		{name: "fields", text: `{{.ID}} {{.Type}} {{.Name}} {{.ProfileID}} {{.Timestamp.Format "2006-01-02"}}`, want: "a1 event_triggered big_order p1 2026-05-06"},
		{name: "profile and event", text: `{{.ProfileMap.traits.email}} {{.EventMap.event}} {{.EventMap.properties.revenue}}`, want: "ada@example.com Order Completed 612.5"},
		{name: "numbers keep their text", text: `{{.ProfileMap.traits.score}} {{.ProfileMap.traits.ltv}}`, want: "1e6 12.50"},
		{name: "json", text: `{{json .ProfileMap.audiences}} {{json .Name}} {{json .ProfileMap.traits.email}}`, want: `["vip","new"] "big_order" "ada@example.com"`},
		{name: "raw JSON", text: `{"profile": {{.Profile}}, "event": {{json .Event}}}`,
			want: `{"profile": {"traits":{"email":"ada@example.com","score":1e6,"ltv":12.50},"audiences":["vip","new"]}, "event": {"event":"Order Completed","properties":{"revenue":612.5}}}`},
		{name: "range", text: `{{range $i, $a := .ProfileMap.audiences}}{{if $i}},{{end}}{{$a}}{{end}}`, want: "vip,new"},
		{name: "missing key", text: `[{{.ProfileMap.traits.phone}}]`, want: "[<no value>]"},
		{name: "guarded", text: `[{{with .ProfileMap.traits.phone}}{{.}}{{end}}]`, want: "[]"},
		{name: "the default when empty", def: `default {{.ID}}`, want: "default a1"},
		{name: "unparsable", text: `{{.ID`, wantErr: "parsing template: template: t:1: unclosed action"},
		{name: "failing", text: `{{index .ProfileMap.audiences 5}}`, wantErr: "rendering t: template: t:1:2: executing", permanent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := sink.ParseTemplate("t", tc.text, tc.def)
			var got []byte
			if err == nil {
				got, err = tmpl.Render(a)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || sink.IsPermanent(err) != tc.permanent {
					t.Fatalf("error %v, want one containing %q, permanent %v", err, tc.wantErr, tc.permanent)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("rendered %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTemplateNoEvent(t *testing.T) {
	tmpl, err := sink.ParseTemplate("t", `{{.Event}} {{json .Event}} {{with .EventMap}}has{{else}}none{{end}}`, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render(sink.Activation{ID: "a"})
	if err != nil || string(got) != "null null none" {
		t.Errorf("Render = %q, %v; want %q", got, err, "null null none")
	}
}

func TestTemplateBadProfileIsPermanent(t *testing.T) {
	tmpl, err := sink.ParseTemplate("t", "{{.ID}}", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render(sink.Activation{ID: "a", Profile: json.RawMessage(`[1,2]`)})
	if err == nil || !sink.IsPermanent(err) || !strings.Contains(err.Error(), "decoding the profile") {
		t.Errorf("Render with a profile that is no object: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"30", 30 * time.Second, true},
		{" 5 ", 5 * time.Second, true},
		{"-1", 0, false},
		{"99999999999", 24 * time.Hour, true},
		{now.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0, true},
		{"tomorrow", 0, false},
		{"1.5", 0, false},
	} {
		got, ok := sink.ParseRetryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCheckHTTPResponse(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		status     int
		retryAfter string
		body       string
		want       string // ok, retry, permanent
		after      time.Duration
		msg        string
	}{
		{200, "", "", "ok", 0, ""},
		{201, "", "", "ok", 0, ""},
		{409, "", "duplicate", "ok", 0, ""},
		{429, "12", "", "retry", 12 * time.Second, "HTTP 429 Too Many Requests"},
		{503, "3", "down for maintenance", "retry", 3 * time.Second, "HTTP 503 Service Unavailable: down for maintenance"},
		{503, "", "", "retry", 0, "HTTP 503 Service Unavailable"},
		{500, "", "boom\n  trace", "retry", 0, "HTTP 500 Internal Server Error: boom trace"},
		{408, "", "", "retry", 0, "HTTP 408 Request Timeout"},
		{400, "", `{"error":"bad"}`, "permanent", 0, `HTTP 400 Bad Request: {"error":"bad"}`},
		{404, "", "", "permanent", 0, "HTTP 404 Not Found"},
		{301, "", "", "permanent", 0, "HTTP 301 Moved Permanently"},
		{413, "", strings.Repeat("x", 2000), "permanent", 0, "HTTP 413 Request Entity Too Large: " + strings.Repeat("x", 512)},
	} {
		resp := &http.Response{
			StatusCode: tc.status, Status: strconv.Itoa(tc.status) + " " + http.StatusText(tc.status),
			Header: http.Header{}, Body: http.NoBody,
		}
		if tc.retryAfter != "" {
			resp.Header.Set("Retry-After", tc.retryAfter)
		}
		if tc.body != "" {
			resp.Body = readCloser{strings.NewReader(tc.body)}
		}
		err := sink.CheckHTTPResponse(resp, now)
		got := "retry"
		switch {
		case err == nil:
			got = "ok"
		case sink.IsPermanent(err):
			got = "permanent"
		}
		after, _ := sink.RetryAfterOf(err)
		if got != tc.want || after != tc.after || (err != nil && err.Error() != tc.msg) {
			t.Errorf("HTTP %d: %s, Retry-After %v, %v; want %s, %v, %q", tc.status, got, after, err, tc.want, tc.after, tc.msg)
		}
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

func TestCheckFields(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dest    config.Destination
		wantErr string
	}{
		{"only its own", config.Destination{Name: "n", Type: "webhook", URL: "u", Audiences: []string{"a"}, Delivery: config.Delivery{BatchSize: 3}}, ""},
		{"another type's", config.Destination{Name: "n", Type: "webhook", URL: "u", DSNEnv: "PG"}, "dsn_env is not used by webhook destinations (they use url, secret_env)"},
		{"a list", config.Destination{Name: "n", Type: "webhook", Brokers: []string{"k"}}, "brokers is not used by webhook destinations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sink.CheckFields(tc.dest, "url", "secret_env")
			if (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("CheckFields: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
