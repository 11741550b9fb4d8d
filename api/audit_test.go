package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAuditTarget: the target is the route's path values, else the name of the
// definition in the body; the handler still reads the whole body.
func TestAuditTarget(t *testing.T) {
	big := `{"rule":"` + strings.Repeat("x", auditPeekBytes) + `","name":"late"}`
	tests := []struct {
		pattern, method, path, body string
		want                        string
	}{
		{"DELETE /v1/audiences/{name}", "DELETE", "/v1/audiences/hot_buyers", "", "name=hot_buyers"},
		{"POST /v1/destinations/{name}/replay", "POST", "/v1/destinations/crm/replay", `{"all":true}`, "name=crm"},
		{"POST /v1/audiences", "POST", "/v1/audiences", `{"name":"vip","rule":"true"}`, "name=vip"},
		{"POST /v1/regulations", "POST", "/v1/regulations", `{"type":"delete","identifiers":[{"type":"email","value":"a@b.c"}]}`, ""},
		{"POST /v1/models/fit", "POST", "/v1/models/fit", `not json`, ""},
		{"POST /v1/audiences", "POST", "/v1/audiences", big, ""}, // the name lies past what is read
	}
	for _, tt := range tests {
		mux := http.NewServeMux()
		var got, read string
		mux.HandleFunc(tt.pattern, func(w http.ResponseWriter, r *http.Request) {
			got = target(r)
			b, _ := io.ReadAll(r.Body)
			read = string(b)
		})
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body)))
		if got != tt.want {
			t.Errorf("%s %s: target %q, want %q", tt.method, tt.path, got, tt.want)
		}
		if read != tt.body {
			t.Errorf("%s %s: the handler read %d bytes of the %d-byte body", tt.method, tt.path, len(read), len(tt.body))
		}
	}
}
