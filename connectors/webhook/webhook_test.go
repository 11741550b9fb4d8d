package webhook_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/connectors/sink/sinktest"
	"github.com/tessera-cdp/tessera/connectors/webhook"
)

const (
	secretEnv = "TESSERA_TEST_WEBHOOK_SECRET"
	secret    = "s3cr3t-signing-key"
	path      = "/hooks/tessera"
)

func getenv(k string) string {
	if k == secretEnv {
		return secret
	}
	return ""
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{Start: func(t *testing.T, env sinktest.Env) sinktest.Receiver {
		return newReceiver(t, env.Now)
	}})
}

// receiver is an HTTP endpoint that checks every request is exactly the
// documented one (method, path, headers, a signature verified with the
// secret, the activation as the body) and fails on demand.
type receiver struct {
	t   *testing.T
	now func() time.Time
	srv *httptest.Server

	*sinktest.Faults
}

func newReceiver(t *testing.T, now func() time.Time) *receiver {
	r := &receiver{t: t, now: now, Faults: sinktest.NewFaults()}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.Heal()
		r.srv.Close()
	})
	return r
}

func (r *receiver) Sink(dest config.Destination) (config.Destination, sink.Sink, error) {
	dest.Type, dest.URL, dest.SecretEnv = "webhook", r.srv.URL+path, secretEnv
	s, err := webhook.New(dest, getenv)
	return dest, s, err
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Errorf("reading the request: %v", err)
		return
	}
	rec := r.check(req, body)

	kind, retryAfter, stall := r.Record(rec)

	switch kind {
	case sinktest.Down:
		// Drop the connection without an answer.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			r.t.Errorf("hijacking: %v", err)
			return
		}
		conn.Close()
	case sinktest.Reject:
		http.Error(w, `{"error":"unknown audience"}`, http.StatusBadRequest)
	case sinktest.Throttle:
		w.Header().Set("Retry-After", strings.TrimSuffix(retryAfter.String(), "s")) // "30s" → "30"
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case sinktest.Stall:
		select {
		case <-stall:
			// Healed: this request was refused all the same; the
			// sink retries it.
			http.Error(w, "was stalled", http.StatusServiceUnavailable)
		case <-req.Context().Done():
		}
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// check verifies the request is the documented one and returns what it
// carries.
func (r *receiver) check(req *http.Request, body []byte) sinktest.Received {
	t := r.t
	if req.Method != http.MethodPost || req.URL.Path != path {
		t.Errorf("request %s %s, want POST %s", req.Method, req.URL.Path, path)
	}
	for h, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "tessera"} {
		if got := req.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if sig, want := req.Header.Get(webhook.SignatureHeader), webhook.Sign([]byte(secret), body); !hmac.Equal([]byte(sig), []byte(want)) {
		t.Errorf("%s %q does not verify (want %q)", webhook.SignatureHeader, sig, want)
	}
	var a sink.Activation
	if err := json.Unmarshal(body, &a); err != nil {
		t.Errorf("body %s is not an activation: %v", body, err)
	}
	key := req.Header.Get(sink.IdempotencyKeyHeader)
	if key == "" || key != a.ID {
		t.Errorf("Idempotency-Key %q, want the activation id %q", key, a.ID)
	}
	if a.Timestamp.IsZero() || !json.Valid(a.Profile) {
		t.Errorf("activation %s has no timestamp or no profile: %s", a.ID, body)
	}
	if (a.Type == sink.EventTriggered) != (len(a.Event) > 0) {
		t.Errorf("activation %s of type %s: event %s", a.ID, a.Type, a.Event)
	}
	return sinktest.Received{Key: key, ActivationID: a.ID, Type: a.Type, Name: a.Name, ProfileID: a.ProfileID, At: r.now()}
}

func TestNew(t *testing.T) {
	base := config.Destination{Name: "hook", Type: "webhook", URL: "https://example.com/h", SecretEnv: secretEnv}
	for _, tc := range []struct {
		name    string
		edit    func(*config.Destination)
		wantErr string
	}{
		{"valid", func(*config.Destination) {}, ""},
		{"with a template", func(d *config.Destination) { d.Template = `{"id": {{json .ID}}}` }, ""},
		{"no url", func(d *config.Destination) { d.URL = "" }, `webhook hook: url must be an absolute http or https URL, got ""`},
		{"relative url", func(d *config.Destination) { d.URL = "/h" }, `url must be an absolute http or https URL, got "/h"`},
		{"other scheme", func(d *config.Destination) { d.URL = "ftp://example.com" }, `url must be an absolute http or https URL`},
		{"no secret_env", func(d *config.Destination) { d.SecretEnv = "" }, "webhook hook: secret_env must name the environment variable holding the signing secret"},
		{"empty secret", func(d *config.Destination) { d.SecretEnv = "UNSET_VAR" }, "webhook hook: the signing secret $UNSET_VAR is empty or unset"},
		{"an unused field", func(d *config.Destination) { d.Address = "localhost:25" }, "webhook hook: address is not used by webhook destinations (they use url, secret_env, template)"},
		{"bad template", func(d *config.Destination) { d.Template = "{{.ID" }, "webhook hook: parsing template: template: hook.template:1: unclosed action"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := base
			tc.edit(&d)
			_, err := webhook.New(d, getenv)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestResponses pins how each answer is classified.
func TestResponses(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		status     int
		retryAfter string
		want       string // ok, retry, permanent
		after      time.Duration
	}{
		{200, "", "ok", 0},
		{202, "", "ok", 0},
		{204, "", "ok", 0},
		{409, "", "ok", 0},
		{429, "7", "retry", 7 * time.Second},
		{429, "", "retry", 0},
		{503, date, "retry", 90 * time.Second},
		{503, "soon", "retry", 0},
		{500, "", "retry", 0},
		{502, "", "retry", 0},
		{408, "", "retry", 0},
		{400, "", "permanent", 0},
		{401, "", "permanent", 0},
		{404, "", "permanent", 0},
		{410, "", "permanent", 0},
		{422, "", "permanent", 0},
	} {
		t.Run(http.StatusText(tc.status)+"/"+tc.retryAfter, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, "the answer\nbody")
			}))
			defer srv.Close()
			s, err := webhook.New(config.Destination{Name: "hook", Type: "webhook", URL: srv.URL, SecretEnv: secretEnv}, getenv)
			if err != nil {
				t.Fatal(err)
			}
			err = s.WriteBatch(context.Background(), []sink.Activation{{ID: "a1", Type: sink.AudienceEntered}})
			got := "retry"
			switch {
			case err == nil:
				got = "ok"
			case sink.IsPermanent(err):
				got = "permanent"
			}
			if got != tc.want {
				t.Fatalf("HTTP %d: %s (%v), want %s", tc.status, got, err, tc.want)
			}
			after, _ := sink.RetryAfterOf(err)
			if d := after - tc.after; d < -2*time.Second || d > 0 && tc.after == 0 || d > 2*time.Second {
				t.Errorf("Retry-After %v, want %v", after, tc.after)
			}
			if err != nil && !strings.Contains(err.Error(), "the answer body") {
				t.Errorf("error %q does not quote the answer", err)
			}
		})
	}
}

func TestNetworkErrorIsRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	s, err := webhook.New(config.Destination{Name: "hook", Type: "webhook", URL: url + "/x?token=hidden", SecretEnv: secretEnv}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	err = s.WriteBatch(context.Background(), []sink.Activation{{ID: "a1"}})
	if err == nil || sink.IsPermanent(err) {
		t.Fatalf("WriteBatch to a closed port: %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), "hidden") {
		t.Errorf("the error %q shows the URL's query", err)
	}
}

func TestTemplate(t *testing.T) {
	for _, tc := range []struct {
		name, template, want, wantErr string
	}{
		{"fields and profile", `{"email": {{json .ProfileMap.traits.email}}, "audience": {{json .Name}}, "orders": {{.ProfileMap.features.orders_30d}}}`,
			`{"email": "ada@example.com", "audience": "vip", "orders": 3}`, ""},
		{"not JSON", `email={{.ProfileMap.traits.email}}`, "", "the template did not render valid JSON"},
		{"failing", `{{index .ProfileID 99}}`, "", "rendering hook.template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ = io.ReadAll(r.Body)
				if sig := r.Header.Get(webhook.SignatureHeader); sig != webhook.Sign([]byte(secret), body) {
					t.Errorf("signature %q does not match the rendered body", sig)
				}
			}))
			defer srv.Close()
			s, err := webhook.New(config.Destination{Name: "hook", Type: "webhook", URL: srv.URL, SecretEnv: secretEnv, Template: tc.template}, getenv)
			if err != nil {
				t.Fatal(err)
			}
			err = s.WriteBatch(context.Background(), []sink.Activation{{
				ID: "a1", Type: sink.AudienceEntered, Name: "vip", ProfileID: "p1",
				Profile: json.RawMessage(`{"traits":{"email":"ada@example.com"},"features":{"orders_30d":3}}`),
			}})
			if tc.wantErr != "" {
				if err == nil || !sink.IsPermanent(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("WriteBatch: %v, want a permanent error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tc.want {
				t.Errorf("body %s, want %s", body, tc.want)
			}
		})
	}
}

// TestBatchReportsEachFailure: in a batch, only the refused activations
// are reported failed, by index, each with its own error.
func TestBatchReportsEachFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get(sink.IdempotencyKeyHeader) {
		case "bad":
			w.WriteHeader(http.StatusBadRequest)
		case "busy":
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	s, err := webhook.New(config.Destination{Name: "hook", Type: "webhook", URL: srv.URL, SecretEnv: secretEnv}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	batch := []sink.Activation{{ID: "ok1"}, {ID: "bad"}, {ID: "ok2"}, {ID: "busy"}}
	for i := range 12 {
		batch = append(batch, sink.Activation{ID: "more" + string(rune('a'+i))})
	}
	err = s.WriteBatch(context.Background(), batch)
	var be *sink.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("WriteBatch: %v, want a *sink.BatchError", err)
	}
	if len(be.Failed) != 2 || !sink.IsPermanent(be.Failed[1]) || be.Failed[3] == nil || sink.IsPermanent(be.Failed[3]) {
		t.Errorf("failed %v, want #1 permanent and #3 retryable", be.Failed)
	}
}

// TestBatchesReuseConnections: batch after batch of requests all in
// flight at once (the receiver answers none of a batch until all of it has
// arrived) go over the connections of the first batch, one per request in
// flight (8), rather than dialling anew.
func TestBatchesReuseConnections(t *testing.T) {
	const inFlight, batches = 8, 10
	var (
		dialled atomic.Int64
		batch   atomic.Pointer[sync.WaitGroup]
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg := batch.Load()
		wg.Done()
		wg.Wait()
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s, err := webhook.New(config.Destination{Name: "hook", Type: "webhook", URL: srv.URL, SecretEnv: secretEnv}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	for b := range batches {
		var wg sync.WaitGroup
		wg.Add(inFlight)
		batch.Store(&wg)
		acts := make([]sink.Activation, inFlight)
		for i := range acts {
			acts[i] = sink.Activation{ID: fmt.Sprintf("b%d-%d", b, i)}
		}
		if err := s.WriteBatch(context.Background(), acts); err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
	}
	if n := dialled.Load(); n != inFlight {
		t.Errorf("%d batches of %d opened %d connections, want %d", batches, inFlight, n, inFlight)
	}
}
