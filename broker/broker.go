// Package broker runs tessera's embedded Kafka broker: one franz-go kfake
// broker speaking the Kafka protocol over real TCP, optionally keeping its
// log on disk so that a restart loses nothing.
//
// `tessera run` starts it when no brokers are configured, so one command on a
// fresh machine gives a working hub; `tessera broker` runs only the broker, so
// several `tessera run --brokers …` processes can form one consumer group on
// one machine. Any Kafka client (franz-go, kcat, librdkafka) talks to it.
//
// # Differences from Kafka
//
// kfake is a faithful but not a complete Kafka. Code and tests must not lean
// on the following differences:
//
//   - Compaction (cleanup.policy=compact) runs once an hour unless
//     log.cleaner.backoff.ms is set (see [Options.Configs]); when it runs it
//     moves the log-start offset forward, which Kafka's cleaner does not.
//     Nothing in tessera may assume that a changelog is or is not compacted
//     at a given moment, nor that its log-start offset is 0.
//   - Unknown topic configs are accepted silently, where Kafka rejects them,
//     so a typo in a topic config is caught only against a real cluster.
//   - KIP-848 consumer groups heartbeat every 5 s unless
//     group.consumer.heartbeat.interval.ms is set.
//   - There is one broker, so every topic has replication factor 1;
//     min.insync.replicas is accepted but not enforced, and acks=all means
//     only that this one broker has the batch.
//   - Without a data directory everything lives in memory and is gone on
//     [Broker.Close]. With one, batches are written to the OS page cache as
//     they arrive and synced on segment roll and on a clean close, as Kafka
//     does by default: a process crash keeps them, a machine crash may not.
//
// Deliberate choices that match Kafka rather than kfake's test defaults:
// automatic topic creation is off (tessera creates its topics with kadm, with
// explicit partition counts and configs), and a CreateTopics request that
// asks for the broker default gets one partition, as Kafka's num.partitions.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultListen is the address the broker listens on when [Options.Listen]
// is empty: the loopback interface on a free port.
const DefaultListen = "127.0.0.1:0"

// groupMinSessionTimeout is the smallest session timeout a classic consumer
// group member may ask for. Kafka's default is 6 s; we allow 1 s so that tests
// which kill a member see the group rebalance quickly. Override it with
// group.min.session.timeout.ms in [Options.Configs].
const groupMinSessionTimeout = time.Second

// defaultNumPartitions is the partition count of a topic created without
// one, matching Kafka's num.partitions default rather than kfake's 10.
const defaultNumPartitions = 1

// saslStateFile is where kfake saves its SASL users in the data directory.
const saslStateFile = "sasl.json"

// Options configures [Start]. The zero value is a usable in-memory broker on
// a free loopback port.
type Options struct {
	// Listen is the host:port the broker binds. Port 0 picks a free port;
	// [Broker.Addr] reports the one chosen. An empty host or an unspecified
	// one (0.0.0.0, ::) listens on every interface. Empty means
	// [DefaultListen].
	Listen string

	// Advertise is the host, or host:port, that the broker tells clients
	// to connect to in metadata responses, overriding the default of the
	// listen address with an unspecified host replaced by 127.0.0.1. Set it
	// when clients on other machines or containers connect: a broker that
	// listens on 0.0.0.0 must advertise a name those clients can resolve.
	// Without a port the bound port is used.
	Advertise string

	// DataDir is where the broker keeps its log, topics, groups, producer
	// ids and configs, reloaded on the next [Start] with the same
	// directory. It is created if missing and locked for the life of the
	// broker, so two processes can never share it. Empty keeps everything
	// in memory.
	DataDir string

	// Logger receives the broker's warnings and errors (kfake's info and
	// debug logs, one line per request, are dropped). Nil means
	// [slog.Default].
	Logger *slog.Logger

	// Configs are extra broker configs in Kafka's names, for example
	// log.cleaner.backoff.ms to make compaction run every few seconds
	// rather than hourly, group.consumer.heartbeat.interval.ms, or
	// group.min.session.timeout.ms (default 1000 here). An empty value
	// resets a config to its default. With a DataDir, configs changed at
	// runtime with AlterConfigs persist, and a config given here wins over
	// the persisted value; one removed from here keeps its persisted value.
	Configs map[string]string

	// Users, when not empty, turn SASL authentication on: a client must
	// authenticate as one of them, with its mechanism, before any other
	// request. They are superusers (kfake's ACLs do not apply to them).
	// Empty: no authentication, as a broker on loopback needs none.
	Users []User

	// TLS, when not nil, makes the broker speak only TLS, with this
	// server configuration (its certificate; ClientAuth for mTLS).
	TLS *tls.Config
}

// User is a SASL user of the broker.
type User struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string
	// Name and Password are the credentials.
	Name, Password string
}

// Broker is a running embedded Kafka broker. Its methods are safe for
// concurrent use.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
	unlock  func() error
	logger  *slog.Logger

	closeOnce sync.Once
}

// Start starts a broker as opts describe and returns once it accepts
// connections.
func Start(opts Options) (*Broker, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "broker")

	listen := opts.Listen
	if listen == "" {
		listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(listen); err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err) // the address is already in our message
		}
		return nil, fmt.Errorf("starting broker: listen address %q: %w", listen, err)
	}

	// Bind before building the cluster so that a port in use is reported
	// as such, and so that port 0 is resolved before we work out the
	// advertised address.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("starting broker: %w", err)
	}
	advertised, err := advertisedAddr(opts.Advertise, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("starting broker: %w", err)
	}

	unlock := func() error { return nil }
	if opts.DataDir != "" {
		if unlock, err = lockDir(opts.DataDir); err != nil {
			ln.Close()
			return nil, fmt.Errorf("starting broker: %w", err)
		}
		// kfake reloads the SASL users it saved at its last close over
		// the ones given now, so an old password would stay valid after
		// a rotation. Users come from Options only: drop the saved ones.
		if err := os.Remove(filepath.Join(opts.DataDir, saslStateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			ln.Close()
			return nil, errors.Join(fmt.Errorf("starting broker: dropping saved SASL users: %w", err), unlock())
		}
	}

	// kfake asks its ListenFn for 127.0.0.1:<port>; we ignore the address
	// and hand over the listener bound above, once, so the host and port
	// of opts.Listen are what clients reach.
	var handedOver bool
	listenFn := func(string, string) (net.Listener, error) {
		if handedOver {
			return nil, errors.New("broker: the embedded broker has a single listener")
		}
		handedOver = true
		return advertisedListener{ln, advertised}, nil
	}

	configs := map[string]string{
		// Kept here, not only in the GroupMinSessionTimeout option, so
		// that DescribeConfigs reports the value in force.
		"group.min.session.timeout.ms": strconv.FormatInt(groupMinSessionTimeout.Milliseconds(), 10),
	}
	for k, v := range opts.Configs {
		configs[k] = v
	}

	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listenFn),
		kfake.WithLogger(kfakeLogger{logger}),
		kfake.DefaultNumPartitions(defaultNumPartitions),
		kfake.GroupMinSessionTimeout(groupMinSessionTimeout),
		kfake.BrokerConfigs(configs),
	}
	if opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	if opts.TLS != nil {
		kopts = append(kopts, kfake.TLS(opts.TLS))
	}
	if len(opts.Users) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
		for _, u := range opts.Users {
			switch u.Mechanism {
			case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			default:
				ln.Close()
				return nil, errors.Join(fmt.Errorf("starting broker: user %q: SASL mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", u.Name, u.Mechanism), unlock())
			}
			if u.Name == "" || u.Password == "" {
				ln.Close()
				return nil, errors.Join(fmt.Errorf("starting broker: a %s user needs a name and a password", u.Mechanism), unlock())
			}
			kopts = append(kopts, kfake.Superuser(u.Mechanism, u.Name, u.Password))
		}
	}
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		ln.Close() // kfake may have closed it already; a second close is harmless
		return nil, errors.Join(fmt.Errorf("starting broker: %w", err), unlock())
	}

	b := &Broker{
		cluster: cluster,
		addr:    advertised.String(),
		unlock:  unlock,
		logger:  logger,
	}
	logger.Debug("broker started", "listen", ln.Addr().String(), "advertise", b.addr, "data_dir", opts.DataDir)
	return b, nil
}

// Addr returns the host:port clients use to reach the broker, as it
// advertises itself in metadata: pass it to kgo.SeedBrokers or kcat -b.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker: it stops accepting connections, drops open ones,
// and with a data directory writes and syncs its state and releases the
// directory. Calling Close again does nothing.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		b.cluster.Close()
		if err := b.unlock(); err != nil {
			b.logger.Warn("releasing the data directory lock", "err", err)
		}
	})
}

// advertisedAddr works out what the broker advertises given the address it
// is bound to and the Advertise option.
func advertisedAddr(advertise string, bound net.Addr) (hostPortAddr, error) {
	bhost, bport, err := net.SplitHostPort(bound.String())
	if err != nil {
		return "", fmt.Errorf("reading the bound address %q: %w", bound, err)
	}
	host, port := bhost, bport
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	if advertise != "" {
		if h, p, err := net.SplitHostPort(advertise); err == nil {
			host, port = h, p
		} else {
			host = advertise
		}
		if host == "" {
			return "", fmt.Errorf("advertised address %q has no host", advertise)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", fmt.Errorf("advertised address %q: port must be 1-65535", advertise)
		}
	}
	return hostPortAddr(net.JoinHostPort(host, port)), nil
}

// hostPortAddr is a TCP address given as host:port, where host may be a name.
type hostPortAddr string

func (a hostPortAddr) Network() string { return "tcp" }
func (a hostPortAddr) String() string  { return string(a) }

// advertisedListener is a listener whose Addr is the address to advertise.
// kfake puts its listener's Addr in metadata responses.
type advertisedListener struct {
	net.Listener
	addr hostPortAddr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

// kfakeLogger routes kfake's logs to slog. kfake logs every request at info
// level, so only warnings and errors pass.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	default:
		return
	}
	ctx := context.Background()
	if !k.l.Enabled(ctx, sl) {
		return
	}
	k.l.Log(ctx, sl, fmt.Sprintf(msg, args...))
}
