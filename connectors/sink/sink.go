// Package sink delivers activations to destinations: the contract every
// sink implements, and (runtime.go) the runtime that feeds one: a consumer
// group per destination on <app>.activations, filters, templates,
// batching, retries with backoff, a rate limit, the dead-letter topic and
// the delivery log. The model is Redpanda Connect's outputs: Connect,
// WriteBatch, Close; every activation ends acknowledged or dead-lettered.
package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tessera-cdp/tessera/schemas"
)

// Activation types.
const (
	AudienceEntered = "audience_entered"
	AudienceExited  = "audience_exited"
	EventTriggered  = "event_triggered"
	// ProfileDeleted tells a destination to forget the profile (erasure).
	ProfileDeleted = "profile_deleted"
)

// Activation is what a destination acts on.
type Activation struct {
	// ID is unique and deterministic: receivers dedupe on it (it is sent
	// as the idempotency key).
	ID string `json:"id"`
	// Type is AudienceEntered, AudienceExited or EventTriggered.
	Type string `json:"type"`
	// Name is the audience or trigger.
	Name      string    `json:"name"`
	ProfileID string    `json:"profile_id"`
	Timestamp time.Time `json:"timestamp"`
	// Profile is the profile snapshot (JSON object).
	Profile json.RawMessage `json:"profile"`
	// Event is the triggering event for EventTriggered (JSON), else nil.
	Event json.RawMessage `json:"event,omitempty"`
	// Destinations are the destinations the audience or trigger names.
	// Empty: every destination whose filter takes it gets it. Not empty:
	// these get it, and others only if their filter names it (see
	// Runner's routing rule).
	Destinations []string `json:"destinations,omitempty"`
}

// Sink delivers batches of activations to one destination.
type Sink interface {
	// Connect prepares the sink (dial, check credentials). The runtime
	// retries it with backoff.
	Connect(ctx context.Context) error
	// WriteBatch delivers the batch (one activation when the channel has
	// no batches). It returns nil when all were delivered, a *BatchError
	// naming the ones that failed, or an error for the whole batch.
	// Errors are retried unless marked Permanent; RetryAfter asks for a
	// wait before the next attempt.
	WriteBatch(ctx context.Context, batch []Activation) error
	// Close releases the sink; it is idempotent.
	Close(ctx context.Context) error
}

// Notifier is implemented by the sinks that send a person or a team a
// message (email, SMS, chat) and keep no copy of profiles: a
// profile_deleted notice has nothing to erase there, and must never become
// a message to the person erased. The runtime does not deliver such
// notices to them.
type Notifier interface {
	Sink
	// Notifies marks the sink; it does nothing.
	Notifies()
}

// BatchError reports the activations of a batch that failed, by index;
// the others were delivered.
type BatchError struct {
	Failed map[int]error
}

func (e *BatchError) Error() string {
	for i, err := range e.Failed {
		return fmt.Sprintf("%d of the batch failed, e.g. #%d: %v", len(e.Failed), i, err)
	}
	return "batch failed"
}

// Fail records that activation i failed with err.
func (e *BatchError) Fail(i int, err error) *BatchError {
	if e.Failed == nil {
		e.Failed = make(map[int]error)
	}
	e.Failed[i] = err
	return e
}

type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Permanent marks err as not worth retrying (a 400, a refused address):
// the activation goes to the dead-letter topic at once.
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool { var p permanent; return errors.As(err, &p) }

type retryAfter struct {
	error
	after time.Duration
}

func (r retryAfter) Unwrap() error { return r.error }

// RetryAfter marks err as retryable no sooner than after (HTTP 429's or
// 503's Retry-After).
func RetryAfter(err error, after time.Duration) error { return retryAfter{err, after} }

// RetryAfterOf returns the wait err asks for, if any.
func RetryAfterOf(err error) (time.Duration, bool) {
	var r retryAfter
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}

// Encode returns a in Avro binary (schemas/avro/activation.avsc).
func (a Activation) Encode() ([]byte, error) {
	c, err := schemas.Codec("activation")
	if err != nil {
		return nil, err
	}
	ev := []byte(a.Event)
	if ev == nil {
		ev = []byte{}
	}
	b, err := c.BinaryFromNative(nil, map[string]any{
		"id": a.ID, "type": a.Type, "name": a.Name, "profile_id": a.ProfileID,
		"timestamp": a.Timestamp.UnixMilli(), "profile": []byte(a.Profile), "event": ev,
		"destinations": stringsToAny(a.Destinations),
	})
	if err != nil {
		return nil, fmt.Errorf("encoding activation %s: %w", a.ID, err)
	}
	return b, nil
}

// Decode decodes an <app>.activations value.
func Decode(b []byte) (Activation, error) {
	c, err := schemas.Codec("activation")
	if err != nil {
		return Activation{}, err
	}
	n, _, err := c.NativeFromBinary(b)
	if err != nil {
		return Activation{}, fmt.Errorf("decoding activation: %w", err)
	}
	m := n.(map[string]any)
	a := Activation{
		ID: m["id"].(string), Type: m["type"].(string), Name: m["name"].(string), ProfileID: m["profile_id"].(string),
		Timestamp: time.UnixMilli(m["timestamp"].(int64)).UTC(), Profile: m["profile"].([]byte),
	}
	if ev := m["event"].([]byte); len(ev) > 0 {
		a.Event = ev
	}
	if ds, _ := m["destinations"].([]any); len(ds) > 0 {
		a.Destinations = make([]string, len(ds))
		for i, d := range ds {
			a.Destinations[i], _ = d.(string)
		}
	}
	return a, nil
}

// stringsToAny is ss as goavro's native array.
func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
