package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/api"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/kafkaconn"
)

// access is who may use a route.
type access int

const (
	// public: anyone, with or without credentials (health, metrics, the
	// console's static files).
	public access = iota
	// ingest: a write key as HTTP Basic only; no bearer token of any kind.
	ingestOnly
	// viewer: the viewer or the admin token.
	viewerOrAdmin
	// admin: the admin token only; the viewer gets 403.
	adminOnly
	// internal: instance-to-instance routes under /internal/, admin token only.
	internal
)

func (a access) String() string {
	return [...]string{"public", "ingest", "viewer", "admin", "internal"}[a]
}

// routeAccess classifies every route tessera serves. A route missing here fails
// TestAccessEveryRoute: whoever adds a route decides here who may use it.
var routeAccess = map[string]access{
	// Health and metrics (mounted by api.New).
	"GET /healthz": public,
	"GET /readyz":  public,
	"GET /metrics": public,
	// The console's static files.
	"GET /{$}":     public,
	"GET /assets/": public,

	// Segment's tracking API (every method, answered 405 but for POST).
	"/v1/identify": ingestOnly,
	"/v1/track":    ingestOnly,
	"/v1/page":     ingestOnly,
	"/v1/screen":   ingestOnly,
	"/v1/group":    ingestOnly,
	"/v1/alias":    ingestOnly,
	"/v1/batch":    ingestOnly,
	"/v1/import":   ingestOnly,

	// What a support agent reads.
	"GET /v1/whoami":                       viewerOrAdmin,
	"GET /v1/profiles/{ident}":             viewerOrAdmin,
	"GET /v1/profiles/{ident}/events":      viewerOrAdmin,
	"GET /v1/profiles/{ident}/predictions": viewerOrAdmin,
	"GET /v1/audience-sizes":               viewerOrAdmin,
	"GET /v1/catalog":                      viewerOrAdmin,
	"GET /v1/overview":                     viewerOrAdmin,
	"GET /v1/quality":                      viewerOrAdmin,
	"GET /v1/insights":                     viewerOrAdmin,

	// Administration.
	"GET /v1/models":                           adminOnly,
	"POST /v1/models/fit":                      adminOnly,
	"GET /v1/features":                         adminOnly,
	"GET /v1/features/{name}":                  adminOnly,
	"POST /v1/features":                        adminOnly,
	"PUT /v1/features/{name}":                  adminOnly,
	"DELETE /v1/features/{name}":               adminOnly,
	"GET /v1/audiences":                        adminOnly,
	"GET /v1/audiences/{name}":                 adminOnly,
	"POST /v1/audiences":                       adminOnly,
	"PUT /v1/audiences/{name}":                 adminOnly,
	"DELETE /v1/audiences/{name}":              adminOnly,
	"POST /v1/audiences/preview":               adminOnly,
	"POST /v1/destinations":                    adminOnly,
	"PUT /v1/destinations/{name}":              adminOnly,
	"DELETE /v1/destinations/{name}":           adminOnly,
	"GET /v1/destinations/{name}":              adminOnly,
	"GET /v1/destinations/{name}/status":       adminOnly,
	"POST /v1/regulations":                     adminOnly,
	"GET /v1/regulations":                      adminOnly,
	"GET /v1/regulations/{id}":                 adminOnly,
	"GET /v1/destinations":                     adminOnly,
	"GET /v1/destinations/{name}/deliveries":   adminOnly,
	"GET /v1/destinations/{name}/dead-letters": adminOnly,
	"POST /v1/destinations/{name}/replay":      adminOnly,

	// Between instances.
	"GET /internal/v1/routes":                       internal,
	"GET /internal/v1/stores/{group}/{store}/{key}": internal,
	"GET /internal/v1/features/{profile}":           internal,
	"GET /internal/v1/timeline/{profile}":           internal,
	"GET /internal/v1/histogram":                    internal,
	"GET /internal/v1/insights":                     internal,
	"GET /internal/v1/audience-sizes":               internal,
	"GET /internal/v1/catalog/sample":               internal,
	"POST /internal/v1/audiences/preview":           internal,
}

// pathValues are plausible values for path parameters, by name; others get "x".
var pathValues = map[string]string{
	"ident":   "user_id:access-test",
	"name":    "no_such_thing",
	"id":      "no-such-id",
	"profile": "no-such-profile",
	"group":   "0",
	"store":   "identities",
	"key":     "user_id:access-test",
}

// ingestBodies are valid events for each tracking path, so that a write key
// gets 200 rather than a validation error.
var ingestBodies = map[string]string{
	"/v1/identify": `{"userId":"access-1","traits":{"plan":"pro"}}`,
	"/v1/track":    `{"userId":"access-1","event":"Signed Up"}`,
	"/v1/page":     `{"userId":"access-1","name":"Home"}`,
	"/v1/screen":   `{"userId":"access-1","name":"Home"}`,
	"/v1/group":    `{"userId":"access-1","groupId":"g1"}`,
	"/v1/alias":    `{"userId":"access-1","previousId":"anon-1"}`,
	"/v1/batch":    `{"batch":[{"type":"track","userId":"access-1","event":"Signed Up"}]}`,
	"/v1/import":   `{"batch":[{"type":"track","userId":"access-1","event":"Signed Up"}]}`,
}

var paramPattern = regexp.MustCompile(`\{([^}]*)\}`)

// concrete turns a route pattern into a method and a path to request.
func concrete(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = http.MethodPost, pattern // the tracking API
	}
	path = paramPattern.ReplaceAllStringFunc(path, func(p string) string {
		name := strings.TrimSuffix(strings.Trim(p, "{}"), "...")
		if name == "$" {
			return ""
		}
		if v, ok := pathValues[name]; ok {
			return v
		}
		return "x"
	})
	return method, path
}

// credential is what a request presents.
type credential struct {
	name   string
	header string // the Authorization header; "" none
}

const (
	accessAdmin  = "admin-token-for-access-test"
	accessViewer = "viewer-token-for-access-test"
	accessKey    = "write-key-for-access-test"
)

// TestAccessEveryRoute starts the whole hub in-process (the embedded broker
// guarded by SCRAM-SHA-512, a destination, the console) and tries every route
// it serves with no credentials, a write key as Bearer and as Basic, the viewer
// token and the admin token, checking each answer against routeAccess. Then it
// reads the audit topic: each non-GET admin request left a record naming the
// role, never a token.
func TestAccessEveryRoute(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	t.Setenv(config.EnvAdminToken, accessAdmin)
	t.Setenv(config.EnvViewerToken, accessViewer)
	t.Setenv(config.EnvWriteKeys, accessKey)
	t.Setenv("ACCESS_HOOK_SECRET", "hook-secret")
	t.Setenv("ACCESS_KAFKA_PASSWORD", "kafka-secret")
	dir := t.TempDir()
	file := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(file, []byte(`
log: {level: debug}
kafka:
  partitions: 2
  sasl: {mechanism: SCRAM-SHA-512, username: hub, password_env: ACCESS_KAFKA_PASSWORD}
destinations:
  - {name: hook, type: webhook, url: `+hook.URL+`, secret_env: ACCESS_HOOK_SECRET}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(file, config.Overrides{Data: filepath.Join(dir, "data"), HTTPListen: "127.0.0.1:0", BrokerListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	logs := captureStderr(t)
	base, brokerAddr := startHub(t, cfg, dir, "http")

	// The route inventory: what the server mounted, plus what api.New mounts itself.
	var inv struct{ Routes []string }
	code, body := getAuth(t, base+"/internal/v1/routes", accessAdmin)
	if code != 200 || json.Unmarshal([]byte(body), &inv) != nil || len(inv.Routes) == 0 {
		t.Fatalf("route inventory: %d %s", code, body)
	}
	routes := append([]string{"GET /healthz", "GET /readyz", "GET /metrics"}, inv.Routes...)
	for _, want := range []string{"/v1/track", "GET /v1/profiles/{ident}", "GET /v1/destinations"} {
		if !slices.Contains(routes, want) {
			t.Fatalf("the inventory lacks %q: %v", want, routes)
		}
	}

	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(accessKey+":"))
	creds := []credential{
		{"no credentials", ""},
		{"write key as Bearer", "Bearer " + accessKey},
		{"write key as Basic", basic},
		{"viewer token", "Bearer " + accessViewer},
		{"admin token", "Bearer " + accessAdmin},
	}
	client := &http.Client{Timeout: 60 * time.Second}
	var adminActions int // non-GET requests to admin routes, audited
	for pattern := range routeAccess {
		if !slices.Contains(routes, pattern) {
			t.Errorf("routeAccess classifies %q, which tessera does not serve: remove it", pattern)
		}
	}
	for _, pattern := range routes {
		class, ok := routeAccess[pattern]
		if !ok {
			t.Errorf("route %q is not classified: add it to routeAccess in access_test.go (public, ingest, viewer, admin or internal)", pattern)
			continue
		}
		method, path := concrete(pattern)
		for _, c := range creds {
			t.Run(pattern+"/"+c.name, func(t *testing.T) {
				reqBody := ""
				switch {
				case class == ingestOnly:
					reqBody = ingestBodies[path]
				case method == http.MethodPost || method == http.MethodPut:
					reqBody = "{}"
				}
				req, err := http.NewRequest(method, base+path, strings.NewReader(reqBody))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				if c.header != "" {
					req.Header.Set("Authorization", c.header)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got := resp.StatusCode
				want, allowed := expected(class, c)
				switch {
				case allowed && (got == 401 || got == 403):
					t.Errorf("%s %s with %s: %d, want access (%s route): %s", method, path, c.name, got, class, b)
				case allowed && (got == 404 && strings.Contains(string(b), "no route") || got == 405):
					t.Errorf("%s %s with %s: %d, the route is not served as mounted: %s", method, path, c.name, got, b)
				case want != 0 && got != want:
					t.Errorf("%s %s with %s: %d, want %d (%s route): %s", method, path, c.name, got, want, class, b)
				}
				for _, secret := range []string{accessAdmin, accessViewer, accessKey} {
					if strings.Contains(string(b), secret) {
						t.Errorf("%s %s with %s: the answer shows a credential: %s", method, path, c.name, b)
					}
				}
			})
			if (class == adminOnly) && method != http.MethodGet {
				adminActions++
			}
		}
	}

	// The audit topic has one record per admin action, with the role that tried.
	conn, err := kafkaconn.New([]string{brokerAddr}, cfg.Kafka, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	recs := readAudit(t, conn, cfg.App, adminActions)
	byWho := map[api.Role]int{}
	for _, r := range recs {
		byWho[r.Who]++
		if r.Time.IsZero() || r.Route == "" || r.Method == "" || r.Status == 0 || r.Remote == "" {
			t.Errorf("incomplete audit record %+v", r)
		}
		if r.Who == "viewer" && r.Status != 403 || r.Who == "anonymous" && r.Status != 401 {
			t.Errorf("audit record %+v: a refused attempt with the wrong status", r)
		}
		if r.Route == "DELETE /v1/audiences/{name}" && r.Target != "name=no_such_thing" {
			t.Errorf("audit record %+v: target %q, want name=no_such_thing", r, r.Target)
		}
	}
	// Nothing logged a credential, at any level.
	logged := logs()
	if !strings.Contains(logged, "tessera running") {
		t.Fatalf("the log capture missed the hub's log:\n%s", logged)
	}
	for _, secret := range []string{accessAdmin, accessViewer, accessKey, "kafka-secret", "hook-secret"} {
		if strings.Contains(logged, secret) {
			t.Errorf("the log shows the secret %q", secret)
		}
	}
	perCred := adminActions / len(creds)
	if byWho["admin"] != perCred || byWho["viewer"] != perCred || byWho["anonymous"] != 3*perCred {
		t.Errorf("audit records by role %v, want admin %d, viewer %d, anonymous %d", byWho, perCred, perCred, 3*perCred)
	}
}

// captureStderr copies what is written to os.Stderr from now on (where run
// logs) to the test's stderr and to a buffer, which the returned func reads.
func captureStderr(t *testing.T) func() string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	orig := os.Stderr
	os.Stderr = w
	var mu sync.Mutex
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		chunk := make([]byte, 32<<10)
		for {
			n, err := r.Read(chunk)
			mu.Lock()
			buf.Write(chunk[:n])
			mu.Unlock()
			orig.Write(chunk[:n])
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		os.Stderr = orig
		w.Close()
		<-done
	})
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
}

// expected tells what a credential gets on a route of class: allowed (any
// answer but 401 and 403), or the status it must get (0: any).
func expected(class access, c credential) (want int, allowed bool) {
	switch class {
	case public:
		return 0, true
	case ingestOnly:
		if strings.HasPrefix(c.header, "Basic ") {
			return http.StatusOK, true
		}
		return http.StatusUnauthorized, false
	}
	switch c.header {
	case "Bearer " + accessAdmin:
		return 0, true
	case "Bearer " + accessViewer:
		if class == viewerOrAdmin {
			return 0, true
		}
		return http.StatusForbidden, false
	}
	return http.StatusUnauthorized, false
}

// startHub runs the hub in-process until the test ends, and returns its base
// URL (scheme "http" or "https") and the embedded broker's address.
func startHub(t *testing.T, cfg config.Config, dir, scheme string) (base, brokerAddr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, cfg, dir, pw)
		pw.CloseWithError(fmt.Errorf("run returned: %v", err))
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("run did not return within a minute of its context ending")
		}
	})
	lines := bufio.NewScanner(pr)
	for (base == "" || brokerAddr == "") && lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "embedded broker listening on "); ok {
			brokerAddr = a
		}
		if a, ok := strings.CutPrefix(lines.Text(), "http listening on "); ok {
			base = scheme + "://" + a
		}
	}
	if base == "" || brokerAddr == "" {
		t.Fatalf("run never printed its addresses: %v", lines.Err())
	}
	go io.Copy(io.Discard, pr)
	if scheme == "http" {
		awaitStatus(t, base+"/readyz", 200)
	}
	return base, brokerAddr
}

// readAudit reads n records of app's audit topic.
func readAudit(t *testing.T, conn *kafkaconn.Conn, app string, n int) []api.AuditRecord {
	t.Helper()
	cl, err := kgo.NewClient(conn.Opts(kgo.ConsumeTopics(api.AuditTopic(app)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []api.AuditRecord
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d audit records", len(out), n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("reading the audit topic: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			for _, secret := range []string{accessAdmin, accessViewer, accessKey} {
				if strings.Contains(string(r.Value), secret) {
					t.Errorf("audit record %s holds a credential", r.Value)
				}
			}
			var rec api.AuditRecord
			if err := json.Unmarshal(r.Value, &rec); err != nil {
				t.Fatalf("audit record %q: %v", r.Value, err)
			}
			out = append(out, rec)
		})
	}
	return out
}
