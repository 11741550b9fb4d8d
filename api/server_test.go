package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// start starts a server on a free local port, shut down when the test ends, and returns
// its base URL.
func start(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	opts.Addr = "127.0.0.1:0"
	s := New(opts)
	addr, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s, "http://" + addr.String()
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(body)}
}

// expectJSON checks a response's status and that its body is the JSON object want.
func expectJSON(t *testing.T, r response, status int, want map[string]string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if len(got) != len(want) {
		t.Errorf("body %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("body %v, want %v", got, want)
			break
		}
	}
}

func TestHealthz(t *testing.T) {
	_, url := start(t, Options{Ready: func() error { return errors.New("restoring stores") }})
	expectJSON(t, do(t, "GET", url+"/healthz"), http.StatusOK, map[string]string{"status": "ok"})
}

func TestReadyz(t *testing.T) {
	var ready atomic.Bool
	s, url := start(t, Options{Ready: func() error {
		if !ready.Load() {
			return errors.New("restoring stores: 3 of 12 partitions caught up")
		}
		return nil
	}})
	expectJSON(t, do(t, "GET", url+"/readyz"), http.StatusServiceUnavailable,
		map[string]string{"status": "not ready", "reason": "restoring stores: 3 of 12 partitions caught up"})

	ready.Store(true)
	expectJSON(t, do(t, "GET", url+"/readyz"), http.StatusOK, map[string]string{"status": "ready"})

	s.SetStopping()
	expectJSON(t, do(t, "GET", url+"/readyz"), http.StatusServiceUnavailable, map[string]string{"status": "stopping"})
	// Only readiness changes: the process is alive and serving.
	expectJSON(t, do(t, "GET", url+"/healthz"), http.StatusOK, map[string]string{"status": "ok"})
}

func TestReadyzWithoutReadyFunc(t *testing.T) {
	_, url := start(t, Options{})
	expectJSON(t, do(t, "GET", url+"/readyz"), http.StatusOK, map[string]string{"status": "ready"})
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	events := prometheus.NewCounter(prometheus.CounterOpts{Name: "tessera_test_events_total", Help: "Events seen by the test."})
	reg.MustRegister(events)
	events.Add(3)
	_, url := start(t, Options{Registry: reg})

	r := do(t, "GET", url+"/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if !strings.Contains(r.body, "\ntessera_test_events_total 3\n") {
		t.Errorf("metrics lack tessera_test_events_total 3:\n%s", r.body)
	}
}

func TestMetricsWithoutRegistry(t *testing.T) {
	_, url := start(t, Options{})
	expectJSON(t, do(t, "GET", url+"/metrics"), http.StatusNotFound, map[string]string{"error": "no route for GET /metrics"})
}

func TestNoRoute(t *testing.T) {
	_, url := start(t, Options{})
	expectJSON(t, do(t, "GET", url+"/x"), http.StatusNotFound, map[string]string{"error": "no route for GET /x"})

	r := do(t, "POST", url+"/healthz")
	expectJSON(t, r, http.StatusMethodNotAllowed,
		map[string]string{"error": "method POST not allowed for /healthz (allowed: GET, HEAD)"})
	if allow := r.header.Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow %q, want GET, HEAD", allow)
	}
}

// Routes mounted with Handle see their path values, although ServeHTTP looks the route up
// before the mux does.
func TestHandle(t *testing.T) {
	s, url := start(t, Options{})
	s.Handle("GET /v1/profiles/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id"), "pattern": r.Pattern})
	}))
	expectJSON(t, do(t, "GET", url+"/v1/profiles/p-42"), http.StatusOK,
		map[string]string{"id": "p-42", "pattern": "GET /v1/profiles/{id}"})
}

func TestPanic(t *testing.T) {
	s, url := start(t, Options{})
	s.Handle("GET /v1/boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	expectJSON(t, do(t, "GET", url+"/v1/boom"), http.StatusInternalServerError, map[string]string{"error": "internal error"})
	expectJSON(t, do(t, "GET", url+"/healthz"), http.StatusOK, map[string]string{"status": "ok"})
}

func TestLifecycle(t *testing.T) {
	s := New(Options{Addr: "127.0.0.1:0"})
	addr, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr.String() + "/healthz"); err == nil {
		t.Error("server still answers after Shutdown")
	}
	if _, err := s.Start(); err == nil {
		t.Error("Start after Shutdown succeeded")
	}
}

func TestStartError(t *testing.T) {
	_, err := New(Options{Addr: "127.0.0.1:-1"}).Start()
	if err == nil || !strings.HasPrefix(err.Error(), "listening for HTTP: ") {
		t.Errorf("got %v", err)
	}
}
