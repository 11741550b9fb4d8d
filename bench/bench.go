package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/internal/hugepages"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The modes.
const (
	Throughput = "throughput"
	Latency    = "latency"
	Restore    = "restore"
)

// Options configures a run. Start from DefaultOptions.
type Options struct {
	// Mode is Throughput, Latency or Restore.
	Mode string
	// Events is how many events to generate.
	Events int
	// Rate is the latency mode's arrival rate, events per second.
	Rate int
	// Brokers, if set, are used instead of starting `tessera broker`.
	Brokers []string
	// Guarantee is exactly_once or at_least_once.
	Guarantee string
	// Partitions is the partition count of the hub's topics.
	Partitions int
	// Threads, if positive, sets processing.threads of the hub; 0 keeps
	// the hub's default.
	Threads int
	// HugePages runs the hub with GLIBC_TUNABLES asking glibc's allocator
	// for transparent huge pages (hugepages.Tunable), as the Dockerfile
	// does.
	HugePages bool
	// HubEnv are NAME=value settings added to the hub's environment
	// alone, such as the Go runtime's GOGC or GOMEMLIMIT, which a
	// deployment sets the same way.
	HubEnv []string
	// Workload is the synthetic workload.
	Workload Workload
	// Dir is the work directory (configuration, state, logs); empty makes
	// a temporary one, removed afterwards unless Keep.
	Dir  string
	Keep bool
	// Executable is the tessera binary the children run; empty is this
	// process's own.
	Executable string
	// RecentEvents, if not negative, overrides profiles.recent_events (the
	// events each profile keeps inline for its timeline; default 100).
	RecentEvents int
	// ReadCacheBytes, if positive, sets processing.read_cache_bytes, and
	// ProducerLinger, if not negative, processing.producer_linger: the
	// two settings that trade the tail latency against throughput
	// (docs/operations.md).
	ReadCacheBytes int64
	ProducerLinger time.Duration
	// CommitInterval, if positive, sets processing.commit_interval: how
	// often the hub commits, and so how long a commit makes the records
	// arriving meanwhile wait (commit_phases_ms).
	CommitInterval time.Duration
	// MinCommitInterval, if positive, sets
	// processing.min_commit_interval: how short an exactly-once cycle
	// may be when its input runs dry, which each of an event's two hops
	// waits out.
	MinCommitInterval time.Duration
	// Pprof, if set, is where the hub serves /debug/pprof/ (host:port).
	Pprof string
	// CPUProfile, if set, is a file the hub's CPU profile over the first
	// ProfileSeconds of the measured phase is written to: processing
	// (throughput), sending (latency), or from the restart (restore).
	// Needs Pprof; the run lasts at least ProfileSeconds.
	CPUProfile     string
	ProfileSeconds int
	// Timeout bounds each wait (readiness, processing, activations).
	Timeout time.Duration
	// Progress receives progress lines; nil discards them.
	Progress io.Writer
}

// DefaultOptions returns the options `tessera bench` starts from.
func DefaultOptions() Options {
	return Options{
		Mode: Throughput, Events: 200_000, Rate: 5000, Guarantee: "exactly_once", Partitions: 12, HugePages: true,
		Workload: DefaultWorkload(), RecentEvents: -1, ProducerLinger: -1, ProfileSeconds: 10, Timeout: 10 * time.Minute,
	}
}

func (o Options) validate() error {
	switch o.Mode {
	case Throughput, Latency, Restore:
	default:
		return fmt.Errorf("mode must be throughput, latency or restore, got %q", o.Mode)
	}
	if o.Events < 1 {
		return fmt.Errorf("events must be at least 1, got %d", o.Events)
	}
	if o.Mode == Latency && o.Rate < 1 {
		return fmt.Errorf("rate must be at least 1 event per second, got %d", o.Rate)
	}
	if o.Guarantee != "exactly_once" && o.Guarantee != "at_least_once" {
		return fmt.Errorf("guarantee must be exactly_once or at_least_once, got %q", o.Guarantee)
	}
	if o.Threads < 0 || o.Threads > 64 {
		return fmt.Errorf("threads must be between 0 (the hub's default) and 64, got %d", o.Threads)
	}
	if o.Partitions < 1 || o.Partitions > 10000 {
		return fmt.Errorf("partitions must be between 1 and 10000, got %d", o.Partitions)
	}
	if o.CPUProfile != "" && o.Pprof == "" {
		return errors.New("a CPU profile needs the pprof address (--pprof)")
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("timeout must be positive, got %s", o.Timeout)
	}
	if o.ReadCacheBytes < 0 {
		return fmt.Errorf("read cache bytes must be 0 (the hub's default) or positive, got %d", o.ReadCacheBytes)
	}
	for _, kv := range o.HubEnv {
		if name, _, ok := strings.Cut(kv, "="); !ok || name == "" || strings.ContainsAny(name, " \t") {
			return fmt.Errorf("hub environment: want NAME=value, got %q", kv)
		}
	}
	if o.CommitInterval < 0 || o.MinCommitInterval < 0 {
		return fmt.Errorf("commit intervals must be 0 (the hub's default) or positive, got %s and a minimum of %s", o.CommitInterval, o.MinCommitInterval)
	}
	// The hub's own rules judge the settings passed through to it, so
	// that a bad one fails here and not in the hub's log.
	h := o.hubConfig("bench", ".", "http://127.0.0.1:1/")
	cfg, err := config.Parse([]byte(h.yaml()), "the hub's configuration")
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return err
	}
	return o.Workload.Validate()
}

// Run runs the benchmark o describes and returns what it measured.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	h, err := newHarness(o)
	if err != nil {
		return nil, err
	}
	defer h.close()
	res := &Result{Mode: o.Mode, Guarantee: o.Guarantee, Partitions: o.Partitions, Threads: o.Threads, HugePages: o.HugePages, HubEnv: o.HubEnv, Customers: o.Workload.Customers,
		ReadCacheBytes: o.ReadCacheBytes, ProducerLinger: durationSetting(o.ProducerLinger, 0),
		CommitInterval: durationSetting(o.CommitInterval, 1), MinCommitInterval: durationSetting(o.MinCommitInterval, 1), Machine: describeMachine()}
	switch o.Mode {
	case Throughput:
		err = h.throughput(ctx, res)
	case Latency:
		err = h.latency(ctx, res)
	case Restore:
		if err = h.throughput(ctx, res); err == nil {
			err = h.restore(ctx, res)
		}
	}
	res.Machine.LoadAfter = loadAverage()
	if err != nil {
		return nil, err
	}
	return res, nil
}

// harness holds what a run shares between its steps.
type harness struct {
	o        Options
	exe      string
	dir      string
	tmp      bool
	run      string // this run's id: the app id and the messageId prefix
	app      string
	topics   identity.Topics
	brokers  []string
	broker   *child // nil with external brokers
	adm      *kadm.Client
	hook     *receiver
	hub      *child
	hubHTTP  string    // host:port of the hub's HTTP server
	hubStart time.Time // when the hub was started
}

func newHarness(o Options) (h *harness, err error) {
	h = &harness{o: o, exe: o.Executable, dir: o.Dir}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	if h.exe == "" {
		if h.exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("finding the tessera binary: %w", err)
		}
	}
	if h.dir == "" {
		if h.dir, err = os.MkdirTemp("", "tessera-bench-"); err != nil {
			return nil, err
		}
		h.tmp = !o.Keep
	} else if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the work directory: %w", err)
	}
	var raw [3]byte
	_, _ = rand.Read(raw[:])
	h.run = "bench-" + strconv.FormatInt(time.Now().Unix(), 36) + hex.EncodeToString(raw[:])
	h.app = h.run
	h.topics = identity.TopicsOf(h.app)
	h.progress("work directory %s, app %s", h.dir, h.app)

	h.brokers = o.Brokers
	if len(h.brokers) == 0 {
		h.broker, err = startChild(h.exe, h.dir, "broker", nil, "broker", "--listen", "127.0.0.1:0", "--data", "")
		if err != nil {
			return nil, err
		}
		addr, err := h.broker.line(context.Background(), "broker listening on ", 30*time.Second)
		if err != nil {
			return nil, err
		}
		h.brokers = []string{addr}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...))
	if err != nil {
		return nil, fmt.Errorf("creating the admin client: %w", err)
	}
	h.adm = kadm.NewClient(cl)
	if h.hook, err = startReceiver(h.run); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *harness) close() {
	if h.hub != nil {
		_ = h.hub.stop(30 * time.Second)
	}
	if h.hook != nil {
		h.hook.close()
	}
	if h.adm != nil {
		h.adm.Close()
	}
	if h.broker != nil {
		_ = h.broker.stop(10 * time.Second)
	}
	if h.tmp {
		os.RemoveAll(h.dir)
	}
}

func (h *harness) progress(format string, args ...any) {
	if h.o.Progress != nil {
		fmt.Fprintf(h.o.Progress, "bench: "+format+"\n", args...)
	}
}

// stateDir is where the hub keeps its stores.
func (h *harness) stateDir() string { return filepath.Join(h.dir, "hub", h.app) }

// startHub writes the configuration and starts `tessera run`, returning
// once it serves HTTP (not yet ready).
func (h *harness) startHub(ctx context.Context) error {
	cfg := h.o.hubConfig(h.app, filepath.Join(h.dir, "hub"), h.hook.url)
	path := filepath.Join(h.dir, "tessera.yaml")
	if err := os.WriteFile(path, []byte(cfg.yaml()), 0o644); err != nil {
		return fmt.Errorf("writing the hub's configuration: %w", err)
	}
	args := []string{"run", "-c", path, "--brokers", strings.Join(h.brokers, ","), "--http", "127.0.0.1:0"}
	if h.o.Pprof != "" {
		args = append(args, "--pprof", h.o.Pprof)
	}
	var err error
	h.hubStart = time.Now()
	env := []string{webhookSecretEnv + "=" + h.run}
	if h.o.HugePages {
		env = append(env, hugepages.Env(os.Getenv(hugepages.EnvVar)))
	}
	env = append(env, h.o.HubEnv...)
	h.hub, err = startChild(h.exe, h.dir, "hub", env, args...)
	if err != nil {
		return err
	}
	h.hubHTTP, err = h.hub.line(ctx, "http listening on ", time.Minute)
	return err
}

// waitReady polls /readyz until it answers 200.
func (h *harness) waitReady(ctx context.Context, each func()) error {
	ctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	url := "http://" + h.hubHTTP + "/readyz"
	for {
		if each != nil {
			each()
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-h.hub.exited:
			return h.hub.failure("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("waiting for the hub to be ready: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// writeKey is the ingest write key of the generated configuration.
const writeKey = "bench"

// createTopic creates topic with the run's partition count.
func (h *harness) createTopic(ctx context.Context, topic string) error {
	resp, err := h.adm.CreateTopic(ctx, int32(h.o.Partitions), 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return nil
}

// prefill writes the workload to the events topic as the HTTP ingest
// would: each event normalised (receivedAt, messageId, clock correction),
// keyed by its Segment routing key and partitioned by its routing
// identifier, through ingest.Writer. It returns
// the mean event size.
func (h *harness) prefill(ctx context.Context, gen *Generator) (int, error) {
	if err := h.createTopic(ctx, h.topics.Events); err != nil {
		return 0, err
	}
	rules, err := identity.NewRules(config.DefaultIdentity()) // the hub's: its config sets none
	if err != nil {
		return 0, err
	}
	w, err := ingest.New(h.app, ingest.ClientOpts(kgo.SeedBrokers(h.brokers...)), ingest.RouteBy(rules.Routing()))
	if err != nil {
		return 0, err
	}
	defer w.Close()
	var n schemas.Normalizer
	const batch = 5000
	evs := make([]schemas.Normalized, 0, batch)
	var bytes int64
	start := time.Now()
	// Event time runs from a day ago to now, so windows see a spread of
	// tiles; the generator back-dates its late share from there.
	begin := start.Add(-24 * time.Hour)
	step := 24 * time.Hour / time.Duration(h.o.Events)
	for i := range h.o.Events {
		ev := gen.Next(begin.Add(time.Duration(i) * step))
		v, err := n.Parse(ev.JSON)
		if err != nil {
			return 0, fmt.Errorf("generated event %d does not parse: %w", i, err)
		}
		ne, err := n.Normalize(v, schemas.Input{ReceivedAt: start})
		if err != nil {
			return 0, fmt.Errorf("generated event %d is invalid: %w", i, err)
		}
		bytes += int64(len(ne.Value))
		evs = append(evs, ne)
		if len(evs) == batch || i == h.o.Events-1 {
			if _, err := w.Publish(ctx, evs); err != nil {
				return 0, fmt.Errorf("filling %s: %w", h.topics.Events, err)
			}
			evs = evs[:0]
		}
	}
	h.progress("filled %s with %d events (%d MB) in %s", h.topics.Events, h.o.Events, bytes>>20, time.Since(start).Round(time.Millisecond))
	return int(bytes / int64(h.o.Events)), nil
}

// groupLag returns, per source topic of the hub's consumer group, the
// partitions' lag (end offset minus committed offset; the whole partition
// when nothing is committed).
func (h *harness) groupLag(ctx context.Context, topics ...string) (map[string]map[int32]int64, error) {
	ends, err := h.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	commits, err := h.adm.FetchOffsets(ctx, h.app)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) && !errors.Is(err, kerr.CoordinatorNotAvailable) {
		return nil, fmt.Errorf("fetching the group's offsets: %w", err)
	}
	out := make(map[string]map[int32]int64)
	var lerr error
	ends.Each(func(lo kadm.ListedOffset) {
		if lo.Err != nil {
			lerr = lo.Err
			return
		}
		if out[lo.Topic] == nil {
			out[lo.Topic] = make(map[int32]int64)
		}
		committed := int64(0)
		if c, ok := commits.Lookup(lo.Topic, lo.Partition); ok && c.Err == nil && c.At >= 0 {
			committed = c.At
		}
		out[lo.Topic][lo.Partition] = max(lo.Offset-committed, 0)
	})
	if lerr != nil {
		return nil, fmt.Errorf("listing end offsets: %w", lerr)
	}
	return out, nil
}

// waitCaughtUp waits until the hub's group has consumed every source
// topic to its end and returns when that was first seen.
//
// Under exactly-once the hub writes the internal topics (identity-links,
// profile-ops) in transactions, and a partition's last offset may be a
// commit marker that a consumer never sees and so never commits past; a
// lag of 1 there is allowed once it has held still for a few commit
// intervals. The events topic is written without transactions, so its lag
// must reach 0.
func (h *harness) waitCaughtUp(ctx context.Context) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	topics := []string{h.topics.Events, h.topics.Links, h.topics.Ops}
	var (
		first    time.Time // when the current run of caught-up polls began
		last     string    // the lags then
		stable   int
		reported = time.Now()
	)
	for {
		lags, err := h.groupLag(ctx, topics...)
		if err != nil {
			return time.Time{}, err
		}
		now := time.Now()
		caught := len(lags) == len(topics)
		var sig strings.Builder
		var total int64
		for _, t := range topics {
			for _, p := range slices.Sorted(maps.Keys(lags[t])) {
				l := lags[t][p]
				total += l
				fmt.Fprintf(&sig, "%s/%d=%d ", t, p, l)
				if l > 1 || (l == 1 && t == h.topics.Events) {
					caught = false
				}
			}
		}
		switch {
		case !caught:
			first, stable = time.Time{}, 0
		case total == 0:
			return now, nil
		case sig.String() == last:
			stable++
			if stable >= 5 {
				return first, nil
			}
		default:
			first, stable = now, 0
		}
		last = sig.String()
		if now.Sub(reported) >= 5*time.Second {
			reported = now
			var byTopic []string
			for _, t := range topics {
				var n int64
				for _, l := range lags[t] {
					n += l
				}
				byTopic = append(byTopic, fmt.Sprintf("%s %d", strings.TrimPrefix(t, h.app+"."), n))
			}
			h.progress("lag %s", strings.Join(byTopic, ", "))
		}
		select {
		case <-h.hub.exited:
			return time.Time{}, h.hub.failure("exited while processing")
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for the hub to process every event (lag %d): %w", total, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
