package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// maxAppLen leaves room, within Kafka's 249-character limit on topic names, for the
// longest suffix tessera appends to the application id (".<store>-changelog").
const maxAppLen = 100

var appPattern = regexp.MustCompile(`^[a-z0-9._-]+$`)

// maxStandbyReplicas bounds processing.standby_replicas: each replica is a
// full copy of every task's stores on another instance.
const maxStandbyReplicas = 10

// maxRestoreConcurrency bounds processing.restore_concurrency: each
// restoring task holds a fetch and a write batch in memory.
const maxRestoreConcurrency = 64

// maxThreads bounds processing.threads, as topology.MaxThreads does.
const maxThreads = 64

// maxProducerLinger bounds processing.producer_linger: a longer wait only
// delays records, since a full batch or a commit sends them anyway.
const maxProducerLinger = time.Second

// minReadCacheBytes and maxReadCacheBytes bound processing.read_cache_bytes:
// below 64 KiB the cache keeps only small entries (none larger than an
// eighth of it), and every task of an instance holds one.
const (
	minReadCacheBytes = 64 << 10
	maxReadCacheBytes = 4 << 30
)

// Validate checks every setting and returns all the problems it finds, one per line, each
// naming the key path and where its value came from. The commit interval must be shorter
// than the transaction timeout under exactly-once only, since at-least-once has no
// transactions.
func (c Config) Validate() error {
	var errs []error
	check := func(path string, err error) {
		if err != nil {
			errs = append(errs, c.errorAt(path, err))
		}
	}

	switch {
	case c.App == "":
		check("app", errors.New("must not be empty"))
	case !appPattern.MatchString(c.App):
		check("app", fmt.Errorf("must match [a-z0-9._-]+, got %q", c.App))
	case len(c.App) > maxAppLen:
		check("app", fmt.Errorf("must be at most %d characters, got %d", maxAppLen, len(c.App)))
	}
	if c.Data == "" {
		check("data", errors.New("must not be empty"))
	}
	check("http.listen", checkAddr(c.HTTP.Listen, false))
	if c.API.ViewerToken != "" && c.API.ViewerToken == c.API.AdminToken {
		// One token cannot be both: a viewer would hold the admin's rights.
		check("api.viewer_token", errors.New("must differ from api.admin_token"))
	}

	for i, b := range c.Kafka.Brokers {
		check(fmt.Sprintf("kafka.brokers[%d]", i), checkAddr(b, true))
	}
	check("kafka.broker_listen", checkAddr(c.Kafka.BrokerListen, false))
	if p := c.Kafka.Partitions; p < 1 || p > 10000 {
		check("kafka.partitions", fmt.Errorf("must be between 1 and 10000, got %d", p))
	}
	if r := c.Kafka.ReplicationFactor; r < 1 {
		check("kafka.replication_factor", fmt.Errorf("must be at least 1, got %d", r))
	}

	p := c.Processing
	if p.Guarantee != ExactlyOnce && p.Guarantee != AtLeastOnce {
		check("processing.guarantee", fmt.Errorf("must be %s or %s, got %q", ExactlyOnce, AtLeastOnce, p.Guarantee))
	}
	check("processing.commit_interval", positive(p.CommitInterval))
	check("processing.min_commit_interval", positive(p.MinCommitInterval))
	if p.MaxPollRecords < 1 {
		check("processing.max_poll_records", fmt.Errorf("must be at least 1, got %d", p.MaxPollRecords))
	}
	check("processing.transaction_timeout", positive(p.TransactionTimeout))
	check("processing.session_timeout", positive(p.SessionTimeout))
	check("processing.rebalance_timeout", positive(p.RebalanceTimeout))
	if p.StandbyReplicas < 0 || p.StandbyReplicas > maxStandbyReplicas {
		check("processing.standby_replicas", fmt.Errorf("must be between 0 and %d, got %d", maxStandbyReplicas, p.StandbyReplicas))
	}
	if p.RestoreConcurrency < 0 || p.RestoreConcurrency > maxRestoreConcurrency {
		check("processing.restore_concurrency", fmt.Errorf("must be between 0 (the engine's choice) and %d, got %d", maxRestoreConcurrency, p.RestoreConcurrency))
	}
	if p.Threads < 0 || p.Threads > maxThreads {
		check("processing.threads", fmt.Errorf("must be between 0 (the engine's choice) and %d, got %d", maxThreads, p.Threads))
	}
	if l := time.Duration(p.ProducerLinger); l < 0 || l > maxProducerLinger {
		check("processing.producer_linger", fmt.Errorf("must be between 0 (send at once) and %s, got %s", maxProducerLinger, l))
	}
	if b := p.ReadCacheBytes; b != 0 && (b < minReadCacheBytes || b > maxReadCacheBytes) {
		check("processing.read_cache_bytes", fmt.Errorf("must be 0 (the engine's choice) or between %d and %d, got %d", int64(minReadCacheBytes), int64(maxReadCacheBytes), b))
	}
	if p.HeartbeatInterval < 0 || (p.HeartbeatInterval > 0 && p.HeartbeatInterval >= p.SessionTimeout) {
		check("processing.heartbeat_interval", fmt.Errorf("must be 0 (a third of session_timeout) or below session_timeout (%s), got %s", p.SessionTimeout, p.HeartbeatInterval))
	}
	if p.Guarantee == ExactlyOnce && p.CommitInterval > 0 && p.CommitInterval >= p.TransactionTimeout {
		check("processing.commit_interval", fmt.Errorf(
			"must be shorter than processing.transaction_timeout (%s) under %s, got %s",
			p.TransactionTimeout, ExactlyOnce, p.CommitInterval))
	}

	if levels := []string{"debug", "info", "warn", "error"}; !slices.Contains(levels, c.Log.Level) {
		check("log.level", fmt.Errorf("must be debug, info, warn or error, got %q", c.Log.Level))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		check("log.format", fmt.Errorf("must be text or json, got %q", c.Log.Format))
	}
	c.validateHub(check)
	c.validateSecurity(check)
	return errors.Join(errs...)
}

// errorAt formats err as a problem with the value at path: "tessera.yaml:9:15: path: err"
// for a value from the file, "path: err (from $TESSERA_BROKERS)" for an override.
func (c Config) errorAt(path string, err error) error {
	msg := path + ": " + err.Error()
	o := c.originOf(path)
	if o.pos != "" {
		msg = o.pos + ": " + msg
	}
	if o.from != "" {
		msg += " (from " + o.from + ")"
	}
	return errors.New(msg)
}

// checkAddr checks a host:port address. A broker address needs a host and a port from 1;
// a listen address may leave the host empty (all interfaces) and use port 0 (any free port).
func checkAddr(addr string, broker bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var aerr *net.AddrError
		if errors.As(err, &aerr) {
			return fmt.Errorf("%q is not host:port: %s", addr, aerr.Err)
		}
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if broker && host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	minPort := uint64(0)
	if broker {
		minPort = 1
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n < minPort {
		return fmt.Errorf("%q has an invalid port %q: want a number from %d to 65535", addr, port, minPort)
	}
	return nil
}

func positive(d Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be positive, got %s", d)
	}
	return nil
}
