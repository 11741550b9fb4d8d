// Package segment serves Segment's HTTP tracking API, so that Segment's SDKs
// and anything else that speaks it send events to tessera unchanged:
// POST /v1/identify, /v1/track, /v1/page, /v1/screen, /v1/group, /v1/alias,
// /v1/batch, and /v1/import (the same as batch).
//
// # Semantics
//
// Where Segment documents a behaviour, the handler has it; where Segment
// answers 200 and drops the data, the handler answers with an error
// instead, because nothing may be lost silently.
//
//   - Authentication: HTTP Basic with the write key as the user name (the
//     password is ignored; a header without the colon is accepted, as Segment
//     still does), or, without an Authorization header, writeKey in the JSON
//     body: top level of a batch or of a single event. A header, when
//     present, decides alone. A missing or unknown key is 401, and nothing of
//     the request is written anywhere. (Without a header the body must be
//     read to find its key, so a body too large or malformed is answered
//     413 or 400 first.)
//   - Bodies: Content-Encoding gzip or none (another is 415); the content
//     type is not checked, as Segment's browser SDK sends text/plain. Limits
//     apply to the decompressed body: 32 KB for a single call, 500 KB for a
//     batch (413, naming the limit); a batch holds at most 2,500 events and
//     each at most 32 KB (as received, before tessera completes it), and its
//     shared context and integrations at most 8 KB together (400, naming the
//     limit). Malformed JSON is 400 with the byte position.
//   - Validation: each event by [schemas.Normalizer]. An invalid single call
//     is 400 with the field and the reason. An invalid event in a batch does
//     not fail the batch: the others are accepted and the answer is
//     200 {"success":true,"rejected":[{"index":i,"error":"..."}]}. Events a
//     tracking plan blocks are listed the same way (a single call: 400).
//     Every rejected event is on <app>.events.invalid with its reason and
//     its source (http:/v1/track, http:/v1/batch[i]).
//   - A batch's sentAt, context and integrations apply to its events, the
//     event's own values winning (context and integrations merge key by
//     key).
//   - Durability: 200 is sent only after the events (and the rejected ones)
//     are acknowledged by all in-sync replicas. If they cannot be written in
//     Options.Timeout, the answer is 503 and the client retries (Segment's
//     SDKs retry 5xx); the profile's messageId dedupe absorbs what a retry
//     repeats.
//   - Rate limit (Options.RateLimit, off by default): a token bucket of
//     events per write key; a batch is charged its events. Over it, 429
//     with Retry-After (seconds).
//   - Requests refused as a whole (401, 405, 413, 415, 429, malformed JSON, a
//     batch over its limits) are written nowhere: the sender still holds
//     them and has been told why.
//
// Not served: Segment's browser SDK's short paths (/v1/t, /v1/b …) and CORS.
//
// # Hot path
//
// A request takes a Normalizer, its body buffer and its gzip reader from a
// sync.Pool; events are parsed with fastjson and written by the
// Normalizer, without encoding/json reflection; encoding/json writes only
// error answers and the rejected list.
package segment

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/valyala/fastjson"
)

// MaxBatchContextBytes is the most a batch's shared context and
// integrations may hold together (as compact JSON). Both are copied into
// every event of the batch, so without a bound a 500 KB request could
// become gigabytes on tessera.events.
const MaxBatchContextBytes = 8 << 10

// DefaultTimeout is how long a request waits for its events to be durable
// unless Options.Timeout says otherwise: below the 10 s after which
// Segment's Node SDK gives up on a request, so it sees the 503 and retries.
const DefaultTimeout = 8 * time.Second

// Publisher writes events and rejected inputs durably; *ingest.Writer is
// one. Publish returns only when every event is acknowledged, and lists the
// events a tracking plan blocked (which it has written to the invalid-events
// topic itself). It must not keep the events' Key or Value, nor evs, once it
// has returned: they are the request's buffers, which the next request
// reuses. If the Publisher also has the method
//
//	PublishFrom(ctx, evs, source func(i int) string) (ingest.Result, error)
//
// the handler uses it, so that a blocked event's source on the invalid
// topic says where it came from (http:/v1/batch[3]).
type Publisher interface {
	Publish(ctx context.Context, evs []schemas.Normalized) (ingest.Result, error)
	Reject(ctx context.Context, rs ...ingest.Rejection) error
}

// publisherFrom is the optional provenance-aware Publish of *ingest.Writer.
type publisherFrom interface {
	PublishFrom(ctx context.Context, evs []schemas.Normalized, source func(i int) string) (ingest.Result, error)
}

// Options configure a Handler.
type Options struct {
	// WriteKeys returns the write keys accepted, called once per request
	// (so keys can change while tessera runs). The caller resolves them
	// from the config and $TESSERA_WRITE_KEYS. Nil, or no keys, refuses
	// every request with 401.
	WriteKeys func() []string
	// Writer publishes the events and rejects the invalid ones. Required.
	Writer Publisher
	// Logger receives failures to write (503s) at error level and refused
	// requests at debug level. Nil discards.
	Logger *slog.Logger
	// Registerer, if not nil, registers the handler's metrics:
	// tessera_ingest_events_total{endpoint,result},
	// tessera_ingest_requests_total{endpoint,code} and
	// tessera_ingest_request_seconds{endpoint}. Several handlers may share
	// one; they then share the metrics.
	Registerer prometheus.Registerer
	// Now is the clock that sets receivedAt, overriding time.Now.
	Now func() time.Time
	// Timeout bounds how long a request waits for Publish and Reject,
	// overriding DefaultTimeout.
	Timeout time.Duration
	// RateLimit limits the events per second of each write key (429 with
	// Retry-After over it), measured on the Now clock. Zero: no limit.
	RateLimit RateLimit
}

// Handler serves Segment's HTTP tracking API. Create it with New and mount
// it with Register; it is also an http.Handler for those paths itself.
type Handler struct {
	keys    func() []string
	w       Publisher
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	limit   *keyLimiter // nil: no rate limit
	m       *metrics
	pool    sync.Pool // of *state
	byPath  map[string]*endpoint
	ordered []*endpoint
}

// endpoint is one path of the API.
type endpoint struct {
	h     *Handler
	path  string
	typ   string // the event type a single-event path implies; "" for batch
	batch bool

	accepted, rejected prometheus.Counter
	seconds            prometheus.Observer
}

// routes are the API's paths, in the order Register mounts them.
var routes = []struct {
	path  string
	typ   string
	batch bool
}{
	{"/v1/identify", schemas.TypeIdentify, false},
	{"/v1/track", schemas.TypeTrack, false},
	{"/v1/page", schemas.TypePage, false},
	{"/v1/screen", schemas.TypeScreen, false},
	{"/v1/group", schemas.TypeGroup, false},
	{"/v1/alias", schemas.TypeAlias, false},
	{"/v1/batch", "", true},
	{"/v1/import", "", true},
}

// New returns a Handler for opts. It panics if opts.Writer is nil or the
// metrics cannot be registered (a name taken with other labels), both
// programming errors.
func New(opts Options) *Handler {
	if opts.Writer == nil {
		panic("segment: Options.Writer is nil")
	}
	h := &Handler{
		keys:    opts.WriteKeys,
		w:       opts.Writer,
		log:     opts.Logger,
		now:     opts.Now,
		timeout: opts.Timeout,
		limit:   newKeyLimiter(opts.RateLimit),
		byPath:  make(map[string]*endpoint, len(routes)),
	}
	if h.keys == nil {
		h.keys = func() []string { return nil }
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.timeout <= 0 {
		h.timeout = DefaultTimeout
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		panic(err)
	}
	h.m = m
	h.pool.New = func() any { return new(state) }
	for _, r := range routes {
		e := &endpoint{
			h: h, path: r.path, typ: r.typ, batch: r.batch,
			accepted: m.events.WithLabelValues(r.path, "accepted"),
			rejected: m.events.WithLabelValues(r.path, "rejected"),
			seconds:  m.seconds.WithLabelValues(r.path),
		}
		h.byPath[r.path] = e
		h.ordered = append(h.ordered, e)
	}
	return h
}

// Register mounts the API's paths on mux (an *http.ServeMux or an
// *api.Server). Each path is mounted for every method, so that a method
// other than POST is answered 405 in JSON by the handler itself.
func (h *Handler) Register(mux interface{ Handle(string, http.Handler) }) {
	for _, e := range h.ordered {
		mux.Handle(e.path, e)
	}
}

// ServeHTTP serves the API's paths, answering 404 in JSON for any other.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e, ok := h.byPath[r.URL.Path]
	if !ok {
		writeError(w, &apiError{status: http.StatusNotFound, body: errorBody{Error: "no route for " + r.URL.Path}})
		return
	}
	e.ServeHTTP(w, r)
}

// state is what one request reuses from the pool.
type state struct {
	n          schemas.Normalizer
	body       bytes.Buffer
	zr         *gzip.Reader
	evs        []schemas.Normalized
	index      []int // batch index of each of evs
	rejected   []rejectedEvent
	rejections []ingest.Rejection
	scratch    []byte
	// events holds the Key and Value of each of evs (NormalizeTo).
	events []byte
}

// reset drops what the last request left, keeping the buffers.
func (st *state) reset() {
	clear(st.evs)
	clear(st.rejections)
	st.evs, st.index, st.rejected, st.rejections = st.evs[:0], st.index[:0], st.rejected[:0], st.rejections[:0]
	st.events = st.events[:0]
}

// maxPooledBody is the largest body buffer, and events buffer, kept for
// the next request: a full batch, with the slack bytes.Buffer's doubling
// leaves.
const maxPooledBody = 2 << 20

// rejectedEvent is one entry of a batch answer's rejected list.
type rejectedEvent struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// errorBody is every error answer: {"error": "..."} plus what helps.
type errorBody struct {
	Error string `json:"error"`
	// Limit and Max name a limit the request broke.
	Limit string `json:"limit,omitempty"`
	Max   int    `json:"max,omitempty"`
	// Position is the byte offset of malformed JSON.
	Position *int64 `json:"position,omitempty"`
	// Field and Reason say why an event is invalid.
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// apiError is an answer other than 200.
type apiError struct {
	status int
	body   errorBody
	err    error // the cause of a 5xx, logged
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := e.h.pool.Get().(*state)
	status := e.serve(w, r, st)
	st.reset()
	if st.body.Cap() <= maxPooledBody && cap(st.events) <= maxPooledBody {
		e.h.pool.Put(st)
	}
	e.h.m.requests.WithLabelValues(e.path, strconv.Itoa(status)).Inc()
	e.seconds.Observe(time.Since(start).Seconds())
}

var successBody = []byte(`{"success":true}` + "\n")

// serve answers r and returns the status it answered with.
func (e *endpoint) serve(w http.ResponseWriter, r *http.Request, st *state) int {
	if aerr := e.handle(w, r, st); aerr != nil {
		switch {
		case aerr.status >= 500:
			e.h.log.Error("ingest request failed", "path", e.path, "status", aerr.status, "err", aerr.err)
		default:
			e.h.log.Debug("ingest request refused", "path", e.path, "status", aerr.status, "error", aerr.body.Error)
		}
		writeError(w, aerr)
		return aerr.status
	}
	if len(st.rejected) == 0 {
		writeJSON(w, http.StatusOK, successBody)
		return http.StatusOK
	}
	slices.SortFunc(st.rejected, func(a, b rejectedEvent) int { return a.Index - b.Index })
	body, err := json.Marshal(struct {
		Success  bool            `json:"success"`
		Rejected []rejectedEvent `json:"rejected"`
	}{true, st.rejected})
	if err != nil { // cannot happen: strings and ints
		body = successBody
	}
	writeJSON(w, http.StatusOK, append(body, '\n'))
	return http.StatusOK
}

// handle does the work of one request; nil means success, with
// st.rejected listing the events refused.
func (e *endpoint) handle(w http.ResponseWriter, r *http.Request, st *state) *apiError {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return &apiError{status: http.StatusMethodNotAllowed, body: errorBody{
			Error: fmt.Sprintf("method %s not allowed for %s (allowed: POST)", r.Method, e.path),
		}}
	}
	headerKey, hasHeader, aerr := basicAuthKey(r)
	if aerr != nil {
		return aerr
	}
	if hasHeader && !e.h.validKey(headerKey) {
		return errUnauthorized("invalid write key")
	}
	limit, limitName := int64(schemas.MaxEventBytes), "event_bytes"
	if e.batch {
		limit, limitName = schemas.MaxBatchBytes, "batch_bytes"
	}
	body, aerr := st.readBody(w, r, limit, limitName)
	if aerr != nil {
		return aerr
	}
	v, err := st.n.Parse(body)
	if err != nil {
		var se *schemas.SyntaxError
		if errors.As(err, &se) {
			return &apiError{status: http.StatusBadRequest, body: errorBody{Error: se.Error(), Position: &se.Offset}}
		}
		return &apiError{status: http.StatusBadRequest, body: errorBody{Error: err.Error()}}
	}
	key := headerKey
	if !hasHeader {
		bodyKey := v.GetStringBytes("writeKey")
		switch {
		case bodyKey == nil:
			return errUnauthorized("missing write key: send it as the HTTP Basic user name (with an empty password) or as writeKey in the body")
		case !e.h.validKey(string(bodyKey)):
			return errUnauthorized("invalid write key")
		}
		key = string(bodyKey)
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.h.timeout)
	defer cancel()
	received := e.h.now()
	if e.batch {
		if aerr := st.parseBatch(v, received, e.path); aerr != nil {
			return aerr
		}
		if d := e.h.limit.admit(key, len(st.evs)+len(st.rejections), received); d > 0 {
			return errRateLimited(w, d, e.h.limit)
		}
		return e.publishBatch(ctx, st)
	}
	if d := e.h.limit.admit(key, 1, received); d > 0 {
		return errRateLimited(w, d, e.h.limit)
	}
	return e.publishEvent(ctx, st, v, body, received)
}

// publishEvent validates and publishes the event of a single-event call.
func (e *endpoint) publishEvent(ctx context.Context, st *state, v *fastjson.Value, body []byte, received time.Time) *apiError {
	ev, events, err := st.n.NormalizeTo(st.events, v, schemas.Input{Type: e.typ, ReceivedAt: received})
	st.events = events
	source := "http:" + e.path
	if err != nil {
		e.rejected.Inc()
		if rerr := e.h.w.Reject(ctx, ingest.Rejection{Raw: bytes.Clone(body), Reason: err.Error(), Source: source}); rerr != nil {
			return errUnavailable(fmt.Errorf("rejecting invalid event: %w", rerr))
		}
		b := errorBody{Error: err.Error()}
		var ve *schemas.ValidationError
		if errors.As(err, &ve) {
			b.Field, b.Reason = ve.Field, ve.Reason
		}
		return &apiError{status: http.StatusBadRequest, body: b}
	}
	st.evs = append(st.evs, ev)
	res, err := e.h.publish(ctx, st.evs, func(int) string { return source })
	if err != nil {
		return errUnavailable(fmt.Errorf("publishing event: %w", err))
	}
	if len(res.Blocked) > 0 {
		e.rejected.Inc()
		return &apiError{status: http.StatusBadRequest, body: errorBody{Error: res.Blocked[0].Reason}}
	}
	e.accepted.Inc()
	return nil
}

// publishBatch writes the valid events of a parsed batch and its rejected
// ones, concurrently, and waits for both.
func (e *endpoint) publishBatch(ctx context.Context, st *state) *apiError {
	var (
		wg   sync.WaitGroup
		rerr error
	)
	if len(st.rejections) > 0 {
		wg.Go(func() { rerr = e.h.w.Reject(ctx, st.rejections...) })
	}
	var (
		res  ingest.Result
		perr error
	)
	if len(st.evs) > 0 {
		res, perr = e.h.publish(ctx, st.evs, func(i int) string {
			return "http:" + e.path + "[" + strconv.Itoa(st.index[i]) + "]"
		})
	}
	wg.Wait()
	if err := errors.Join(perr, rerr); err != nil {
		return errUnavailable(fmt.Errorf("publishing batch: %w", err))
	}
	for _, b := range res.Blocked {
		if b.Index >= 0 && b.Index < len(st.index) {
			st.rejected = append(st.rejected, rejectedEvent{Index: st.index[b.Index], Error: b.Reason})
		}
	}
	e.accepted.Add(float64(len(st.evs) - len(res.Blocked)))
	e.rejected.Add(float64(len(st.rejected)))
	return nil
}

// publish uses the Publisher's PublishFrom when it has one.
func (h *Handler) publish(ctx context.Context, evs []schemas.Normalized, source func(int) string) (ingest.Result, error) {
	if pf, ok := h.w.(publisherFrom); ok {
		return pf.PublishFrom(ctx, evs, source)
	}
	return h.w.Publish(ctx, evs)
}

// validKey reports whether key is one of the write keys, comparing in
// constant time.
func (h *Handler) validKey(key string) bool {
	if key == "" {
		return false
	}
	ok := false
	for _, k := range h.keys() {
		if k != "" && subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
			ok = true
		}
	}
	return ok
}

// basicAuthKey returns the write key of the Authorization header, whether
// there is one, and an error if it is not HTTP Basic. The user name is
// the key; the password is ignored; "key" without the colon is accepted,
// as Segment still accepts it.
func basicAuthKey(r *http.Request) (key string, present bool, _ *apiError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false, nil
	}
	scheme, cred, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", true, errUnauthorized("the Authorization header must be HTTP Basic with the write key as user name")
	}
	cred = strings.TrimSpace(cred)
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(cred); err != nil {
			return "", true, errUnauthorized("the Authorization header is not valid base64")
		}
	}
	user, _, _ := strings.Cut(string(raw), ":")
	return user, true, nil
}

func errUnauthorized(msg string) *apiError {
	return &apiError{status: http.StatusUnauthorized, body: errorBody{Error: msg}}
}

func errUnavailable(err error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, err: err, body: errorBody{
		Error: "events were not stored, retry: " + err.Error(),
	}}
}

// readBody reads the request body, decompressed, into st.body: at most
// limit bytes, or a 413 naming limitName. A gzip body's compressed size is
// capped too (twice the limit), against a stream of empty gzip members.
func (st *state) readBody(w http.ResponseWriter, r *http.Request, limit int64, limitName string) ([]byte, *apiError) {
	tooLarge := func() *apiError {
		what := "one call"
		if limitName == "batch_bytes" {
			what = "a batch"
		}
		return &apiError{status: http.StatusRequestEntityTooLarge, body: errorBody{
			Error: fmt.Sprintf("request body is larger than %d bytes (%d KB), the limit for %s", limit, limit>>10, what),
			Limit: limitName,
			Max:   int(limit),
		}}
	}
	var src io.Reader = r.Body
	gzipped := false
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		if r.ContentLength > limit {
			return nil, tooLarge()
		}
	case "gzip", "x-gzip":
		gzipped = true
		compressed := http.MaxBytesReader(w, r.Body, 2*limit+1024)
		var err error
		if st.zr == nil {
			st.zr, err = gzip.NewReader(compressed)
		} else {
			err = st.zr.Reset(compressed)
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge()
			}
			return nil, &apiError{status: http.StatusBadRequest, body: errorBody{
				Error: fmt.Sprintf("body is not gzip as Content-Encoding says: %v", err),
			}}
		}
		src = st.zr
	default:
		return nil, &apiError{status: http.StatusUnsupportedMediaType, body: errorBody{
			Error: fmt.Sprintf("Content-Encoding %q is not supported: send gzip or none", enc),
		}}
	}
	st.body.Reset()
	if _, err := st.body.ReadFrom(io.LimitReader(src, limit+1)); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, tooLarge()
		case gzipped:
			return nil, &apiError{status: http.StatusBadRequest, body: errorBody{Error: fmt.Sprintf("reading gzip body: %v", err)}}
		default:
			return nil, &apiError{status: http.StatusBadRequest, body: errorBody{Error: fmt.Sprintf("reading request body: %v", err)}}
		}
	}
	if int64(st.body.Len()) > limit {
		return nil, tooLarge()
	}
	return st.body.Bytes(), nil
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="tessera"`)
	}
	body, err := json.Marshal(e.body)
	if err != nil {
		body = []byte(`{"error":"encoding response"}`)
	}
	writeJSON(w, e.status, append(body, '\n'))
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body) // a failed write means the client has gone
}
