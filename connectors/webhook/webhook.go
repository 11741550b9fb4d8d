// Package webhook is the webhook sink: each activation is POSTed as JSON
// to the destination's URL, signed.
//
// # The request
//
//	POST <url>
//	Content-Type: application/json
//	Idempotency-Key: <activation id>
//	X-Tessera-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the secret>
//	User-Agent: tessera
//
// The body is the activation as JSON (sink.Activation's fields: id, type,
// name, profile_id, timestamp, profile and, for event_triggered, event),
// or the destination's template rendered (see sink.Template), which must
// render valid JSON. The secret is read from the environment variable
// that secret_env names. A receiver checks the signature over the exact
// body bytes, with a constant-time comparison, and deduplicates on the
// Idempotency-Key: a redelivery carries the same one.
//
// One request per activation; the requests of a batch go out in parallel,
// at most 8 at a time (the runtime puts at most one activation per profile
// in a batch, so a profile's activations still arrive in order).
//
// # The answer
//
// 2xx is delivered, and so is 409 Conflict (the receiver has that key
// already). 429 and 503 are retried after their Retry-After (seconds or an
// HTTP date) when they give one; 408, other 5xx and network errors are
// retried with backoff; any other 4xx is permanent: the activation goes to
// the dead-letter topic with the status and the start of the answer.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// SignatureHeader carries the body's signature: "sha256=" and the hex
// HMAC-SHA256 of the body keyed with the secret.
const SignatureHeader = "X-Tessera-Signature"

// parallel is how many requests of a batch are in flight at once.
const parallel = 8

// Sink is the webhook sink. Build it with New.
type Sink struct {
	name   string
	url    string
	secret []byte
	tmpl   *sink.Template // nil: the activation as JSON
	client *http.Client
	now    func() time.Time
}

// New returns the webhook sink of dest: url and secret_env are required,
// template is optional, and other type-specific fields must be empty.
// getenv reads the secret (os.Getenv in production).
func New(dest config.Destination, getenv func(string) string) (sink.Sink, error) {
	return newSink(dest, getenv)
}

func newSink(dest config.Destination, getenv func(string) string) (*Sink, error) {
	if err := sink.CheckFields(dest, "url", "secret_env", "template"); err != nil {
		return nil, fmt.Errorf("webhook %s: %w", dest.Name, err)
	}
	u, err := url.Parse(dest.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook %s: url must be an absolute http or https URL, got %q", dest.Name, dest.URL)
	}
	if dest.SecretEnv == "" {
		return nil, fmt.Errorf("webhook %s: secret_env must name the environment variable holding the signing secret", dest.Name)
	}
	secret := getenv(dest.SecretEnv)
	if secret == "" {
		return nil, fmt.Errorf("webhook %s: the signing secret $%s is empty or unset", dest.Name, dest.SecretEnv)
	}
	s := &Sink{
		name:   dest.Name,
		url:    dest.URL,
		secret: []byte(secret),
		client: &http.Client{Transport: transport()},
		now:    time.Now,
	}
	if dest.Template != "" {
		if s.tmpl, err = sink.ParseTemplate(dest.Name+".template", dest.Template, ""); err != nil {
			return nil, fmt.Errorf("webhook %s: %w", dest.Name, err)
		}
	}
	return s, nil
}

// transport returns the sink's HTTP transport: Go's default, keeping as
// many idle connections to the receiver as a batch has requests in flight.
// With the default's 2, each batch closed 6 of its 8 connections and the
// next one dialled them again: in `tessera bench`, dialling was 2 % of the
// hub's CPU, and every closed connection waits out TIME_WAIT.
func transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = parallel
	return t
}

// Sign returns the X-Tessera-Signature value of body under secret, for
// receivers to compare (with hmac.Equal) against the header.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Connect does nothing: each delivery is its own request.
func (s *Sink) Connect(context.Context) error { return nil }

// WriteBatch posts each activation, in parallel, and reports those that
// failed.
func (s *Sink) WriteBatch(ctx context.Context, batch []sink.Activation) error {
	if len(batch) == 1 {
		return s.post(ctx, batch[0])
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs sink.BatchError
		sem  = make(chan struct{}, parallel)
	)
	for i, a := range batch {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.post(ctx, a); err != nil {
				mu.Lock()
				errs.Fail(i, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs.Failed) > 0 {
		return &errs
	}
	return nil
}

// post delivers one activation.
func (s *Sink) post(ctx context.Context, a sink.Activation) error {
	body, err := s.body(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return sink.Permanent(fmt.Errorf("building the request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tessera")
	req.Header.Set(sink.IdempotencyKeyHeader, a.ID)
	req.Header.Set(SignatureHeader, Sign(s.secret, body))
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, query and all
		}
		return fmt.Errorf("posting to %s: %w", redact(s.url), err)
	}
	defer resp.Body.Close()
	err = sink.CheckHTTPResponse(resp, s.now())
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if err != nil {
		return fmt.Errorf("posting to %s: %w", redact(s.url), err)
	}
	return nil
}

// body is the request body of a.
func (s *Sink) body(a sink.Activation) ([]byte, error) {
	if s.tmpl == nil {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, sink.Permanent(fmt.Errorf("encoding activation %s: %w", a.ID, err))
		}
		return b, nil
	}
	b, err := s.tmpl.Render(a)
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, sink.Permanent(errors.New("the template did not render valid JSON"))
	}
	return b, nil
}

// redact returns u without its query and credentials, which may hold
// tokens, for error messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "the webhook URL"
	}
	p.User, p.RawQuery, p.Fragment = nil, "", ""
	return p.String()
}

// Close releases idle connections. It is idempotent.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}
