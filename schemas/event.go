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
	// MaxEventBytes is the largest event accepted, as Segment's 32 KB.
	MaxEventBytes = 32 << 10
	// MaxBatchBytes is the largest batch request accepted, as Segment's 500 KB.
	MaxBatchBytes = 500 << 10
	// MaxBatchEvents is the most events one batch may hold.
	MaxBatchEvents = 2500
	// MaxMessageIDLength is the longest messageId accepted.
	MaxMessageIDLength = 100
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

// SyntaxError is malformed JSON, with the byte offset where it breaks.
type SyntaxError struct {
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at byte %d: %s", e.Offset, e.Msg)
}

// syntaxError locates a fastjson parse failure with encoding/json, which
// reports offsets; it only runs on the error path.
func syntaxError(data []byte, perr error) error {
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &SyntaxError{Offset: se.Offset, Msg: se.Error()}
	}
	return &SyntaxError{Offset: int64(len(data)), Msg: perr.Error()}
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
// keep one per goroutine.
type Normalizer struct {
	p     fastjson.Parser
	a     fastjson.Arena
	ts    [4][]byte
	out   []byte
	Now   func() time.Time // receivedAt; default time.Now
	NewID func() string    // messageId when missing; default a random id
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
}

// Parse parses one JSON object, reporting the position of a syntax error.
// The returned value is valid until the next call.
func (n *Normalizer) Parse(data []byte) (*fastjson.Value, error) {
	v, err := n.p.ParseBytes(data)
	if err != nil {
		return nil, syntaxError(data, err)
	}
	return v, nil
}

// Normalize validates one event (a parsed object) and returns it completed.
// Value and Key are freshly allocated and owned by the caller.
func (n *Normalizer) Normalize(v *fastjson.Value, in Input) (Normalized, error) {
	var out Normalized
	obj, err := v.Object()
	if err != nil {
		return out, invalid("", "event must be a JSON object, got %s", v.Type())
	}
	typ := string(v.GetStringBytes("type"))
	switch {
	case obj.Get("type") != nil && obj.Get("type").Type() != fastjson.TypeString:
		return out, invalid("type", "must be a string")
	case typ == "" && in.Type == "":
		return out, invalid("type", "is required (identify, track, page, screen, group or alias)")
	case typ == "":
		typ = in.Type
	case in.Type != "" && typ != in.Type:
		return out, invalid("type", "is %q but the endpoint takes %q", typ, in.Type)
	}
	switch typ {
	case TypeIdentify, TypeTrack, TypePage, TypeScreen, TypeGroup, TypeAlias:
	default:
		return out, invalid("type", "%q is not one of identify, track, page, screen, group, alias", typ)
	}
	userID, err := idField(v, "userId")
	if err != nil {
		return out, err
	}
	anonID, err := idField(v, "anonymousId")
	if err != nil {
		return out, err
	}
	if userID == "" && anonID == "" && typ != TypeAlias {
		return out, invalid("userId", "userId or anonymousId is required")
	}
	switch typ {
	case TypeTrack:
		if ev := v.Get("event"); ev == nil || ev.Type() != fastjson.TypeString || len(ev.GetStringBytes()) == 0 {
			return out, invalid("event", "is required for track and must be a non-empty string")
		}
	case TypeGroup:
		g, err := idField(v, "groupId")
		if err != nil {
			return out, err
		}
		if g == "" {
			return out, invalid("groupId", "is required for group")
		}
	case TypeAlias:
		prev, err := idField(v, "previousId")
		if err != nil {
			return out, err
		}
		if userID == "" {
			return out, invalid("userId", "is required for alias")
		}
		if prev == "" {
			return out, invalid("previousId", "is required for alias")
		}
	}
	for _, f := range []string{"properties", "traits", "context", "integrations"} {
		if x := v.Get(f); x != nil && x.Type() != fastjson.TypeObject && x.Type() != fastjson.TypeNull {
			return out, invalid(f, "must be an object, got %s", x.Type())
		}
	}
	msgID := ""
	if m := v.Get("messageId"); m != nil {
		if m.Type() != fastjson.TypeString {
			return out, invalid("messageId", "must be a string")
		}
		msgID = string(m.GetStringBytes())
	}
	if len(msgID) > MaxMessageIDLength {
		return out, invalid("messageId", "is %d characters, at most %d are allowed", len(msgID), MaxMessageIDLength)
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
	ts, err := timeField(v, "timestamp")
	if err != nil {
		return out, err
	}
	orig, err := timeField(v, "originalTimestamp")
	if err != nil {
		return out, err
	}
	sent, err := timeField(v, "sentAt")
	if err != nil {
		return out, err
	}
	if sent.IsZero() && in.SentAt != "" {
		if sent, err = parseTime(in.SentAt); err != nil {
			return out, invalid("sentAt", "%v", err)
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

	n.a.Reset()
	v.Set("type", n.a.NewString(typ))
	if userID != "" {
		v.Set("userId", n.a.NewString(userID))
	}
	if anonID != "" {
		v.Set("anonymousId", n.a.NewString(anonID))
	}
	v.Set("messageId", n.a.NewString(msgID))
	v.Set("timestamp", n.a.NewStringBytes(n.fmt(0, ts)))
	v.Set("receivedAt", n.a.NewStringBytes(n.fmt(1, received)))
	if !orig.IsZero() {
		v.Set("originalTimestamp", n.a.NewStringBytes(n.fmt(2, orig)))
	}
	if !sent.IsZero() {
		v.Set("sentAt", n.a.NewStringBytes(n.fmt(3, sent)))
	}
	n.out = v.MarshalTo(n.out[:0])
	if len(n.out) > MaxEventBytes {
		return out, invalid("", "event is %d bytes, the limit is %d (32 KB)", len(n.out), MaxEventBytes)
	}
	key := userID
	if key == "" {
		key = anonID
	}
	out.Key = []byte(key)
	out.Value = bytes.Clone(n.out)
	out.Type = typ
	out.MessageID = msgID
	out.Timestamp = ts
	return out, nil
}

func (n *Normalizer) fmt(slot int, t time.Time) []byte {
	n.ts[slot] = t.UTC().AppendFormat(n.ts[slot][:0], "2006-01-02T15:04:05.000Z")
	return n.ts[slot]
}

// idField reads an identifier that Segment allows as a string or a number,
// returning it as a string; null and absent are "".
func idField(v *fastjson.Value, name string) (string, error) {
	f := v.Get(name)
	if f == nil {
		return "", nil
	}
	switch f.Type() {
	case fastjson.TypeString:
		s := string(f.GetStringBytes())
		if len(s) > 1024 {
			return "", invalid(name, "is %d characters, at most 1024 are allowed", len(s))
		}
		return s, nil
	case fastjson.TypeNumber:
		return strings.TrimSpace(string(f.MarshalTo(nil))), nil
	case fastjson.TypeNull:
		return "", nil
	}
	return "", invalid(name, "must be a string or a number, got %s", f.Type())
}

func timeField(v *fastjson.Value, name string) (time.Time, error) {
	f := v.Get(name)
	if f == nil || f.Type() == fastjson.TypeNull {
		return time.Time{}, nil
	}
	if f.Type() != fastjson.TypeString {
		return time.Time{}, invalid(name, "must be an ISO-8601 string")
	}
	t, err := parseTime(string(f.GetStringBytes()))
	if err != nil {
		return time.Time{}, invalid(name, "%v", err)
	}
	return t, nil
}

// timeLayouts are the ISO-8601 forms accepted: RFC 3339 with or without
// fractional seconds, with a zone, or a date alone (midnight UTC).
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02"}

func parseTime(s string) (time.Time, error) {
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
