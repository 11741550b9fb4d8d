package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera-cdp/tessera/api"
	"github.com/tessera-cdp/tessera/console"
)

// TestRegisterLeavesOtherRoutesAlone: the console serves / and /assets/,
// and every other path still reaches its own route or the API's JSON 404.
func TestRegisterLeavesOtherRoutesAlone(t *testing.T) {
	srv := api.New(api.Options{Registry: prometheus.NewRegistry()})
	srv.Handle("GET /v1/whoami", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"role":"admin"}`)
	}))
	console.Register(srv.Handle)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	for _, tc := range []struct {
		path, wantType, wantBody string
		status                   int
	}{
		{"/", "text/html", `<script type="module" src="/assets/app.js">`, 200},
		{"/assets/app.js", "text/javascript", "import", 200},
		{"/assets/style.css", "text/css", ":root", 200},
		{"/assets/favicon.svg", "image/svg+xml", "<svg", 200},
		{"/assets/no-such.js", "", "", 404},
		{"/v1/whoami", "application/json", `"role"`, 200},
		{"/v1/no-such-route", "application/json", `"error":"no route for GET /v1/no-such-route"`, 404},
		{"/internal/v1/stores", "application/json", `"error"`, 404},
		{"/healthz", "application/json", `"ok"`, 200},
		{"/metrics", "text/plain", "", 200},
		{"/customers", "application/json", `"error"`, 404}, // the console routes with #/… only
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(ts.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Errorf("Content-Type %q, want %s…", ct, tc.wantType)
			}
			if !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("body does not contain %q:\n%.300s", tc.wantBody, body)
			}
			isConsole := tc.path == "/" || strings.HasPrefix(tc.path, "/assets/")
			if csp := resp.Header.Get("Content-Security-Policy"); isConsole != (csp != "") {
				t.Errorf("Content-Security-Policy %q on %s", csp, tc.path)
			}
		})
	}
}
