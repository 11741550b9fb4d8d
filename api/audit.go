package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// AuditTopic returns the audit topic of app: "<app>.audit".
func AuditTopic(app string) string { return app + ".audit" }

// AuditRecord is one record of the audit topic, as JSON: an admin action, or an
// attempt at one that was refused.
//
// It says who, what, when and with which outcome, and nothing more: never a token
// (Who is the role the token had), and of the request body only a definition's name,
// so that personal data (the identifiers of an erasure request) is not copied into a
// log that the erasure cannot reach.
type AuditRecord struct {
	// Time is when the request arrived.
	Time time.Time `json:"time"`
	// Who is the role the request's token had: "admin", "viewer" (refused), or
	// "anonymous" (no token or a wrong one: refused).
	Who Role `json:"who"`
	// Remote is the client's address (the connection's, not a forwarded header).
	Remote string `json:"remote"`
	// Method and Path are the request's; Route is the pattern it matched.
	Method string `json:"method"`
	Path   string `json:"path"`
	Route  string `json:"route"`
	// Target names what the action was on: the route's path values
	// ("name=hot_buyers") or the "name" of the definition in the body.
	Target string `json:"target,omitempty"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
}

// auditWriteTimeout bounds how long a request waits for its audit record.
const auditWriteTimeout = 5 * time.Second

// auditPeekBytes is how much of a request body is read to find a definition's name.
const auditPeekBytes = 64 << 10

// Auditor writes an AuditRecord for every request to an admin route other than GET
// and the instance-to-instance /internal/ routes (which only read), to the audit
// topic, acks=all, before the answer is sent. Attach it with Profiles.Audit.
type Auditor struct {
	cl    *kgo.Client
	topic string
	log   *slog.Logger
	out   *prometheus.CounterVec // result: written, failed
}

// NewAuditor creates app's audit topic if it is missing (one partition, so records
// stay in order; kept forever: retention.ms=-1, as admin actions are few) and returns
// an Auditor writing to it with a client made of opts (the seed brokers and kafka.tls
// and kafka.sasl). reg, if not nil, gets tessera_audit_records_total{result}.
func NewAuditor(ctx context.Context, app string, replication int16, log *slog.Logger, reg prometheus.Registerer, opts ...kgo.Opt) (*Auditor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	topic := AuditTopic(app)
	cl, err := kgo.NewClient(append(opts,
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return nil, fmt.Errorf("creating audit client: %w", err)
	}
	forever := "-1"
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, replication, map[string]*string{"retention.ms": &forever}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		cl.Close()
		return nil, fmt.Errorf("creating %s: %w", topic, err)
	}
	a := &Auditor{cl: cl, topic: topic, log: log, out: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tessera_audit_records_total",
		Help: "Audit records of admin actions, by result: written, or failed (logged at error level).",
	}, []string{"result"})}
	if reg != nil {
		if err := reg.Register(a.out); err != nil {
			cl.Close()
			return nil, fmt.Errorf("registering audit metrics: %w", err)
		}
	}
	return a, nil
}

// Close flushes nothing (every record is written synchronously) and closes the client.
func (a *Auditor) Close() { a.cl.Close() }

// audits reports whether a request to an admin route is audited.
func audits(r *http.Request) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.HasPrefix(r.URL.Path, "/internal/")
}

// wrap returns h, recording each request it serves with role.
func (a *Auditor) wrap(role Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := AuditRecord{Time: time.Now().UTC(), Who: role, Remote: r.RemoteAddr, Method: r.Method,
			Path: r.URL.Path, Route: r.Pattern, Target: target(r)}
		if rec.Who == RoleNone {
			rec.Who = "anonymous"
		}
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		rec.Status = sw.status
		if rec.Status == 0 {
			rec.Status = http.StatusOK
		}
		a.write(rec)
	}
}

// write puts rec on the audit topic, waiting for all in-sync replicas. A failure is
// logged (with the record, which holds no secret) and counted; the action itself has
// already happened, so it is not undone.
func (a *Auditor) write(rec AuditRecord) {
	body, err := json.Marshal(rec)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), auditWriteTimeout)
		err = a.cl.ProduceSync(ctx, &kgo.Record{Key: []byte(rec.Route), Value: body}).FirstErr()
		cancel()
	}
	if err != nil {
		a.out.WithLabelValues("failed").Inc()
		a.log.Error("writing an audit record", "topic", a.topic, "record", string(body), "err", err)
		return
	}
	a.out.WithLabelValues("written").Inc()
}

// target names what r acts on: its path values, else the "name" of a JSON body.
func target(r *http.Request) string {
	var parts []string
	for _, seg := range strings.Split(r.Pattern, "/") {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(strings.TrimSuffix(name, "}"), "...")
		if name != "$" {
			parts = append(parts, name+"="+r.PathValue(name))
		}
	}
	if len(parts) > 0 {
		return strings.Join(parts, ",")
	}
	if r.Body == nil || r.Body == http.NoBody {
		return ""
	}
	// Read the start of the body and put it back in front of the rest.
	head, err := io.ReadAll(io.LimitReader(r.Body, auditPeekBytes))
	r.Body = readCloser{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
	if err != nil {
		return ""
	}
	var named struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(head, &named) == nil && named.Name != "" {
		return "name=" + named.Name
	}
	return ""
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// statusWriter remembers the status a handler answers.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
