package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/api"
	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
)

// Limits of the data-quality page.
const (
	// qualityTail is how many of the newest records of each partition of
	// <app>.events.invalid the page reads: the reasons of recent trouble,
	// in bounded time whatever the topic's size.
	qualityTail = 500
	// qualityExamples is how many examples each reason shows.
	qualityExamples = 3
	// qualityReasons is how many reasons the page lists, most frequent
	// first.
	qualityReasons = 50
	// exampleBytes bounds an example's raw input.
	exampleBytes = 2000
	// qualityTTL is how long a reading of the topic is served again.
	qualityTTL = 10 * time.Second
	// qualityTimeout bounds one reading of the topic.
	qualityTimeout = 10 * time.Second
)

// Quality serves GET /v1/quality: invalid events by reason, from the tail
// of <app>.events.invalid, and tracking-plan violations by event, from
// the ingest writer's counters and samples.
type Quality struct {
	topic    string
	opts     []kgo.Opt
	gatherer prometheus.Gatherer
	// violations returns the writer's recent violation samples; nil: none.
	violations func() []ingest.ViolationSample

	// mu guards cached and cachedAt, and serialises readings.
	mu       sync.Mutex
	cached   *QualityView
	cachedAt time.Time
}

// NewQuality returns the data-quality route for app, reading the
// invalid-events topic with a client made of opts (kgo.SeedBrokers at
// least), the violation counters from g, and the samples from
// violations.
func NewQuality(app string, g prometheus.Gatherer, violations func() []ingest.ViolationSample, opts ...kgo.Opt) *Quality {
	return &Quality{topic: app + ".events.invalid", opts: opts, gatherer: g, violations: violations}
}

// QualityView is the answer of GET /v1/quality.
type QualityView struct {
	// Invalid are the reasons events were refused, most frequent first,
	// over the Read newest invalid events.
	Invalid []InvalidReason `json:"invalid"`
	// Read is how many invalid events were read; Total how many the topic
	// holds.
	Read  int   `json:"read"`
	Total int64 `json:"total"`
	// Violations are the tracking plans broken since this instance
	// started, by event.
	Violations []PlanViolations `json:"violations"`
	AsOf       time.Time        `json:"as_of"`
}

// InvalidReason is one reason and some of the events refused for it.
type InvalidReason struct {
	Reason   string           `json:"reason"`
	Count    int              `json:"count"`
	Last     time.Time        `json:"last"`
	Examples []InvalidExample `json:"examples"`
}

// InvalidExample is one refused input.
type InvalidExample struct {
	Source     string    `json:"source"`
	ReceivedAt time.Time `json:"received_at"`
	// Raw is the input as received (cut at exampleBytes).
	Raw string `json:"raw"`
}

// PlanViolations is one tracking plan's violations.
type PlanViolations struct {
	Event string `json:"event"`
	// Allowed were published anyway; Blocked went to the invalid topic.
	Allowed  int64              `json:"allowed"`
	Blocked  int64              `json:"blocked"`
	Examples []ViolationExample `json:"examples"`
}

// ViolationExample is one recent violation.
type ViolationExample struct {
	Errors  []string  `json:"errors"`
	Blocked bool      `json:"blocked"`
	At      time.Time `json:"at"`
	Event   string    `json:"event"`
}

// ServeHTTP answers GET /v1/quality.
func (q *Quality) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, err := q.View(r.Context())
	if err != nil {
		api.WriteJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	api.WriteJSON(w, http.StatusOK, v)
}

// View returns the data-quality view, read at most qualityTTL ago.
func (q *Quality) View(ctx context.Context) (*QualityView, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cached != nil && time.Since(q.cachedAt) < qualityTTL {
		return q.cached, nil
	}
	v := &QualityView{Invalid: []InvalidReason{}, Violations: q.planViolations(), AsOf: time.Now().UTC()}
	if err := q.readInvalid(ctx, v); err != nil {
		return nil, err
	}
	q.cached, q.cachedAt = v, time.Now()
	return v, nil
}

// readInvalid reads the newest qualityTail records of each partition and
// groups them by reason.
func (q *Quality) readInvalid(ctx context.Context, v *QualityView) error {
	ctx, cancel := context.WithTimeout(ctx, qualityTimeout)
	defer cancel()
	cl, err := kgo.NewClient(q.opts...)
	if err != nil {
		return fmt.Errorf("reading %s: %w", q.topic, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, q.topic)
	if err != nil {
		return fmt.Errorf("reading %s: %w", q.topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, q.topic)
	if err != nil {
		return fmt.Errorf("reading %s: %w", q.topic, err)
	}
	from := map[int32]kgo.Offset{}
	until := map[int32]int64{}
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil {
			return // no such topic yet: nothing was refused
		}
		start := int64(0)
		if s, ok := starts.Lookup(e.Topic, e.Partition); ok && s.Err == nil {
			start = s.Offset
		}
		v.Total += e.Offset - start
		if e.Offset > start {
			from[e.Partition] = kgo.NewOffset().At(max(start, e.Offset-qualityTail))
			until[e.Partition] = e.Offset
		}
	})
	if len(from) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{q.topic: from})
	byReason := map[string]*InvalidReason{}
	for len(until) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading %s: %w", q.topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return fmt.Errorf("reading %s: %w", q.topic, ferr)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if end, ok := until[rec.Partition]; ok && rec.Offset+1 >= end {
				delete(until, rec.Partition)
			}
			v.Read++
			e, err := schemas.DecodeInvalidEvent(rec.Value)
			if err != nil {
				e = schemas.InvalidEvent{Reason: "unreadable record: " + err.Error(), Raw: rec.Value, ReceivedAt: rec.Timestamp}
			}
			g := byReason[e.Reason]
			if g == nil {
				g = &InvalidReason{Reason: e.Reason, Examples: []InvalidExample{}}
				byReason[e.Reason] = g
			}
			g.Count++
			if e.ReceivedAt.After(g.Last) {
				g.Last = e.ReceivedAt
			}
			ex := InvalidExample{Source: e.Source, ReceivedAt: e.ReceivedAt, Raw: clip(e.Raw)}
			// Keep the newest examples.
			g.Examples = append(g.Examples, ex)
			sort.Slice(g.Examples, func(i, j int) bool { return g.Examples[i].ReceivedAt.After(g.Examples[j].ReceivedAt) })
			if len(g.Examples) > qualityExamples {
				g.Examples = g.Examples[:qualityExamples]
			}
		})
	}
	for _, g := range byReason {
		v.Invalid = append(v.Invalid, *g)
	}
	sort.Slice(v.Invalid, func(i, j int) bool {
		if v.Invalid[i].Count != v.Invalid[j].Count {
			return v.Invalid[i].Count > v.Invalid[j].Count
		}
		return v.Invalid[i].Reason < v.Invalid[j].Reason
	})
	if len(v.Invalid) > qualityReasons {
		v.Invalid = v.Invalid[:qualityReasons]
	}
	return nil
}

// clip cuts raw at exampleBytes, on a rune boundary.
func clip(raw []byte) string {
	if len(raw) <= exampleBytes {
		return string(raw)
	}
	b := raw[:exampleBytes]
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return string(b) + "…"
}

// planViolations adds up tessera_tracking_plan_violations_total by event
// and attaches the writer's samples.
func (q *Quality) planViolations() []PlanViolations {
	byEvent := map[string]*PlanViolations{}
	get := func(event string) *PlanViolations {
		p := byEvent[event]
		if p == nil {
			p = &PlanViolations{Event: event, Examples: []ViolationExample{}}
			byEvent[event] = p
		}
		return p
	}
	fams, _ := q.gatherer.Gather()
	for _, f := range fams {
		if f.GetName() != "tessera_tracking_plan_violations_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			n := int64(m.GetCounter().GetValue())
			p := get(label(m, "event"))
			if label(m, "policy") == "block" {
				p.Blocked += n
			} else {
				p.Allowed += n
			}
		}
	}
	if q.violations != nil {
		for _, s := range q.violations() {
			p := get(s.Event)
			if len(p.Examples) < qualityExamples {
				p.Examples = append(p.Examples, ViolationExample{Errors: s.Errors, Blocked: s.Blocked, At: s.At.UTC(), Event: clip(s.Example)})
			}
		}
	}
	out := []PlanViolations{}
	for _, p := range byEvent {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := out[i].Allowed+out[i].Blocked, out[j].Allowed+out[j].Blocked; a != b {
			return a > b
		}
		return out[i].Event < out[j].Event
	})
	return out
}
