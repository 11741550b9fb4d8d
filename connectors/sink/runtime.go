package sink

// The runtime: a Runner feeds one destination's Sink.
//
// # Design
//
// A Runner is one member of the consumer group <app>.sink.<name> on
// <app>.activations and <app>.activations.retry.<name> (the topic
// ReplayDLQ writes to). Every destination has its own group and its own
// client, so one that is slow or down never holds another back: they
// share nothing but the cluster.
//
// The loop polls up to a batch of records (waiting a short linger for a
// batch to fill), decodes and filters them, and delivers what is left in
// batches of at most BatchSize with at most one activation per profile.
// Batches run one after another, each until every activation in it is
// delivered or durably dead-lettered; so a profile's activations reach the
// receiver in the order they were written (a dead-lettered one excepted),
// even when a sink fails part of a batch. Then it commits, per partition,
// the offset after the last record up to which everything is done.
//
// A failed write is retried (the whole batch, or the indexes a BatchError
// names) after a jittered exponential backoff between BackoffMin and
// BackoffMax, or after the RetryAfter the error asks for if that is
// longer, until MaxAttempts; a Permanent error, or the last attempt, sends
// the activation to <app>.activations.dlq (see deadletter.go). The rate
// limit is taken before each write, one token per activation.
//
// INVARIANT: an offset is committed only once every record before it on
// its partition is delivered, filtered out, or acknowledged by the
// dead-letter topic with acks=all. A crash redelivers what was not
// committed: delivery is at-least-once, and receivers deduplicate on the
// activation id (the idempotency key).
//
// Rebalances wait while a poll is delivered (kgo.BlockRebalanceOnPoll),
// so a commit never lands on a partition the member no longer owns; a
// poll takes at most about MaxAttempts × (Timeout + BackoffMax), which
// sets the group's rebalance timeout (1m to 5m). They hold back only this
// destination's group. A member that overruns it is dropped from the
// group, its commit fails and the new owner delivers the poll again: a
// duplicate, never a loss.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"
	"golang.org/x/time/rate"

	"github.com/tessera-cdp/tessera/config"
)

// ErrNotConnected is returned (wrapped) by a Sink's WriteBatch when its
// connection is gone: the runtime closes the sink and connects it again
// before the next attempt. The attempt counts as failed.
var ErrNotConnected = errors.New("sink: not connected")

// The defaults of config.Delivery's zero values.
const (
	// DefaultMaxAttempts is how many writes an activation gets before
	// the dead-letter topic.
	DefaultMaxAttempts = 8
	// DefaultBackoffMin is the first retry's backoff, before jitter.
	DefaultBackoffMin = 200 * time.Millisecond
	// DefaultBackoffMax caps the backoff, before jitter.
	DefaultBackoffMax = 30 * time.Second
	// DefaultBatchSize is the most activations per write.
	DefaultBatchSize = 100
	// DefaultTimeout bounds one write, and one Connect.
	DefaultTimeout = 10 * time.Second
)

// deliveryLogSize is how many deliveries a Runner remembers.
const deliveryLogSize = 1000

// commitTimeout bounds an offset commit, which runs even after Run's
// context has ended.
const commitTimeout = 10 * time.Second

// Clock is the runtime's time: when things happen (the delivery log, the
// rate limit, Retry-After) and its waits (backoff, rate limit). Tests
// replace it to measure waits without waiting.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits d, or until ctx ends, when it returns ctx's error.
	Sleep(ctx context.Context, d time.Duration) error
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Opt configures a Runner, ReplayDLQ or ListDLQ.
type Opt interface{ apply(*cfg) }

type opt func(*cfg)

func (o opt) apply(c *cfg) { o(c) }

type cfg struct {
	brokers       []string
	clientOpts    []kgo.Opt
	log           *slog.Logger
	reg           prometheus.Registerer
	clock         Clock
	linger        time.Duration
	partitions    int32
	replication   int16
	lagInterval   time.Duration
	maxRetryAfter time.Duration
	replayAll     bool
}

func defaultCfg() cfg {
	return cfg{
		log:           slog.Default(),
		clock:         systemClock{},
		linger:        5 * time.Millisecond,
		partitions:    -1,
		replication:   -1,
		lagInterval:   5 * time.Second,
		maxRetryAfter: 10 * time.Minute,
	}
}

// Brokers sets the hub's seed brokers, where the activations, the retry
// topics and the dead-letter topic live. There is no default: it is
// required.
func Brokers(addrs ...string) Opt {
	return opt(func(c *cfg) { c.brokers = addrs })
}

// ClientOpts adds options to the Kafka client (TLS, SASL, timeouts), after
// and so overriding the Runner's: the group <app>.sink.<name>,
// read_committed, offsets committed by the Runner only, rebalances held
// while a poll is delivered with a rebalance timeout of MaxAttempts ×
// (Timeout + BackoffMax) between 1m and 5m, a new group starting at the
// earliest offset, and acks=all for the dead-letter topic.
func ClientOpts(opts ...kgo.Opt) Opt {
	return opt(func(c *cfg) { c.clientOpts = append(c.clientOpts, opts...) })
}

// Logger sets the logger, overriding slog.Default().
func Logger(l *slog.Logger) Opt {
	return opt(func(c *cfg) { c.log = l })
}

// Registerer registers the metrics with reg, overriding the default of not
// registering them. Runners may share a registry: every metric has a
// destination label. See Metrics.
func Registerer(reg prometheus.Registerer) Opt {
	return opt(func(c *cfg) { c.reg = reg })
}

// WithClock sets the clock, overriding the system's.
func WithClock(c Clock) Opt {
	return opt(func(cf *cfg) { cf.clock = c })
}

// Linger sets how long a poll that returned less than a batch waits for
// more before delivering, overriding the default 5ms. Zero delivers what
// the first poll returns.
func Linger(d time.Duration) Opt {
	return opt(func(c *cfg) { c.linger = d })
}

// Topics sets the partitions and replication factor of the topics the
// Runner creates when missing (<app>.activations.dlq and
// <app>.activations.retry.<name>), overriding the default of the broker's
// defaults (-1, -1).
func Topics(partitions int32, replication int16) Opt {
	return opt(func(c *cfg) { c.partitions, c.replication = partitions, replication })
}

// LagInterval sets how often tessera_sink_lag is measured, overriding the
// default 5s.
func LagInterval(d time.Duration) Opt {
	return opt(func(c *cfg) { c.lagInterval = d })
}

// MaxRetryAfter caps the wait a RetryAfter error may ask for, overriding
// the default 10m: a receiver asking for longer is tried again after the
// cap (and usually asks again, using up an attempt).
func MaxRetryAfter(d time.Duration) Opt {
	return opt(func(c *cfg) { c.maxRetryAfter = d })
}

// ReplayAll makes ReplayDLQ send every dead letter of the destination
// again, overriding the default of only those not replayed before.
func ReplayAll() Opt {
	return opt(func(c *cfg) { c.replayAll = true })
}

// Delivery statuses in the delivery log.
const (
	// StatusDelivered: the sink delivered the activation.
	StatusDelivered = "delivered"
	// StatusRetrying: an attempt failed; another follows.
	StatusRetrying = "retrying"
	// StatusDeadLettered: the activation is on the dead-letter topic.
	StatusDeadLettered = "dead_lettered"
)

// Delivery is one entry of a destination's delivery log: an attempt's
// outcome for one activation. Activations the destination's filter drops
// are not logged (they are counted in tessera_sink_filtered_total).
type Delivery struct {
	ActivationID string
	Type         string
	Name         string
	ProfileID    string
	// Status is StatusDelivered, StatusRetrying or StatusDeadLettered.
	Status string
	// Attempts is how many writes the activation has had.
	Attempts int
	// Error is the last attempt's error, "" when delivered.
	Error string
	// At is when the outcome was known, on the Runner's clock.
	At time.Time
	// Latency is the time from the activation's record being written to
	// its topic until At.
	Latency time.Duration
}

// Connection states of a Runner.
const (
	// StateStarting: Run has not connected the sink yet.
	StateStarting = "starting"
	// StateConnecting: the sink is connecting, or reconnecting after a
	// lost connection; Connect is retried with backoff.
	StateConnecting = "connecting"
	// StateConnected: the sink is connected and delivering.
	StateConnected = "connected"
	// StateStopped: Run has returned.
	StateStopped = "stopped"
)

// Status is a destination's state and counts since its Runner started.
type Status struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// State is StateStarting, StateConnecting, StateConnected or
	// StateStopped.
	State        string `json:"state"`
	Connected    bool   `json:"connected"`
	Sent         int64  `json:"sent"`
	Failed       int64  `json:"failed"`
	Retried      int64  `json:"retried"`
	DeadLettered int64  `json:"dead_lettered"`
	Filtered     int64  `json:"filtered"`
	// Lag is how many activations on this member's partitions are not yet
	// committed, as last measured.
	Lag         int64      `json:"lag"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// Runner delivers activations to one destination. Build it with NewRunner
// and run it with Run, once; its other methods are safe for concurrent
// use.
type Runner struct {
	app        string
	dest       config.Destination
	d          config.Delivery // with defaults
	s          Sink
	cfg        cfg
	log        *slog.Logger
	m          destMetrics
	limiter    *rate.Limiter // nil: unlimited
	batchSize  int
	audiences  map[string]bool // nil: all
	types      map[string]bool // nil: all
	group      string
	topics     []string // consumed
	dlqTopic   string
	retryTopic string

	started atomic.Bool
	cl      *kgo.Client // set by Run before the first delivery

	sent, failed, retried, deadLettered, filtered, lag atomic.Int64

	mu        sync.Mutex
	state     string
	lastErr   string
	lastErrAt time.Time
	ring      []Delivery // the log, a ring of deliveryLogSize
	next      int        // where the next entry goes in ring
}

// topicName matches what a destination name may hold to be part of a
// topic and group name.
var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// NewRunner returns a Runner delivering the activations of application app
// to dest through s. Brokers is a required option.
func NewRunner(app string, dest config.Destination, s Sink, opts ...Opt) (*Runner, error) {
	c := defaultCfg()
	for _, o := range opts {
		o.apply(&c)
	}
	if !topicName.MatchString(dest.Name) {
		return nil, fmt.Errorf("destination %q: the name must match [a-zA-Z0-9._-]+", dest.Name)
	}
	if !topicName.MatchString(app) {
		return nil, fmt.Errorf("destination %s: app %q must match [a-zA-Z0-9._-]+", dest.Name, app)
	}
	if s == nil {
		return nil, fmt.Errorf("destination %s: no sink", dest.Name)
	}
	if len(c.brokers) == 0 {
		return nil, fmt.Errorf("destination %s: no brokers (use the Brokers option)", dest.Name)
	}
	d, err := withDefaults(dest.Delivery)
	if err != nil {
		return nil, fmt.Errorf("destination %s: delivery: %w", dest.Name, err)
	}
	m, err := newMetrics(c.reg)
	if err != nil {
		return nil, fmt.Errorf("destination %s: registering metrics: %w", dest.Name, err)
	}
	r := &Runner{
		app:        app,
		dest:       dest,
		d:          d,
		s:          s,
		cfg:        c,
		log:        c.log.With("destination", dest.Name, "type", dest.Type),
		m:          m.curry(dest.Name),
		batchSize:  d.BatchSize,
		audiences:  set(dest.Audiences),
		types:      set(dest.Types),
		group:      Group(app, dest.Name),
		topics:     []string{ActivationsTopic(app), RetryTopic(app, dest.Name)},
		dlqTopic:   DLQTopic(app),
		retryTopic: RetryTopic(app, dest.Name),
		state:      StateStarting,
		ring:       make([]Delivery, 0, deliveryLogSize),
	}
	if d.RatePerSecond > 0 {
		// A burst of one second's tokens, and batches no larger, so
		// that the rate is a cap on every second, not an average.
		burst := max(1, int(d.RatePerSecond))
		r.limiter = rate.NewLimiter(rate.Limit(d.RatePerSecond), burst)
		r.batchSize = min(r.batchSize, burst)
	}
	return r, nil
}

// withDefaults fills d's zero values and checks it.
func withDefaults(d config.Delivery) (config.Delivery, error) {
	if d.MaxAttempts == 0 {
		d.MaxAttempts = DefaultMaxAttempts
	}
	if d.BackoffMin == 0 {
		d.BackoffMin = config.Duration(DefaultBackoffMin)
	}
	if d.BackoffMax == 0 {
		d.BackoffMax = config.Duration(max(DefaultBackoffMax, time.Duration(d.BackoffMin)))
	}
	if d.BatchSize == 0 {
		d.BatchSize = DefaultBatchSize
	}
	if d.Timeout == 0 {
		d.Timeout = config.Duration(DefaultTimeout)
	}
	switch {
	case d.MaxAttempts < 1:
		return d, fmt.Errorf("max_attempts must be at least 1, got %d", d.MaxAttempts)
	case d.BatchSize < 1:
		return d, fmt.Errorf("batch_size must be at least 1, got %d", d.BatchSize)
	case d.BackoffMin < 0 || d.BackoffMax < d.BackoffMin:
		return d, fmt.Errorf("backoff_min (%s) must not be negative nor above backoff_max (%s)", d.BackoffMin, d.BackoffMax)
	case d.Timeout < 0:
		return d, fmt.Errorf("timeout must be positive, got %s", d.Timeout)
	case d.RatePerSecond < 0:
		return d, fmt.Errorf("rate_per_second must not be negative, got %g", d.RatePerSecond)
	}
	return d, nil
}

func set(xs []string) map[string]bool {
	if len(xs) == 0 {
		return nil
	}
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// ActivationsTopic returns the topic activations are written to:
// <app>.activations.
func ActivationsTopic(app string) string { return app + ".activations" }

// RetryTopic returns the topic ReplayDLQ writes a destination's dead
// letters back to, which only that destination's Runner reads:
// <app>.activations.retry.<name>.
func RetryTopic(app, destination string) string {
	return app + ".activations.retry." + destination
}

// Group returns a destination's consumer group: <app>.sink.<name>.
func Group(app, destination string) string { return app + ".sink." + destination }

// Name returns the destination's name.
func (r *Runner) Name() string { return r.dest.Name }

// Destination returns the destination the Runner delivers to.
func (r *Runner) Destination() config.Destination { return r.dest }

// Run delivers until ctx ends, then commits what is done, closes the sink
// and returns nil. It returns an error only when the Kafka client cannot
// be created, or when called a second time. Connecting the sink and
// creating the topics are retried with backoff until they succeed.
func (r *Runner) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return fmt.Errorf("destination %s: the Runner has run already", r.dest.Name)
	}
	defer r.setState(StateStopped)
	// A poll holds rebalances of this destination's group until it is
	// delivered: give it about as long as its attempts can take.
	pollTime := time.Duration(r.d.MaxAttempts) * (time.Duration(r.d.Timeout) + time.Duration(r.d.BackoffMax))
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(r.cfg.brokers...),
		kgo.ConsumeTopics(r.topics...),
		kgo.ConsumerGroup(r.group),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.RebalanceTimeout(min(max(time.Minute, pollTime), 5*time.Minute)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	}, r.cfg.clientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("destination %s: creating the Kafka client: %w", r.dest.Name, err)
	}
	defer cl.Close()
	defer cl.AllowRebalance() // else leaving the group on Close waits for it
	r.cl = cl
	adm := kadm.NewClient(cl)

	err = r.retry(ctx, "creating the retry and dead-letter topics", func() error {
		return ensureTopics(ctx, adm, r.cfg.partitions, r.cfg.replication, r.dlqTopic, r.retryTopic)
	})
	if err != nil {
		return nil // ctx ended
	}
	if r.connect(ctx) != nil {
		return nil
	}
	defer r.close(ctx)

	lagCtx, stopLag := context.WithCancel(ctx)
	var lagDone sync.WaitGroup
	lagDone.Go(func() { r.watchLag(lagCtx, adm) })
	defer func() { stopLag(); lagDone.Wait() }()

	r.log.Info("delivering", "group", r.group, "takes", r.describe())
	for {
		recs, closed := r.poll(ctx)
		if closed {
			break
		}
		items := r.process(ctx, recs)
		r.commit(ctx, items)
		cl.AllowRebalance()
		if ctx.Err() != nil {
			break
		}
	}
	r.log.Info("stopped delivering", "group", r.group)
	return nil
}

// poll returns up to a batch of records, lingering briefly for a batch to
// fill. closed reports that the client is closed or ctx ended.
func (r *Runner) poll(ctx context.Context) (recs []*kgo.Record, closed bool) {
	fs := r.cl.PollRecords(ctx, r.batchSize)
	if fs.IsClientClosed() || ctx.Err() != nil {
		return nil, true
	}
	r.logFetchErrors(fs)
	recs = fs.Records()
	if r.cfg.linger > 0 && len(recs) > 0 && len(recs) < r.batchSize {
		lctx, cancel := context.WithTimeout(ctx, r.cfg.linger)
		more := r.cl.PollRecords(lctx, r.batchSize-len(recs))
		cancel()
		r.logFetchErrors(more)
		recs = append(recs, more.Records()...)
	}
	return recs, false
}

func (r *Runner) logFetchErrors(fs kgo.Fetches) {
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			r.log.Warn("fetching activations", "topic", topic, "partition", p, "err", err)
		}
	})
}

// item is one record of a poll on its way.
type item struct {
	rec      *kgo.Record
	act      Activation
	attempts int
	err      error // the last attempt's
	done     bool  // delivered, filtered out or dead-lettered
}

// process delivers a poll's records and returns them with what became of
// each; those not done when ctx ended are left undone.
func (r *Runner) process(ctx context.Context, recs []*kgo.Record) []*item {
	items := make([]*item, len(recs))
	var pending, undecodable []*item
	for i, rec := range recs {
		it := &item{rec: rec}
		items[i] = it
		a, err := Decode(rec.Value)
		switch {
		case err != nil:
			it.err = err
			undecodable = append(undecodable, it)
		case !r.wants(a):
			it.done = true
			r.filtered.Add(1)
			r.m.filtered.Inc()
		default:
			it.act = a
			pending = append(pending, it)
		}
	}
	if len(undecodable) > 0 {
		if r.deadLetter(ctx, undecodable, stageDecode) != nil {
			return items
		}
	}
	for len(pending) > 0 {
		var batch []*item
		batch, pending = nextBatch(pending, r.batchSize)
		if r.deliver(ctx, batch) != nil {
			break // ctx ended
		}
	}
	return items
}

// wants reports whether the destination takes a. The routing rule:
//
//   - a profile_deleted notice goes to every destination, whatever its
//     filters: each must forget the person; but not to a Notifier, which
//     holds nothing to forget and would message the person;
//   - the destination's types filter, when set, applies;
//   - an activation that names destinations (its audience or trigger
//     lists them) goes to those, and to a destination whose audiences
//     filter names its audience explicitly;
//   - one that names none goes wherever the audiences filter takes it
//     (an empty filter takes all);
//   - a destination with consent categories takes only the activations of
//     people who granted every one of them (the snapshot's "consent").
//
// So an audience that picks its destinations does not also reach every
// destination that takes all, while a destination set to follow an
// audience by name keeps following it.
func (r *Runner) wants(a Activation) bool {
	if a.Type == ProfileDeleted {
		_, notifier := r.s.(Notifier)
		return !notifier
	}
	if r.types != nil && !r.types[a.Type] {
		return false
	}
	routed := r.audiences == nil || r.audiences[a.Name]
	if len(a.Destinations) > 0 {
		routed = slices.Contains(a.Destinations, r.dest.Name) || r.audiences[a.Name]
	}
	return routed && consented(a.Profile, r.dest.Categories)
}

// consented reports whether the profile snapshot's consent grants every
// one of categories; a category it does not mention is not granted. The
// snapshot is parsed once, not once per category (fastjson.GetBool
// parses the whole document on every call).
func consented(profile []byte, categories []string) bool {
	if len(categories) == 0 {
		return true
	}
	v, err := fastjson.ParseBytes(profile)
	if err != nil {
		return false
	}
	consent := v.Get("consent")
	for _, c := range categories {
		if !consent.GetBool(c) {
			return false
		}
	}
	return true
}

// nextBatch splits pending into the next batch, of at most n activations
// and at most one per profile, and the rest, each in order. A profile
// whose first pending activation is not in the batch has none in it, so a
// profile's activations are delivered in order.
func nextBatch(pending []*item, n int) (batch, rest []*item) {
	seen := make(map[string]bool, min(len(pending), n))
	for _, it := range pending {
		if len(batch) < n && !seen[it.act.ProfileID] {
			batch = append(batch, it)
		} else {
			rest = append(rest, it)
		}
		seen[it.act.ProfileID] = true
	}
	return batch, rest
}

// deliver writes batch until each activation is delivered or
// dead-lettered. It returns an error only when ctx ends.
func (r *Runner) deliver(ctx context.Context, batch []*item) error {
	todo := batch
	for round := 1; ; round++ {
		if err := r.takeRate(ctx, len(todo)); err != nil {
			return err
		}
		acts := make([]Activation, len(todo))
		for i, it := range todo {
			acts[i] = it.act
		}
		wctx, cancel := context.WithTimeout(ctx, time.Duration(r.d.Timeout))
		start := r.cfg.clock.Now()
		err := r.s.WriteBatch(wctx, acts)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err() // stopping: the attempt does not count
		}
		now := r.cfg.clock.Now()
		var batchErr *BatchError
		partial := errors.As(err, &batchErr)
		var (
			retry, dead []*item
			wait        time.Duration
			reconnect   bool
		)
		for i, it := range todo {
			it.attempts++
			ierr := err
			if partial {
				ierr = batchErr.Failed[i]
			}
			if ierr == nil {
				it.done = true
				r.sent.Add(1)
				r.m.sent.Inc()
				lat := r.latency(it, now)
				r.m.latency.Observe(lat.Seconds())
				r.logDelivery(it, StatusDelivered, now, lat)
				continue
			}
			it.err = fmt.Errorf("delivering to %s: %w", r.dest.Name, ierr)
			r.failed.Add(1)
			r.m.failed.Inc()
			r.setLastError(it.err, now)
			reconnect = reconnect || errors.Is(ierr, ErrNotConnected)
			if IsPermanent(ierr) || it.attempts >= r.d.MaxAttempts {
				dead = append(dead, it)
				continue
			}
			if ra, ok := RetryAfterOf(ierr); ok {
				wait = max(wait, min(ra, r.cfg.maxRetryAfter))
			}
			retry = append(retry, it)
			r.retried.Add(1)
			r.m.retried.Inc()
			r.logDelivery(it, StatusRetrying, now, r.latency(it, now))
		}
		if len(retry)+len(dead) > 0 {
			r.log.Debug("write failed", "activations", len(todo), "retrying", len(retry), "dead_lettering", len(dead),
				"took", now.Sub(start), "err", firstErr(retry, dead))
		}
		if len(dead) > 0 {
			if err := r.deadLetter(ctx, dead, stageDeliver); err != nil {
				return err
			}
		}
		if len(retry) == 0 {
			return nil
		}
		if reconnect {
			r.close(ctx)
			if err := r.connect(ctx); err != nil {
				return err
			}
		}
		wait = max(wait, r.backoff(round))
		if err := r.cfg.clock.Sleep(ctx, wait); err != nil {
			return err
		}
		todo = retry
	}
}

func firstErr(lists ...[]*item) error {
	for _, l := range lists {
		for _, it := range l {
			return it.err
		}
	}
	return nil
}

// latency is the time from it's record being written to now.
func (r *Runner) latency(it *item, now time.Time) time.Duration {
	return max(now.Sub(it.rec.Timestamp), 0)
}

// takeRate waits for n tokens of the rate limit.
func (r *Runner) takeRate(ctx context.Context, n int) error {
	if r.limiter == nil {
		return nil
	}
	now := r.cfg.clock.Now()
	res := r.limiter.ReserveN(now, n) // n ≤ burst: batches are no larger
	return r.cfg.clock.Sleep(ctx, res.DelayFrom(now))
}

// backoff returns the jittered wait before attempt round+1: between half
// and all of BackoffMin·2^(round-1), capped at BackoffMax.
func (r *Runner) backoff(round int) time.Duration {
	lo, hi := time.Duration(r.d.BackoffMin), time.Duration(r.d.BackoffMax)
	d := lo
	for i := 1; i < round && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// retry calls fn until it succeeds or ctx ends, backing off in between.
func (r *Runner) retry(ctx context.Context, what string, fn func() error) error {
	for round := 1; ; round++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.setLastError(fmt.Errorf("%s: %w", what, err), r.cfg.clock.Now())
		r.log.Warn(what+"; retrying", "attempt", round, "err", err)
		if err := r.cfg.clock.Sleep(ctx, r.backoff(round)); err != nil {
			return err
		}
	}
}

// connect connects the sink, retrying with backoff until it succeeds or
// ctx ends.
func (r *Runner) connect(ctx context.Context) error {
	r.setState(StateConnecting)
	err := r.retry(ctx, "connecting", func() error {
		cctx, cancel := context.WithTimeout(ctx, time.Duration(r.d.Timeout))
		defer cancel()
		err := r.s.Connect(cctx)
		if err != nil {
			r.m.connErrors.Inc()
		}
		return err
	})
	if err != nil {
		return err
	}
	r.setState(StateConnected)
	return nil
}

// close closes the sink, even after ctx has ended.
func (r *Runner) close(ctx context.Context) {
	r.setState(StateConnecting)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(r.d.Timeout))
	defer cancel()
	if err := r.s.Close(cctx); err != nil {
		r.log.Warn("closing the sink", "err", err)
	}
}

// commit commits, per partition, the offset after the last record up to
// which every record of the poll is done. It runs even after ctx has
// ended. A failed commit is logged: those activations will be delivered
// again, with the same idempotency key.
func (r *Runner) commit(ctx context.Context, items []*item) {
	type tp struct {
		topic string
		p     int32
	}
	last := make(map[tp]*kgo.Record)
	blocked := make(map[tp]bool)
	for _, it := range items {
		k := tp{it.rec.Topic, it.rec.Partition}
		if blocked[k] {
			continue
		}
		if !it.done {
			blocked[k] = true
			continue
		}
		last[k] = it.rec
	}
	if len(last) == 0 {
		return
	}
	recs := make([]*kgo.Record, 0, len(last))
	for _, rec := range last {
		recs = append(recs, rec)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := r.cl.CommitRecords(cctx, recs...); err != nil {
		r.log.Warn("committing offsets; those activations will be delivered again", "err", err)
	}
}

// watchLag measures the lag of this member's partitions every
// LagInterval until ctx ends.
func (r *Runner) watchLag(ctx context.Context, adm *kadm.Client) {
	for {
		r.measureLag(ctx, adm)
		if (systemClock{}).Sleep(ctx, r.cfg.lagInterval) != nil {
			return
		}
	}
}

func (r *Runner) measureLag(ctx context.Context, adm *kadm.Client) {
	member, _ := r.cl.GroupMetadata()
	if member == "" {
		return
	}
	lags, err := adm.Lag(ctx, r.group)
	if err != nil {
		return
	}
	l, ok := lags[r.group]
	if !ok || l.Error() != nil {
		return
	}
	var sum int64
	for _, ps := range l.Lag {
		for _, pl := range ps {
			if pl.Member != nil && pl.Member.MemberID == member && pl.Lag > 0 {
				sum += pl.Lag
			}
		}
	}
	r.lag.Store(sum)
	r.m.lag.Set(float64(sum))
}

func (r *Runner) setState(s string) {
	r.mu.Lock()
	r.state = s
	r.mu.Unlock()
	if s == StateConnected {
		r.m.connected.Set(1)
	} else {
		r.m.connected.Set(0)
	}
}

func (r *Runner) setLastError(err error, at time.Time) {
	r.mu.Lock()
	r.lastErr, r.lastErrAt = err.Error(), at
	r.mu.Unlock()
}

// logDelivery appends to the delivery log.
func (r *Runner) logDelivery(it *item, status string, at time.Time, latency time.Duration) {
	d := Delivery{
		ActivationID: it.act.ID, Type: it.act.Type, Name: it.act.Name, ProfileID: it.act.ProfileID,
		Status: status, Attempts: it.attempts, At: at, Latency: latency,
	}
	if status != StatusDelivered && it.err != nil {
		d.Error = it.err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ring) < deliveryLogSize {
		r.ring = append(r.ring, d)
	} else {
		r.ring[r.next] = d
	}
	r.next = (r.next + 1) % deliveryLogSize
}

// inherit takes over old's delivery log and counts, for a destination
// restarted with a new definition: its history does not vanish with the
// change. r must not have run yet.
func (r *Runner) inherit(old *Runner) {
	log := old.Deliveries()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring, r.next = r.ring[:0], 0
	for i := len(log) - 1; i >= 0; i-- { // oldest first
		r.ring = append(r.ring, log[i])
	}
	r.next = len(r.ring) % deliveryLogSize
	r.sent.Store(old.sent.Load())
	r.failed.Store(old.failed.Load())
	r.retried.Store(old.retried.Load())
	r.deadLettered.Store(old.deadLettered.Load())
	r.filtered.Store(old.filtered.Load())
}

// Deliveries returns the delivery log, newest first: the last 1,000
// outcomes.
func (r *Runner) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Delivery, 0, len(r.ring))
	for i := range len(r.ring) {
		out = append(out, r.ring[(r.next-1-i+2*deliveryLogSize)%deliveryLogSize])
	}
	return out
}

// Status returns the destination's state and counts.
func (r *Runner) Status() Status {
	r.mu.Lock()
	st := Status{Name: r.dest.Name, Type: r.dest.Type, State: r.state, LastError: r.lastErr}
	if !r.lastErrAt.IsZero() {
		at := r.lastErrAt
		st.LastErrorAt = &at
	}
	r.mu.Unlock()
	st.Connected = st.State == StateConnected
	st.Sent, st.Failed, st.Retried = r.sent.Load(), r.failed.Load(), r.retried.Load()
	st.DeadLettered, st.Filtered, st.Lag = r.deadLettered.Load(), r.filtered.Load(), r.lag.Load()
	return st
}

// describe is a short description of the destination's filter, for logs.
func (r *Runner) describe() string {
	var parts []string
	if r.audiences != nil {
		parts = append(parts, "audiences "+strings.Join(slices.Sorted(maps.Keys(r.audiences)), ","))
	}
	if r.types != nil {
		parts = append(parts, "types "+strings.Join(slices.Sorted(maps.Keys(r.types)), ","))
	}
	if len(parts) == 0 {
		return "all activations"
	}
	return strings.Join(parts, "; ")
}
