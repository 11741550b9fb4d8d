package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"
)

// Config is the content of tessera.yaml. Build it with Default and Load (or Parse), then
// ApplyEnv, Override and Validate.
//
// Besides its fields, a Config remembers where each value came from so that Validate can
// point at it; compare two Configs field by field, not with reflect.DeepEqual.
type Config struct {
	// App is the application id. It prefixes every topic ("tessera.events") and is the
	// consumer group. It must match [a-z0-9._-]+. Default "tessera".
	App string `yaml:"app"`
	// Data is the data directory: stores live under data/<app>/, the embedded broker's log
	// under data/broker/. Default "./data".
	Data string `yaml:"data"`
	// HTTP configures the HTTP server.
	HTTP HTTP `yaml:"http"`
	// Kafka configures the brokers and tessera's topics.
	Kafka Kafka `yaml:"kafka"`
	// Processing configures the stream engine.
	Processing Processing `yaml:"processing"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// API configures the JSON API's authentication.
	API API `yaml:"api"`
	// Ingest configures the Segment-compatible HTTP ingest.
	Ingest Ingest `yaml:"ingest"`
	// Sources lists the Kafka topics read into the pipeline.
	Sources Sources `yaml:"sources"`
	// TrackingPlans validate events by name.
	TrackingPlans []TrackingPlan `yaml:"tracking_plans"`
	// Identity configures identity resolution.
	Identity Identity `yaml:"identity"`
	// Profiles configures the profile store.
	Profiles Profiles `yaml:"profiles"`
	// Features are the rolling behavioural features computed per profile.
	Features []Feature `yaml:"features"`
	// Predictions configures the BG/NBD and Gamma-Gamma models.
	Predictions Predictions `yaml:"predictions"`
	// Destinations are the channels activations are delivered to.
	Destinations []Destination `yaml:"destinations"`
	// Audiences are rules over profiles whose entries and exits activate
	// destinations.
	Audiences []Audience `yaml:"audiences"`
	// Triggers are rules over single events that activate destinations.
	Triggers []Trigger `yaml:"triggers"`

	// origins maps a key path ("kafka.partitions", "kafka.brokers[1]") to where its value
	// came from. Copies of a Config share it, so it is replaced, never modified.
	origins map[string]origin
	// envErrs are the problems ApplyEnv found (an unreadable secret file), reported by
	// Validate.
	envErrs []error
}

// HTTP is the http section of tessera.yaml.
type HTTP struct {
	// Listen is the host:port the HTTP server listens on. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// TLS, with a certificate and key, serves HTTPS instead of HTTP.
	TLS HTTPTLS `yaml:"tls"`
}

// Kafka is the kafka section of tessera.yaml.
type Kafka struct {
	// Brokers are the host:port seed brokers. Empty, the default, starts the embedded
	// broker. The TESSERA_BROKERS environment variable overrides it.
	Brokers []string `yaml:"brokers"`
	// BrokerListen is the host:port the embedded broker listens on. Default "127.0.0.1:9092".
	BrokerListen string `yaml:"broker_listen"`
	// Partitions is the partition count of the topics tessera creates, from 1 to 10000.
	// Default 12.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor is the replication factor of the topics tessera creates. Default 1.
	ReplicationFactor int `yaml:"replication_factor"`
	// TLS configures TLS to the brokers; off by default.
	TLS KafkaTLS `yaml:"tls"`
	// SASL configures SASL authentication to the brokers; off by default. With the
	// embedded broker, it is the one user the broker accepts.
	SASL KafkaSASL `yaml:"sasl"`
}

// Processing is the processing section of tessera.yaml.
type Processing struct {
	// Guarantee is the processing guarantee. Default ExactlyOnce.
	Guarantee Guarantee `yaml:"guarantee"`
	// CommitInterval is how often offsets (and, under exactly-once, the transaction) are
	// committed. Under exactly-once it must be shorter than TransactionTimeout.
	// Default 100ms.
	CommitInterval Duration `yaml:"commit_interval"`
	// MinCommitInterval is how short an exactly-once commit cycle may be when
	// its input runs dry: a cycle that processed records and then polls nothing
	// new commits once this has passed, so a light stream's outputs do not wait
	// out commit_interval at each of the two stages. Under load, cycles last
	// commit_interval. A value at or above CommitInterval turns it off;
	// at-least-once ignores it. Default 20ms.
	MinCommitInterval Duration `yaml:"min_commit_interval"`
	// MaxPollRecords caps the records returned by one poll. Default 10000.
	MaxPollRecords int `yaml:"max_poll_records"`
	// TransactionTimeout is how long the broker lets a transaction stay open before it
	// aborts it. Default 10s.
	TransactionTimeout Duration `yaml:"transaction_timeout"`
	// SessionTimeout is how long the group waits for a silent member before it is
	// removed. Default 10s.
	SessionTimeout Duration `yaml:"session_timeout"`
	// RebalanceTimeout is how long members have to rejoin during a rebalance. Default 30s.
	RebalanceTimeout Duration `yaml:"rebalance_timeout"`
	// StandbyReplicas is how many other instances keep a warm copy of each task's stores
	// (a standby replica), so that a failover restores only the tail of the changelogs;
	// from 0 to 10. Default 0: none.
	StandbyReplicas int `yaml:"standby_replicas"`
	// RestoreConcurrency is how many tasks restore their stores from the
	// changelogs at once, from 1 to 64. Default 0: the engine's choice, the
	// CPU count clamped to 2–8 (more at once only contend for the cores).
	RestoreConcurrency int `yaml:"restore_concurrency"`
	// Threads is how many goroutines of an instance process records, each
	// taking whole tasks (partitions), from 1 to 64. Default 0: the engine's
	// choice, the CPU count, at most 8.
	Threads int `yaml:"threads"`
	// HeartbeatInterval is how often an instance heartbeats to the group; it
	// must be below session_timeout. Default 0: a third of session_timeout,
	// at most 3s.
	HeartbeatInterval Duration `yaml:"heartbeat_interval"`
	// ReadCacheBytes bounds each task's read cache, which keeps the
	// profiles, identities and feature tiles the task read recently and
	// holds their writes back until the commit (docs/operations.md,
	// Sizing); 0 or from 64 KiB to 4 GiB. Default 0: the engine's choice,
	// 16 MiB a task.
	ReadCacheBytes int64 `yaml:"read_cache_bytes"`
	// ProducerLinger is how long the hub's producer lets a partition's
	// batch fill before sending it, from 0 (send at once) to 1s; a commit
	// sends everything at once whatever it is. Fewer, larger produce
	// requests cost the hub less CPU; under at-least-once each record's
	// hop to the next stage may wait this long. Default 5ms.
	ProducerLinger Duration `yaml:"producer_linger"`
}

// Log is the log section of tessera.yaml.
type Log struct {
	// Level is the minimum level logged: debug, info, warn or error. Default "info".
	Level string `yaml:"level"`
	// Format is the log format: text or json. Default "text".
	Format string `yaml:"format"`
}

// Guarantee is a processing guarantee: ExactlyOnce or AtLeastOnce.
type Guarantee string

// The processing guarantees.
const (
	// ExactlyOnce processes each record once: outputs, state and offsets are committed in
	// one Kafka transaction.
	ExactlyOnce Guarantee = "exactly_once"
	// AtLeastOnce commits offsets after outputs are produced; a crash may reprocess records.
	AtLeastOnce Guarantee = "at_least_once"
)

// Duration is a time.Duration written in YAML as a string that time.ParseDuration accepts,
// such as "100ms", "10s" or "1m30s".
type Duration time.Duration

// UnmarshalYAML parses a duration string such as "100ms".
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration as a string such as "100ms".
func (d Duration) MarshalYAML() (any, error) {
	return d.String(), nil
}

// UnmarshalJSON parses a duration string such as "100ms", as the
// definitions API (destinations' delivery settings) writes it.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"100ms\", got %s", b)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes the duration as a string such as "100ms".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// String formats the duration as time.Duration does.
func (d Duration) String() string {
	return time.Duration(d).String()
}

func parseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write a number and a unit, such as 100ms, 10s or 1m30s", s)
	}
	return Duration(d), nil
}

// Default returns the configuration used where tessera.yaml, the environment and the flags
// are silent. It is the one place where defaults are set.
func Default() Config {
	return Config{
		App:  "tessera",
		Data: "./data",
		HTTP: HTTP{Listen: "127.0.0.1:8080"},
		Kafka: Kafka{
			BrokerListen:      "127.0.0.1:9092",
			Partitions:        12,
			ReplicationFactor: 1,
		},
		Processing: Processing{
			Guarantee:          ExactlyOnce,
			CommitInterval:     Duration(100 * time.Millisecond),
			MinCommitInterval:  Duration(20 * time.Millisecond),
			MaxPollRecords:     10000,
			TransactionTimeout: Duration(10 * time.Second),
			SessionTimeout:     Duration(10 * time.Second),
			RebalanceTimeout:   Duration(30 * time.Second),
			StandbyReplicas:    0,
			ProducerLinger:     Duration(5 * time.Millisecond),
		},
		Log:      Log{Level: "info", Format: "text"},
		Identity: DefaultIdentity(),
		Profiles: Profiles{
			DedupeWindow: Duration(24 * time.Hour),
			RecentEvents: 100,
			ErasureGrace: Duration(10 * time.Minute),
		},
		Predictions: Predictions{
			PurchaseEvent:   "Order Completed",
			SpendProperty:   "revenue",
			Horizons:        []string{"30d", "90d", "365d"},
			FitInterval:     Duration(time.Hour),
			AllowedLateness: Duration(7 * 24 * time.Hour),
		},
	}
}

// Topic returns the full name of one of tessera's topics: the application id, a dot and
// name ("tessera.events").
func (c Config) Topic(name string) string {
	return c.App + "." + name
}

// Embedded reports whether no brokers are configured, so tessera runs the embedded broker.
func (c Config) Embedded() bool {
	return len(c.Kafka.Brokers) == 0
}

// EnvWriteKeys is the environment variable that adds comma-separated write keys to
// ingest.write_keys.
const EnvWriteKeys = "TESSERA_WRITE_KEYS"

// EnvAdminToken is the environment variable that sets api.admin_token.
const EnvAdminToken = "TESSERA_ADMIN_TOKEN"

// EnvViewerToken is the environment variable that sets api.viewer_token.
const EnvViewerToken = "TESSERA_VIEWER_TOKEN"

// EnvBrokers is the environment variable that overrides kafka.brokers with a
// comma-separated list of host:port addresses.
const EnvBrokers = "TESSERA_BROKERS"

// ApplyEnv overrides the configuration with tessera's environment variables, looked up
// with getenv (os.Getenv, or a map lookup in tests). A variable that is empty counts as
// unset. Secrets are read here and only here, never from the file, so that tessera.yaml
// can be committed; each new variable (TESSERA_WRITE_KEYS, TESSERA_ADMIN_TOKEN) gets an
// Env constant, a step here and a line in this list.
//
// It reads:
//   - TESSERA_BROKERS: replaces kafka.brokers with its comma-separated entries.
//   - TESSERA_WRITE_KEYS: adds its comma-separated keys to ingest.write_keys.
//   - TESSERA_ADMIN_TOKEN: replaces api.admin_token.
//   - TESSERA_VIEWER_TOKEN: replaces api.viewer_token.
//   - TESSERA_ADMIN_TOKEN_FILE, TESSERA_VIEWER_TOKEN_FILE, TESSERA_WRITE_KEYS_FILE: the
//     same, read from the file they name (secrets mounted as files); see applySecretFiles.
func (c *Config) ApplyEnv(getenv func(string) string) {
	c.applySecretFiles(getenv)
	if v := getenv(EnvWriteKeys); v != "" {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				c.Ingest.WriteKeys = append(c.Ingest.WriteKeys, k)
			}
		}
	}
	if v := getenv(EnvAdminToken); v != "" {
		c.API.AdminToken = v
		c.setOrigin("api.admin_token", origin{from: "$" + EnvAdminToken})
	}
	if v := getenv(EnvViewerToken); v != "" {
		c.API.ViewerToken = v
		c.setOrigin("api.viewer_token", origin{from: "$" + EnvViewerToken})
	}
	if v := getenv(EnvBrokers); v != "" {
		brokers := strings.Split(v, ",")
		for i := range brokers {
			brokers[i] = strings.TrimSpace(brokers[i])
		}
		c.Kafka.Brokers = brokers
		c.setOrigin("kafka.brokers", origin{from: "$" + EnvBrokers})
	}
}

// Overrides are the values of the command-line flags that override the configuration.
// An empty field leaves its setting unchanged.
type Overrides struct {
	// Data replaces data.
	Data string
	// HTTPListen replaces http.listen.
	HTTPListen string
	// Brokers replaces kafka.brokers. Being empty, it cannot select the embedded broker.
	Brokers []string
	// BrokerListen replaces kafka.broker_listen.
	BrokerListen string
}

// Override applies the command-line flags in o, after the file and the environment.
func (c *Config) Override(o Overrides) {
	set := func(dst *string, v, path string) {
		if v != "" {
			*dst = v
			c.setOrigin(path, origin{from: "the command line"})
		}
	}
	set(&c.Data, o.Data, "data")
	set(&c.HTTP.Listen, o.HTTPListen, "http.listen")
	set(&c.Kafka.BrokerListen, o.BrokerListen, "kafka.broker_listen")
	if len(o.Brokers) > 0 {
		c.Kafka.Brokers = append([]string(nil), o.Brokers...)
		c.setOrigin("kafka.brokers", origin{from: "the command line"})
	}
}

// origin is where a value came from: a position in the file ("tessera.yaml:7:3") or an
// override ("$TESSERA_BROKERS", "the command line").
type origin struct {
	pos  string
	from string
}

// setOrigin records that the value at path, and its list items, came from o.
func (c *Config) setOrigin(path string, o origin) {
	m := maps.Clone(c.origins)
	if m == nil {
		m = make(map[string]origin)
	}
	maps.DeleteFunc(m, func(k string, _ origin) bool {
		return k == path || strings.HasPrefix(k, path+"[")
	})
	m[path] = o
	c.origins = m
}

// originOf returns where the value at path came from; a list item without a position of its
// own ("kafka.brokers[1]") takes the list's.
func (c Config) originOf(path string) origin {
	if o, ok := c.origins[path]; ok {
		return o
	}
	if i := strings.IndexByte(path, '['); i > 0 {
		return c.origins[path[:i]]
	}
	return origin{}
}
