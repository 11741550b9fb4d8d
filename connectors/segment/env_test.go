package segment

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/api"
	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	app          = "tessera"
	eventsTopic  = app + ".events"
	invalidTopic = app + ".events.invalid"
	testKey      = "wk_test_123"
)

// fixedNow is the receivedAt of every request in these tests.
var fixedNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// env is the handler on a real api.Server over TCP, in front of a real
// ingest.Writer on an embedded broker.
type env struct {
	t       *testing.T
	url     string
	brokers []string
	adm     *kadm.Client
	reg     *prometheus.Registry
	writer  *ingest.Writer
	h       *Handler
	cluster *kfake.Cluster
}

type envOpt func(*envConfig)

type envConfig struct {
	writerOpts []ingest.WriterOption
	timeout    time.Duration
	publisher  func(*ingest.Writer) Publisher
	rateLimit  RateLimit
	now        func() time.Time // nil: fixedNow
}

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("starting embedded broker: %v", err)
	}
	t.Cleanup(cluster.Close)
	e := &env{t: t, brokers: cluster.ListenAddrs(), reg: prometheus.NewRegistry(), cluster: cluster}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admCl.Close)
	e.adm = kadm.NewClient(admCl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ingest.EnsureTopics(ctx, e.adm, app, 3, 1); err != nil {
		t.Fatal(err)
	}
	wopts := append([]ingest.WriterOption{ingest.ClientOpts(kgo.SeedBrokers(e.brokers...))}, cfg.writerOpts...)
	e.writer, err = ingest.New(app, wopts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.writer.Close)
	var pub Publisher = e.writer
	if cfg.publisher != nil {
		pub = cfg.publisher(e.writer)
	}
	now := cfg.now
	if now == nil {
		now = func() time.Time { return fixedNow }
	}
	e.h = New(Options{
		WriteKeys:  func() []string { return []string{"other-key", testKey} },
		Writer:     pub,
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer: e.reg,
		Now:        now,
		Timeout:    cfg.timeout,
		RateLimit:  cfg.rateLimit,
	})
	srv := api.New(api.Options{Addr: "127.0.0.1:0", Registry: e.reg})
	e.h.Register(srv)
	addr, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	e.url = "http://" + addr.String()
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// request is one HTTP request to the handler.
type request struct {
	method   string // default POST
	path     string
	body     []byte
	auth     string // Authorization header; "" none
	gzip     bool   // compress body and say so
	encoding string // Content-Encoding, overriding gzip's
	ctype    string // Content-Type; default application/json
}

func basic(key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))
}

// response is an answer, with its JSON body decoded.
type response struct {
	status int
	header http.Header
	raw    []byte
	json   map[string]any
}

func (e *env) do(r request) response {
	e.t.Helper()
	resp, err := e.send(r)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// send is do for any goroutine: it returns what do fails on.
func (e *env) send(r request) (response, error) {
	body := r.body
	if r.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = buf.Bytes()
	}
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, e.url+r.path, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	ctype := r.ctype
	if ctype == "" {
		ctype = "application/json"
	}
	req.Header.Set("Content-Type", ctype)
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	switch {
	case r.encoding != "":
		req.Header.Set("Content-Encoding", r.encoding)
	case r.gzip:
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, r.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	out := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if err := json.Unmarshal(raw, &out.json); err != nil {
		return out, fmt.Errorf("%s %s answered %d with a body that is not a JSON object: %q", method, r.path, resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return out, fmt.Errorf("%s %s answered Content-Type %q, want application/json", method, r.path, ct)
	}
	return out, nil
}

// get returns the body of GET path.
func (e *env) get(path string) (string, error) {
	resp, err := http.Get(e.url + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metric returns the handler's metric name with labels.
func metric(t *testing.T, e *env, name string, labels ...string) prometheus.Collector {
	t.Helper()
	switch name {
	case "tessera_ingest_events_total":
		return e.h.m.events.WithLabelValues(labels...)
	case "tessera_ingest_requests_total":
		return e.h.m.requests.WithLabelValues(labels...)
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// offsets are the end offsets of a topic's partitions.
type offsets map[int32]int64

func (e *env) endOffsets(topic string) offsets {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed, err := e.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		e.t.Fatalf("listing end offsets of %s: %v", topic, err)
	}
	out := offsets{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			e.t.Fatalf("end offset of %s[%d]: %v", topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// snapshot is the end offsets of both ingest topics before a request.
type snapshot struct{ events, invalid offsets }

func (e *env) snapshot() snapshot {
	return snapshot{e.endOffsets(eventsTopic), e.endOffsets(invalidTopic)}
}

// since reads what was written to topic after from. The handler answers
// only once its writes are durable, so the end offsets after an answer
// tell exactly what it wrote: nothing here waits for records that may or
// may not come.
func (e *env) since(topic string, from offsets) []*kgo.Record {
	e.t.Helper()
	to := e.endOffsets(topic)
	parts := map[int32]kgo.Offset{}
	want := 0
	for p, end := range to {
		if end > from[p] {
			parts[p] = kgo.NewOffset().At(from[p])
			want += int(end - from[p])
		}
	}
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("read %d of the %d records written to %s", len(recs), want, topic)
		}
		fs.EachError(func(_ string, _ int32, err error) { e.t.Fatalf("fetching %s: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < to[r.Partition] {
				recs = append(recs, r)
			}
		})
	}
	return recs
}

// event is a record of tessera.events, decoded.
type event struct {
	key   string
	value map[string]any
	raw   []byte
}

func (e *env) eventsSince(s snapshot) []event {
	e.t.Helper()
	var out []event
	for _, r := range e.since(eventsTopic, s.events) {
		ev := event{key: string(r.Key), raw: r.Value}
		if err := json.Unmarshal(r.Value, &ev.value); err != nil {
			e.t.Fatalf("tessera.events holds invalid JSON %q: %v", r.Value, err)
		}
		out = append(out, ev)
	}
	return out
}

func (e *env) invalidSince(s snapshot) []schemas.InvalidEvent {
	e.t.Helper()
	var out []schemas.InvalidEvent
	for _, r := range e.since(invalidTopic, s.invalid) {
		iv, err := schemas.DecodeInvalidEvent(r.Value)
		if err != nil {
			e.t.Fatalf("decoding %s record: %v", invalidTopic, err)
		}
		out = append(out, iv)
	}
	return out
}
