package schemas

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Event types of the Segment spec.
const (
	TypeIdentify = "identify"
	TypeTrack    = "track"
	TypePage     = "page"
	TypeScreen   = "screen"
	TypeGroup    = "group"
	TypeAlias    = "alias"
)

// Limits of the Segment tracking API, answered rather than silently dropped.
const (
	// MaxEventBytes is the largest event accepted, as Segment's 32 KB. It
	// applies to the event as received (compact JSON), before tessera adds
	// receivedAt, messageId and the corrected timestamp.
	MaxEventBytes = 32 << 10
	// MaxBatchBytes is the largest batch request accepted, as Segment's 500 KB.
	MaxBatchBytes = 500 << 10
	// MaxBatchEvents is the most events one batch may hold.
	MaxBatchEvents = 2500
	// MaxMessageIDLength is the longest messageId accepted, in characters.
	MaxMessageIDLength = 100
	// MaxIDLength is the longest userId, anonymousId, groupId or previousId
	// accepted, in characters.
	MaxIDLength = 1024
)

// ValidationError says what is wrong with an event and in which field.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// SyntaxError is malformed JSON, with where it breaks.
type SyntaxError struct {
	// Offset is the 0-based byte offset of the first byte that makes the
	// input invalid (the input's length when it ends too early).
	Offset int64
	// Line and Column (1-based, in bytes) locate Offset for people.
	Line, Column int
	Msg          string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at byte %d (line %d, column %d): %s", e.Offset, e.Line, e.Column, e.Msg)
}

// syntaxError locates a parse failure with encoding/json, which reports
// offsets; it only runs on the error path.
func syntaxError(data []byte, perr error) error {
	var v any
	err := json.Unmarshal(data, &v)
	e := &SyntaxError{Offset: int64(len(data)), Msg: perr.Error()}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// encoding/json counts the offending byte as read.
		e.Offset, e.Msg = se.Offset, se.Error()
		if !strings.HasPrefix(e.Msg, "unexpected end") && e.Offset > 0 {
			e.Offset--
		}
	}
	e.Offset = min(max(e.Offset, 0), int64(len(data)))
	before := data[:e.Offset]
	e.Line = bytes.Count(before, []byte{'\n'}) + 1
	e.Column = len(before) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return e
}

// Normalized is an event ready for tessera.events.
type Normalized struct {
	// Key is the routing identifier: userId, else anonymousId.
	Key []byte
	// Value is the event as JSON, with receivedAt, messageId and the
	// corrected timestamp set.
	Value []byte
	// Type and MessageID are copied out for callers that log or dedupe.
	Type      string
	MessageID string
	// Timestamp is the event's corrected time.
	Timestamp time.Time
}

// Normalizer validates events against the Segment spec and completes them.
// It reuses its parser and buffers, so it is not safe for concurrent use:
// keep one per goroutine (or take one from a sync.Pool per request).
type Normalizer struct {
	p        fastjson.Parser
	out      []byte
	seenKeys [][]byte            // top-level keys written, for small events
	seen     map[string]struct{} // the same, for events of many keys
	seenMap  bool
	Now      func() time.Time // receivedAt; default time.Now
	NewID    func() string    // messageId when missing; default a random id
}

// Input says how an event arrived.
type Input struct {
	// Type is the type implied by the endpoint (/v1/track → track); ""
	// for batch and import, where each event names its own.
	Type string
	// ReceivedAt is when the request arrived; zero means Now().
	ReceivedAt time.Time
	// SentAt is a batch's sentAt, which applies to events without their own.
	SentAt string
	// MessageID is used when the event has none (import makes it
	// deterministic, so re-importing a file does not double-count).
	MessageID string
	// Context and Integrations are a batch's shared objects (nil when there
	// are none). As Segment does, each is merged under the event's own: the
	// event's keys win, and where both hold an object under the same key
	// those objects are merged the same way.
	Context      *fastjson.Value
	Integrations *fastjson.Value
}

// Parse parses one JSON document, reporting the position of a syntax error.
// The returned value is valid until the next call.
//
// The input is validated strictly first: fastjson's parser alone accepts
// some invalid JSON (unknown escapes, control characters in strings, NaN),
// which would otherwise reach tessera.events verbatim.
func (n *Normalizer) Parse(data []byte) (*fastjson.Value, error) {
	if err := fastjson.ValidateBytes(data); err != nil {
		return nil, syntaxError(data, err)
	}
	v, err := n.p.ParseBytes(data)
	if err != nil {
		return nil, syntaxError(data, err)
	}
	return v, nil
}

// managed are the top-level fields Normalize writes itself; the event's own
// values for them are replaced (writeKey, a credential, is dropped).
const (
	fType = iota
	fUserID
	fAnonymousID
	fGroupID
	fPreviousID
	fMessageID
	fTimestamp
	fOriginalTimestamp
	fSentAt
	fReceivedAt
	fContext
	fIntegrations
	fWriteKey
	nManaged
)

var managedNames = [nManaged]string{
	fType: "type", fUserID: "userId", fAnonymousID: "anonymousId", fGroupID: "groupId",
	fPreviousID: "previousId", fMessageID: "messageId", fTimestamp: "timestamp",
	fOriginalTimestamp: "originalTimestamp", fSentAt: "sentAt", fReceivedAt: "receivedAt",
	fContext: "context", fIntegrations: "integrations", fWriteKey: "writeKey",
}

func managedField(key []byte) int {
	switch string(key) {
	case "type":
		return fType
	case "userId":
		return fUserID
	case "anonymousId":
		return fAnonymousID
	case "groupId":
		return fGroupID
	case "previousId":
		return fPreviousID
	case "messageId":
		return fMessageID
	case "timestamp":
		return fTimestamp
	case "originalTimestamp":
		return fOriginalTimestamp
	case "sentAt":
		return fSentAt
	case "receivedAt":
		return fReceivedAt
	case "context":
		return fContext
	case "integrations":
		return fIntegrations
	case "writeKey":
		return fWriteKey
	}
	return -1
}

// Normalize validates one event (a parsed object) and returns it completed:
// type set (from the endpoint when the event has none), identifiers as
// strings (Segment accepts numbers), messageId added when missing,
// receivedAt set, the clock corrected, a batch's context and integrations
// merged in, writeKey dropped and duplicate top-level keys removed (the
// first wins, as everywhere else in tessera).
//
// Normalize does not modify v, so on an error the caller can still encode
// it (AppendJSON) for the invalid-events topic. Value and Key are freshly
// allocated and owned by the caller.
func (n *Normalizer) Normalize(v *fastjson.Value, in Input) (Normalized, error) {
	out, _, err := n.NormalizeTo(nil, v, in)
	return out, err
}

// NormalizeTo is Normalize with the event's Key and Value appended to dst
// instead of allocated: they alias the buffer it returns, which the caller
// passes to the next call and may reuse once it holds none of the events
// any longer. The HTTP API normalises into a buffer of each request's
// pooled state, which it reuses after Publish has returned (Publish keeps
// no event): a fresh copy of every event had been 7.8 % of the bytes the
// hub allocated at 3,500 events/s. On an error dst is returned as it was.
func (n *Normalizer) NormalizeTo(dst []byte, v *fastjson.Value, in Input) (Normalized, []byte, error) {
	out, key, err := n.normalize(v, in)
	if err != nil {
		return out, dst, err
	}
	start := len(dst)
	dst = append(dst, key...)
	dst = append(dst, n.out...)
	out.Key = dst[start : start+len(key) : start+len(key)]
	out.Value = dst[start+len(key) : len(dst) : len(dst)]
	return out, dst, nil
}

// normalize is Normalize leaving the event in n.out and returning its key
// rather than setting Key and Value.
func (n *Normalizer) normalize(v *fastjson.Value, in Input) (Normalized, string, error) {
	var out Normalized
	obj, err := v.Object()
	if err != nil {
		return out, "", invalid("", "event must be a JSON object, got %s", v.Type())
	}
	n.out = AppendJSON(n.out[:0], v)
	if len(n.out) > MaxEventBytes {
		return out, "", invalid("", "event is %d bytes, the limit is %d (32 KB)", len(n.out), MaxEventBytes)
	}

	typ := ""
	if t := obj.Get("type"); t != nil && t.Type() != fastjson.TypeNull {
		if t.Type() != fastjson.TypeString {
			return out, "", invalid("type", "must be a string, got %s", t.Type())
		}
		typ = string(t.GetStringBytes())
	}
	switch {
	case typ == "" && in.Type == "":
		return out, "", invalid("type", "is required (identify, track, page, screen, group or alias)")
	case typ == "":
		typ = in.Type
	case in.Type != "" && typ != in.Type:
		return out, "", invalid("type", "is %q but the endpoint takes %q", typ, in.Type)
	}
	switch typ {
	case TypeIdentify, TypeTrack, TypePage, TypeScreen, TypeGroup, TypeAlias:
	default:
		return out, "", invalid("type", "%q is not one of identify, track, page, screen, group, alias", typ)
	}
	userID, err := idField(obj, "userId")
	if err != nil {
		return out, "", err
	}
	anonID, err := idField(obj, "anonymousId")
	if err != nil {
		return out, "", err
	}
	if userID == "" && anonID == "" && typ != TypeAlias {
		return out, "", invalid("userId", "userId or anonymousId is required")
	}
	var groupID, prevID string
	switch typ {
	case TypeTrack:
		if ev := obj.Get("event"); ev == nil || ev.Type() != fastjson.TypeString || len(ev.GetStringBytes()) == 0 {
			return out, "", invalid("event", "is required for track and must be a non-empty string")
		}
	case TypeGroup:
		if groupID, err = idField(obj, "groupId"); err != nil {
			return out, "", err
		}
		if groupID == "" {
			return out, "", invalid("groupId", "is required for group")
		}
	case TypeAlias:
		if prevID, err = idField(obj, "previousId"); err != nil {
			return out, "", err
		}
		if userID == "" {
			return out, "", invalid("userId", "is required for alias")
		}
		if prevID == "" {
			return out, "", invalid("previousId", "is required for alias")
		}
	}
	for _, f := range [...]string{"properties", "traits", "context", "integrations"} {
		if x := obj.Get(f); x != nil && x.Type() != fastjson.TypeObject && x.Type() != fastjson.TypeNull {
			return out, "", invalid(f, "must be an object, got %s", x.Type())
		}
	}
	msgID := ""
	if m := obj.Get("messageId"); m != nil && m.Type() != fastjson.TypeNull {
		if m.Type() != fastjson.TypeString {
			return out, "", invalid("messageId", "must be a string, got %s", m.Type())
		}
		msgID = strings.ToValidUTF8(string(m.GetStringBytes()), "\uFFFD")
	}
	if l := utf8.RuneCountInString(msgID); l > MaxMessageIDLength {
		return out, "", invalid("messageId", "is %d characters, at most %d are allowed", l, MaxMessageIDLength)
	}
	if msgID == "" {
		msgID = in.MessageID
	}
	if msgID == "" {
		if n.NewID != nil {
			msgID = n.NewID()
		} else {
			msgID = randomID()
		}
	}

	received := in.ReceivedAt
	if received.IsZero() {
		if n.Now != nil {
			received = n.Now()
		} else {
			received = time.Now()
		}
	}
	received = received.UTC()
	ts, err := timeField(obj, "timestamp")
	if err != nil {
		return out, "", err
	}
	orig, err := timeField(obj, "originalTimestamp")
	if err != nil {
		return out, "", err
	}
	sent, err := timeField(obj, "sentAt")
	if err != nil {
		return out, "", err
	}
	if sent.IsZero() && in.SentAt != "" {
		if sent, err = ParseTimestamp(in.SentAt); err != nil {
			return out, "", invalid("sentAt", "%v", err)
		}
	}
	if orig.IsZero() {
		orig = ts
	}
	// Correct the client's clock as Segment does: the time between the
	// event and its sending, measured on the client, taken back from when
	// the server received it.
	switch {
	case !orig.IsZero() && !sent.IsZero():
		ts = received.Add(-sent.Sub(orig))
	case !orig.IsZero():
		ts = orig
	default:
		ts = received
	}

	// Write the completed event: the event's own fields in their order,
	// managed ones replaced where they stand, then the managed ones it
	// lacked. Nothing is written into v.
	var vals [nManaged]managedValue
	vals[fType].setString(typ)
	vals[fUserID].setString(userID)
	vals[fAnonymousID].setString(anonID)
	vals[fGroupID].setString(groupID)
	vals[fPreviousID].setString(prevID)
	vals[fMessageID].setString(msgID)
	vals[fTimestamp].setTime(ts)
	vals[fOriginalTimestamp].setTime(orig)
	vals[fSentAt].setTime(sent)
	vals[fReceivedAt].setTime(received)
	vals[fContext].setMerge(obj.Get("context"), in.Context)
	vals[fIntegrations].setMerge(obj.Get("integrations"), in.Integrations)

	var written [nManaged]bool
	written[fWriteKey] = true
	w := objectWriter{buf: append(n.out[:0], '{')}
	n.resetSeen(obj.Len())
	obj.Visit(func(key []byte, x *fastjson.Value) {
		if n.seenBefore(key) {
			return
		}
		if m := managedField(key); m >= 0 {
			written[m] = true
			if m == fWriteKey {
				return
			}
			if vals[m].kind != valueNone {
				w.key(key)
				w.buf = vals[m].append(w.buf)
				return
			}
		}
		w.key(key)
		w.buf = AppendJSON(w.buf, x)
	})
	for m, done := range written {
		if !done && vals[m].kind != valueNone {
			w.keyString(managedNames[m])
			w.buf = vals[m].append(w.buf)
		}
	}
	n.out = append(w.buf, '}')

	key := userID
	if key == "" {
		key = anonID
	}
	out.Type = typ
	out.MessageID = msgID
	out.Timestamp = ts
	return out, key, nil
}

// resetSeen prepares seenBefore for the keys of one object of size keys:
// a scan for small objects, a map for large ones, so that a 32 KB event of
// tiny keys stays linear.
func (n *Normalizer) resetSeen(size int) {
	n.seenKeys = n.seenKeys[:0]
	n.seenMap = size > 16
	if n.seenMap {
		if n.seen == nil {
			n.seen = make(map[string]struct{}, size)
		}
		clear(n.seen)
	}
}

// seenBefore reports whether key was seen since resetSeen, and records it.
func (n *Normalizer) seenBefore(key []byte) bool {
	if n.seenMap {
		if _, ok := n.seen[string(key)]; ok {
			return true
		}
		n.seen[string(key)] = struct{}{}
		return false
	}
	for _, k := range n.seenKeys {
		if bytes.Equal(k, key) {
			return true
		}
	}
	n.seenKeys = append(n.seenKeys, key)
	return false
}

// managedValue is what Normalize writes for one managed field.
type managedValue struct {
	kind      uint8
	s         string
	t         time.Time
	own, base *fastjson.Value
}

const (
	valueNone uint8 = iota
	valueString
	valueTime
	valueMerge
)

func (m *managedValue) setString(s string) {
	if s != "" {
		m.kind, m.s = valueString, s
	}
}

func (m *managedValue) setTime(t time.Time) {
	if !t.IsZero() {
		m.kind, m.t = valueTime, t
	}
}

// setMerge merges base (a batch's shared object) under own, the event's.
func (m *managedValue) setMerge(own, base *fastjson.Value) {
	if base != nil && base.Type() == fastjson.TypeObject {
		m.kind, m.own, m.base = valueMerge, own, base
	}
}

func (m *managedValue) append(dst []byte) []byte {
	switch m.kind {
	case valueString:
		return AppendJSONString(dst, m.s)
	case valueTime:
		return appendTime(dst, m.t)
	default:
		return appendMerged(dst, m.own, m.base)
	}
}

// objectWriter writes the members of a JSON object, commas included.
type objectWriter struct {
	buf  []byte
	more bool
}

// key writes the separator before a member, if needed, and its key.
func (w *objectWriter) key(k []byte) {
	if w.more {
		w.buf = append(w.buf, ',')
	}
	w.more = true
	w.buf = AppendJSONString(w.buf, k)
	w.buf = append(w.buf, ':')
}

// keyString is key for a string.
func (w *objectWriter) keyString(k string) {
	if w.more {
		w.buf = append(w.buf, ',')
	}
	w.more = true
	w.buf = AppendJSONString(w.buf, k)
	w.buf = append(w.buf, ':')
}

// appendMerged appends the object own with base merged under it: own's
// keys win; where both hold objects under a key, they merge the same way.
// own may be nil or null (then base is appended as is).
func appendMerged(dst []byte, own, base *fastjson.Value) []byte {
	if own == nil || own.Type() != fastjson.TypeObject {
		return AppendJSON(dst, base)
	}
	o, _ := own.Object()
	b, _ := base.Object()
	w := objectWriter{buf: append(dst, '{')}
	o.Visit(func(key []byte, x *fastjson.Value) {
		w.key(key)
		if bx := b.Get(string(key)); bx != nil && bx.Type() == fastjson.TypeObject && x.Type() == fastjson.TypeObject {
			w.buf = appendMerged(w.buf, x, bx)
			return
		}
		w.buf = AppendJSON(w.buf, x)
	})
	b.Visit(func(key []byte, x *fastjson.Value) {
		if o.Get(string(key)) != nil {
			return
		}
		w.key(key)
		w.buf = AppendJSON(w.buf, x)
	})
	return append(w.buf, '}')
}

// AppendJSON appends v to dst as compact JSON. Unlike fastjson's MarshalTo,
// which quotes strings that need escaping in Go's syntax (\x01, \U0010ffff)
// and writes unvalidated input back verbatim, it escapes strings as JSON
// does and replaces invalid UTF-8, so what it writes always parses.
func AppendJSON(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		w := objectWriter{buf: append(dst, '{')}
		o.Visit(func(key []byte, x *fastjson.Value) {
			w.key(key)
			w.buf = AppendJSON(w.buf, x)
		})
		return append(w.buf, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, x := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSON(dst, x)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		return AppendJSONString(dst, v.GetStringBytes())
	default: // numbers (validated by Parse), true, false, null
		return v.MarshalTo(dst)
	}
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func AppendJSONString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		var rb [utf8.UTFMax]byte
		r, size := utf8.DecodeRune(rb[:copy(rb[:], s[i:])])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	return append(dst, '"')
}

// idField reads an identifier that Segment allows as a string or a number,
// returning it as a string (a number as written, a string with invalid
// UTF-8 replaced); null and absent are "".
func idField(obj *fastjson.Object, name string) (string, error) {
	f := obj.Get(name)
	if f == nil {
		return "", nil
	}
	var s string
	switch f.Type() {
	case fastjson.TypeString:
		// The value is written as valid UTF-8 (JSON's encoding); so is the
		// key, or the two would name different identifiers.
		s = strings.ToValidUTF8(string(f.GetStringBytes()), "\uFFFD")
	case fastjson.TypeNumber:
		s = string(f.MarshalTo(nil))
	case fastjson.TypeNull:
		return "", nil
	default:
		return "", invalid(name, "must be a string or a number, got %s", f.Type())
	}
	if l := utf8.RuneCountInString(s); l > MaxIDLength {
		return "", invalid(name, "is %d characters, at most %d are allowed", l, MaxIDLength)
	}
	return s, nil
}

func timeField(obj *fastjson.Object, name string) (time.Time, error) {
	f := obj.Get(name)
	if f == nil || f.Type() == fastjson.TypeNull {
		return time.Time{}, nil
	}
	if f.Type() != fastjson.TypeString {
		return time.Time{}, invalid(name, "must be an ISO-8601 string, got %s", f.Type())
	}
	t, err := ParseTimestamp(string(f.GetStringBytes()))
	if err != nil {
		return time.Time{}, invalid(name, "%v", err)
	}
	return t, nil
}

// timeLayouts are the ISO-8601 forms accepted: RFC 3339 with or without
// fractional seconds, with a zone (Z, +hh:mm or +hhmm), or a date alone
// (midnight UTC).
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02"}

// ParseTimestamp parses an ISO-8601 timestamp as the Segment spec writes
// them (2026-01-02T15:04:05.000Z, with any zone, or a date alone).
func ParseTimestamp(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO-8601 timestamp (e.g. 2026-01-02T15:04:05.000Z)", s)
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
