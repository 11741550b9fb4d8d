package topology

import (
	"errors"
	"fmt"
	"log/slog"
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
	// CommitInterval is how long a commit cycle collects work; default 100ms.
	CommitInterval time.Duration
	// TransactionTimeout bounds how long a crashed instance's open
	// transaction blocks read_committed readers; default 10s.
	TransactionTimeout time.Duration
	// SessionTimeout is the group session timeout; default 10s.
	SessionTimeout time.Duration
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
	if c.TransactionTimeout <= 0 {
		c.TransactionTimeout = 10 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 30 * time.Second
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 10_000
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
	if c.Guarantee == ExactlyOnce && c.CommitInterval >= c.TransactionTimeout {
		errs = append(errs, fmt.Errorf("CommitInterval %v must be below TransactionTimeout %v", c.CommitInterval, c.TransactionTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runtime config: %w", err)
	}
	return nil
}
