package topology

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Guarantee is the processing guarantee.
type Guarantee int

// The guarantees.
const (
	// ExactlyOnce runs each commit cycle in a Kafka transaction: outputs,
	// changelog writes and input offsets commit together or not at all,
	// and local stores apply a cycle's writes only after it committed.
	ExactlyOnce Guarantee = iota
	// AtLeastOnce flushes outputs and changelogs, applies store writes,
	// then commits input offsets: a crash may process records twice.
	AtLeastOnce
)

func (g Guarantee) String() string {
	if g == AtLeastOnce {
		return "at_least_once"
	}
	return "exactly_once"
}

// Config configures a Runtime. Zero fields take the defaults that
// ensureDefaults documents, the one place they are set.
type Config struct {
	// App is the application id: the consumer group, the prefix of
	// changelog topics and of the transactional id. Required.
	App string
	// Brokers are the seed brokers. Required.
	Brokers []string
	// StateDir holds one directory per task (data/<app>). Required.
	StateDir string
	// InstanceID names this instance; it defaults to an id persisted in
	// StateDir, so a restarted instance reuses its transactional id and
	// fences its own zombie transaction at once.
	InstanceID string
	// Endpoint is this instance's HTTP address as other instances reach
	// it; it is published in the group so queries can be forwarded to the
	// instance that owns a task. Empty publishes none.
	Endpoint string
	// Guarantee defaults to ExactlyOnce.
	Guarantee Guarantee
	// CommitInterval is how long a commit cycle lasts: once it has
	// passed, the cycle commits (under exactly-once, ends its transaction)
	// before it starts another record or punctuation, even in the middle
	// of a polled batch, whose rest the next cycles process (cycle.go). A
	// cycle thus lasts the interval plus one record or one punctuation
	// plus the commit, which under exactly-once must stay well inside
	// TransactionTimeout, or the broker aborts the transaction and fences
	// the producer. Default 100ms, Kafka Streams' commit.interval.ms under
	// exactly-once. At-least-once may set a longer one for fewer offset
	// commits; it is not Kafka Streams' 30s by default because a cycle's
	// store writes wait in memory until it commits, and interactive
	// queries see them only then.
	CommitInterval time.Duration
	// MinCommitInterval is how short an exactly-once cycle may be when
	// its input runs dry: a cycle that has processed records and whose
	// poll then finds nothing new commits once MinCommitInterval (or
	// twice its recent commits' duration, if more: a slow broker makes
	// commits dear) has passed since it began, without waiting out
	// CommitInterval. Under exactly-once an output is readable only
	// after its transaction commits, and a record that crosses both
	// sub-topologies waits for two commits in series: with cycles that
	// always lasted 100ms, the bench's median at 1,100 events/s was
	// 185-190ms, nearly all of it that waiting.
	// Under load a poll always finds records and cycles last the full
	// CommitInterval, so throughput keeps its batching; the extra
	// transactions cost only while the input is light. Default 20ms; a
	// value at or above CommitInterval turns it off. At-least-once
	// ignores it: its outputs are readable as soon as they are produced.
	MinCommitInterval time.Duration
	// TransactionTimeout bounds how long a crashed instance's open
	// transaction blocks read_committed readers; default 10s.
	TransactionTimeout time.Duration
	// SessionTimeout is the group session timeout; default 10s.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the member heartbeats to the group
	// coordinator; default a third of SessionTimeout, at most 3s (Kafka's
	// heartbeat.interval.ms and its advice). franz-go's fixed 3s default
	// let a short session expire between two heartbeats whenever no
	// transaction with offsets forced one, as while only punctuations run.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is the group rebalance timeout; default 30s.
	RebalanceTimeout time.Duration
	// MaxPollRecords caps the records one poll returns; default 10,000.
	MaxPollRecords int
	// Partitions is the partition count of topics the runtime creates when
	// the topology does not declare one; default 12.
	Partitions int32
	// ReplicationFactor of created topics; default 1.
	ReplicationFactor int16
	// Registerer receives the engine's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// RestoreConcurrency is how many tasks restore their stores at once;
	// the others wait their turn (a task starts processing as soon as its
	// own restore ends). Default GOMAXPROCS, at least 2 and at most 8: a
	// restore keeps about one core busy (decompressing fetches, writing
	// Pebble), more only contend for the cores, for Pebble's flushes and
	// for memory, since each restore holds up to about two fetches (64
	// MiB). On 2 cores, 24 tasks restored 600 MB of changelogs in about
	// half the time with 2 at once as with all 24.
	RestoreConcurrency int
	// Threads is how many goroutines process the records of one poll,
	// each taking whole tasks, so that an instance uses more than one
	// core for processing (Kafka Streams' num.stream.threads, inside one
	// consumer and one transaction). A task's records are processed in
	// order by one goroutine at a time, as with one thread; the loop
	// still polls, punctuates and commits alone. Default GOMAXPROCS, at
	// most 8: in `tessera bench` on 2 cores, two threads processed
	// 100,000 events in about two thirds of the wall time of one.
	Threads int
	// ReadCacheSize bounds each task's read cache in bytes (state.Options);
	// default 0, the state package's default.
	ReadCacheSize int64
	// ProducerLinger is how long the producer lets a batch fill before
	// sending it (kgo.ProducerLinger), at most MaxProducerLinger; the
	// commit flushes whatever waits. Default 0: at once.
	ProducerLinger time.Duration
	// StandbyReplicas is how many other instances keep a warm copy of
	// each task's stores, so that a failover restores only the tail of
	// the changelogs (see standby.go); default 0, none. The group
	// leader's value decides.
	StandbyReplicas int
	// ClientOpts are extra franz-go options for every client (TLS, SASL).
	ClientOpts []kgo.Opt
	// Clock returns wall-clock time for punctuation; default time.Now.
	Clock func() time.Time
}

func (c *Config) ensureDefaults() {
	if c.CommitInterval <= 0 {
		c.CommitInterval = 100 * time.Millisecond
	}
	if c.MinCommitInterval <= 0 {
		c.MinCommitInterval = 20 * time.Millisecond
	}
	if c.TransactionTimeout <= 0 {
		c.TransactionTimeout = 10 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = min(3*time.Second, c.SessionTimeout/3)
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 30 * time.Second
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 10_000
	}
	if c.RestoreConcurrency <= 0 {
		c.RestoreConcurrency = min(max(runtime.GOMAXPROCS(0), 2), 8)
	}
	if c.Threads <= 0 {
		c.Threads = min(runtime.GOMAXPROCS(0), 8)
	}
	if c.Partitions <= 0 {
		c.Partitions = 12
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// MaxThreads bounds Config.Threads: a task is the unit of parallelism,
// and an instance with more threads than tasks leaves the rest idle.
const MaxThreads = 64

func (c *Config) validate() error {
	var errs []error
	if c.App == "" {
		errs = append(errs, errors.New("App is required"))
	}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("Brokers is required"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("StateDir is required"))
	}
	if c.StandbyReplicas < 0 {
		errs = append(errs, fmt.Errorf("StandbyReplicas %d must not be negative", c.StandbyReplicas))
	}
	if c.ProducerLinger < 0 || c.ProducerLinger > MaxProducerLinger {
		errs = append(errs, fmt.Errorf("ProducerLinger %v must be between 0 and %v", c.ProducerLinger, MaxProducerLinger))
	}
	if c.Threads > MaxThreads {
		errs = append(errs, fmt.Errorf("Threads %d must be at most %d", c.Threads, MaxThreads))
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		errs = append(errs, fmt.Errorf("HeartbeatInterval %v must be below SessionTimeout %v", c.HeartbeatInterval, c.SessionTimeout))
	}
	if c.Guarantee == ExactlyOnce && c.CommitInterval >= c.TransactionTimeout {
		errs = append(errs, fmt.Errorf("CommitInterval %v must be below TransactionTimeout %v", c.CommitInterval, c.TransactionTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runtime config: %w", err)
	}
	return nil
}

// MaxProducerLinger bounds Config.ProducerLinger: the Kafka client refuses
// longer ones.
const MaxProducerLinger = time.Minute
