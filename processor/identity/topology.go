package identity

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/topology"
)

// Store and node names, part of the topology's interface: the profile API
// reads the stores.
const (
	IdentitiesStore = "identities"
	DedupeStore     = "dedupe"
	ProfilesStore   = "profiles"
	// FeaturesStore is the profile stage's windowed store of feature tiles,
	// keyed by profile id.
	FeaturesStore = "features"
	// TimelineStore is the profile stage's store of profiles' recent
	// events, one entry per event (see timeline.go; ReadTimeline).
	TimelineStore = "timeline"
	// QueueStore is the profile stage's store of the ops waiting while a
	// profile is busy in the merge protocol (queue.go).
	QueueStore = "queue"
)

// Options configures the identity and profile stages.
type Options struct {
	// App prefixes the topics.
	App string
	// Partitions is the partition count of every topic of both stages.
	Partitions int32
	// Rules are the identity rules.
	Rules *Rules
	// DedupeWindow is how long messageIds are remembered.
	DedupeWindow time.Duration
	// RecentEvents is how many recent events a profile keeps.
	RecentEvents int
	// PurchaseEvent and SpendProperty say which track event is a purchase
	// and its spend, recorded per day for the predictions.
	PurchaseEvent, SpendProperty string
	// Features returns the feature definitions in force (they change
	// without a restart); nil, or a nil result, computes none.
	Features func() *features.Set
	// Audiences returns the audiences and triggers in force; nil, or a
	// nil result, evaluates none.
	Audiences func() *audience.Set
	// Predict scores a profile for audience rules: its predictions by
	// horizon and its RFM scores; nil scores nothing.
	Predict func(p *profile.Profile) (predictions, rfm map[string]any)
	// Activate encodes an activation for <app>.activations; nil emits
	// none (a replay with sinks suppressed).
	Activate func(Activation) ([]byte, error)
	// EventsTopic, if set, is read instead of <App>.events: a replay reads
	// the live application's events into a new application id.
	EventsTopic string
	// SkipEvent, if set, is asked about every record of the events topic
	// before it is processed; true drops it unseen (a replay's --to bound,
	// by offset so that where the replay stops is exact).
	SkipEvent func(partition int32, offset int64) bool
	// ErasedAt, if set, is asked about every event's identifiers: the
	// latest time one of them was erased, if any
	// (regulation.Erasures.ErasedAt). An event known by then (the earlier
	// of its timestamp and its receivedAt) belongs to a person erased
	// since, and is dropped. A live run and a replay ask the same list, so
	// a replay never brings an erased person back.
	ErasedAt func(ids []profile.Ident) (time.Time, bool)
	// ErasureGrace is how long an erased profile's marker stays to answer
	// messages already on their way to it; default DefaultErasureGrace.
	ErasureGrace time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer, when set, registers the stages' counters
	// (tessera_profile_sweep_total).
	Registerer prometheus.Registerer
}

// DefaultErasureGrace is Options.ErasureGrace's default: far longer than
// a message spends between two stages, so nothing reaches an erased
// profile after its marker is gone.
const DefaultErasureGrace = 10 * time.Minute

// Topics names the topics of the stages for app.
type Topics struct {
	Events, Links, Ops, Invalid, Activations string
}

// TopicsOf returns the topics of app.
func TopicsOf(app string) Topics {
	return Topics{
		Events:      app + ".events",
		Links:       app + ".identity-links",
		Ops:         app + ".profile-ops",
		Invalid:     app + ".events.invalid",
		Activations: app + ".activations",
	}
}

// Add declares both stages on b.
func Add(b *topology.Builder, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ErasureGrace <= 0 {
		o.ErasureGrace = DefaultErasureGrace
	}
	c, err := newCodecs()
	if err != nil {
		return err
	}
	sweeps, err := newSweepCounter(o.Registerer)
	if err != nil {
		return err
	}
	t := TopicsOf(o.App)
	if o.EventsTopic != "" {
		t.Events = o.EventsTopic
	}
	b.AddSource("events", t.Events, o.Partitions).
		AddSource("links", t.Links, o.Partitions).
		AddProcessor("resolve", func() topology.Processor { return &resolver{o: o, c: c, t: t} }, "events", "links").
		AddStore(IdentitiesStore, topology.KeyValueStore, "resolve").
		AddStore(DedupeStore, topology.KeyValueStore, "resolve").
		AddSink("resolve-ops", t.Ops, "resolve").
		AddSink("resolve-links", t.Links, "resolve").
		AddSink("resolve-invalid", t.Invalid, "resolve")
	b.AddSource("ops", t.Ops, o.Partitions).
		AddProcessor("profile", func() topology.Processor {
			return &profiler{o: o, c: c, t: t, names: interner{}, sweeps: sweeps, recs: newRecordCache(recordCacheSize)}
		}, "ops").
		AddStore(ProfilesStore, topology.KeyValueStore, "profile").
		AddStore(FeaturesStore, topology.WindowStore, "profile").
		AddStore(TimelineStore, topology.KeyValueStore, "profile").
		AddStore(QueueStore, topology.KeyValueStore, "profile").
		AddSink("profile-ops", t.Ops, "profile").
		AddSink("profile-links", t.Links, "profile").
		AddSink("profile-activations", t.Activations, "profile")
	return nil
}

// newSweepCounter returns tessera_profile_sweep_total registered with reg,
// or nil without a reg. When reg holds one already (the stages added twice
// with one Registerer, as a test may), it returns that one, so that both
// count into one series as the features package's counters do; `tessera
// run` and `tessera replay` each make their own registry.
func newSweepCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	if reg == nil {
		return nil, nil
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tessera_profile_sweep_total",
		Help: "Profiles the maintenance sweep's rounds visited (computed, expired, re-evaluated as time passed) or passed by (evaluated by an event or a merge since the round began), by outcome.",
	}, []string{"outcome"})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("registering the sweep counter: %w", err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, fmt.Errorf("registering the sweep counter: %w", err)
		}
		c = existing
	}
	return c, nil
}

// LoadProfile reads a profile from a profiles store value, following
// nothing: it returns the redirect target when the profile was merged.
func LoadProfile(value []byte) (p *profile.Profile, mergedInto string, err error) {
	r, err := decodeRecord(value, nil)
	if err != nil {
		return nil, "", err
	}
	if r.MergedInto != "" {
		return nil, r.MergedInto, nil
	}
	if r.P.ID == "" { // a stub, or an erased profile's marker
		return nil, "", nil
	}
	return &r.P, "", nil
}

// LoadOwner reads an identities store value: the profile owning the
// identifier.
func LoadOwner(value []byte) (string, error) {
	o, err := decodeOwner(value)
	return o.Profile, err
}

// Busy reports whether a profiles store value is waiting in the merge
// protocol (offering, absorbing, or a stub with queued messages).
func Busy(value []byte) (bool, error) {
	r, err := decodeRecord(value, nil)
	if err != nil {
		return false, err
	}
	return r.busy() || r.queued() > 0, nil
}

// LoadAudiences reads the audiences a profiles store value is in, sorted.
func LoadAudiences(value []byte) ([]string, error) {
	r, err := decodeRecord(value, nil)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(r.Audiences))
	for n, in := range r.Audiences {
		if in {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}
