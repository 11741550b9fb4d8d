package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/tessera-cdp/tessera/topology"
)

// load runs the CLI's order: defaults, file, environment, flags, validation.
func load(t *testing.T, path string, env map[string]string, o Overrides) (Config, error) {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		return c, err
	}
	c.ApplyEnv(func(k string) string { return env[k] })
	c.Override(o)
	return c, c.Validate()
}

// same compares the settings of two Configs, ignoring where their values came from and
// whether no brokers is nil ("brokers:", the default) or empty ("brokers: []").
func same(a, b Config) bool {
	for _, c := range []*Config{&a, &b} {
		c.origins = nil
		// nil and empty lists mean the same; YAML round trips turn one
		// into the other.
		if len(c.Kafka.Brokers) == 0 {
			c.Kafka.Brokers = nil
		}
		if len(c.Ingest.WriteKeys) == 0 {
			c.Ingest.WriteKeys = nil
		}
		if len(c.Sources.Kafka) == 0 {
			c.Sources.Kafka = nil
		}
		if len(c.TrackingPlans) == 0 {
			c.TrackingPlans = nil
		}
		if len(c.Audiences) == 0 {
			c.Audiences = nil
		}
		if len(c.Triggers) == 0 {
			c.Triggers = nil
		}
		if len(c.Destinations) == 0 {
			c.Destinations = nil
		}
		if len(c.Features) == 0 {
			c.Features = nil
		}
		if len(c.Identity.BlockedPatterns) == 0 {
			c.Identity.BlockedPatterns = nil
		}
	}
	return reflect.DeepEqual(a, b)
}

func TestBadFiles(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"unknown_key", `unknown_key.bad.yml:7:3: unknown key "kafka.partitons" (did you mean "kafka.partitions"?)`},
		{"unknown_section", `unknown_section.bad.yml:2:1: unknown key "metrics"`},
		{"duplicate_key", `duplicate_key.bad.yml:3:1: duplicate key "app" (first at line 1)`},
		{"wrong_type", `wrong_type.bad.yml:2:15: kafka.partitions: expected an integer, got "twelve"`},
		{"fraction", `fraction.bad.yml:2:21: processing.max_poll_records: expected an integer, got 2.5`},
		{"out_of_range", `out_of_range.bad.yml:2:15: kafka.partitions: 99999999999999999999 is out of range`},
		{"section_scalar", `section_scalar.bad.yml:1:7: http: expected a mapping, got "127.0.0.1:8080"`},
		{"brokers_scalar", `brokers_scalar.bad.yml:2:12: kafka.brokers: expected a list, got "kafka-1:9092"`},
		{"bad_duration", `bad_duration.bad.yml:2:20: processing.commit_interval: "100" is not a duration: write a number and a unit, such as 100ms, 10s or 1m30s`},
		{"duration_list", `duration_list.bad.yml:2:20: processing.session_timeout: expected a duration such as 100ms or 10s, got a list`},
		{"syntax", `syntax.bad.yml:2:12: sequence end token ']' not found`},
		{"two_documents", `two_documents.bad.yml:2:1: more than one YAML document`},
		{"not_a_mapping", `not_a_mapping.bad.yml:1:1: expected a mapping, got a list`},
		{"many", strings.Join([]string{
			`many.bad.yml:3:3: unknown key "kafka.partitons" (did you mean "kafka.partitions"?)`,
			`many.bad.yml:4:12: kafka.brokers: expected a list, got "kafka-1:9092"`,
			`many.bad.yml:6:20: processing.commit_interval: "soon" is not a duration: write a number and a unit, such as 100ms, 10s or 1m30s`,
		}, "\n")},

		// Parsed, then refused by Validate.
		{"bad_app", `bad_app.bad.yml:1:6: app: must match [a-z0-9._-]+, got "Shop Prod"`},
		{"bad_listen", `bad_listen.bad.yml:2:11: http.listen: "8080" is not host:port: missing port in address`},
		{"bad_port", `bad_port.bad.yml:2:18: kafka.broker_listen: "localhost:99999" has an invalid port "99999": want a number from 0 to 65535`},
		{"bad_broker", `bad_broker.bad.yml:4:7: kafka.brokers[1]: "kafka-2" is not host:port: missing port in address`},
		{"partitions_zero", `partitions_zero.bad.yml:3:15: kafka.partitions: must be between 1 and 10000, got 0`},
		{"replication_zero", `replication_zero.bad.yml:2:23: kafka.replication_factor: must be at least 1, got 0`},
		{"standby_replicas", `standby_replicas.bad.yml:2:21: processing.standby_replicas: must be between 0 and 10, got 11`},
		{"restore_concurrency", `restore_concurrency.bad.yml:2:24: processing.restore_concurrency: must be between 0 (the engine's choice) and 64, got 65`},
		{"threads", `threads.bad.yml:2:12: processing.threads: must be between 0 (the engine's choice) and 64, got 65`},
		{"read_cache_bytes", `read_cache_bytes.bad.yml:2:21: processing.read_cache_bytes: must be 0 (the engine's choice) or between 65536 and 4294967296, got 1000`},
		{"producer_linger", `producer_linger.bad.yml:2:20: processing.producer_linger: must be between 0 (send at once) and 1s, got 2s`},
		{"heartbeat_interval", `heartbeat_interval.bad.yml:2:23: processing.heartbeat_interval: must be 0 (a third of session_timeout) or below session_timeout (10s), got 10s`},
		{"bad_guarantee", `bad_guarantee.bad.yml:2:14: processing.guarantee: must be exactly_once or at_least_once, got "exactly-once"`},
		{"negative_duration", `negative_duration.bad.yml:2:22: processing.rebalance_timeout: must be positive, got -30s`},
		{"min_commit_interval", `min_commit_interval.bad.yml:2:24: processing.min_commit_interval: must be positive, got 0s`},
		{"commit_interval", `commit_interval.bad.yml:2:20: processing.commit_interval: must be shorter than processing.transaction_timeout (10s) under exactly_once, got 10s`},
		{"bad_log", strings.Join([]string{
			`bad_log.bad.yml:2:10: log.level: must be debug, info, warn or error, got "verbose"`,
			`bad_log.bad.yml:3:11: log.format: must be text or json, got "xml"`,
		}, "\n")},
	}
	files, err := filepath.Glob("testdata/*.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("testdata has %d bad files, the table %d: pair every file with its message", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := load(t, filepath.Join("testdata", tt.file+".bad.yml"), nil, Overrides{})
			if err == nil {
				t.Fatal("no error")
			}
			if got, want := err.Error(), "testdata/"+strings.ReplaceAll(tt.want, "\n", "\ntestdata/"); got != want {
				t.Errorf("error:\ngot  %s\nwant %s", got, want)
			}
		})
	}
}

func TestGoodFile(t *testing.T) {
	got, err := load(t, "testdata/good.yml", nil, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		App:  "shop-prod",
		Data: "/var/lib/tessera",
		HTTP: HTTP{Listen: "0.0.0.0:8081"},
		Kafka: Kafka{
			Brokers:           []string{"kafka-1:9092", "kafka-2:9092"},
			BrokerListen:      "127.0.0.1:19092",
			Partitions:        24,
			ReplicationFactor: 3,
		},
		Processing: Processing{
			Guarantee:          AtLeastOnce,
			CommitInterval:     Duration(250 * time.Millisecond),
			MinCommitInterval:  Duration(20 * time.Millisecond),
			MaxPollRecords:     5000,
			TransactionTimeout: Duration(time.Minute),
			SessionTimeout:     Duration(45 * time.Second),
			RebalanceTimeout:   Duration(90 * time.Second),
			ProducerLinger:     Duration(5 * time.Millisecond),
		},
		Log:         Log{Level: "debug", Format: "json"},
		Identity:    DefaultIdentity(),
		Profiles:    Default().Profiles,
		Predictions: Default().Predictions,
	}
	if !same(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got.Embedded() {
		t.Error("Embedded() with brokers configured")
	}
	if topic := got.Topic("events"); topic != "shop-prod.events" {
		t.Errorf("Topic(events) = %q", topic)
	}
}

func TestDefaults(t *testing.T) {
	for _, doc := range []string{"", "# nothing set\n", "kafka:\n", "app:\nkafka:\n  partitions: ~\n"} {
		c, err := Parse([]byte(doc), "tessera.yaml")
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if !same(c, Default()) {
			t.Errorf("%q: got %+v, want the defaults", doc, c)
		}
	}
	c := Default()
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if !c.Embedded() || c.Topic("events") != "tessera.events" {
		t.Errorf("defaults: Embedded() = %v, Topic(events) = %q", c.Embedded(), c.Topic("events"))
	}
}

// A section given in part keeps the defaults of the keys it leaves out.
func TestPartialSection(t *testing.T) {
	c, err := Parse([]byte("kafka:\n  partitions: 3\n"), "tessera.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Kafka.Partitions = 3
	if !same(c, want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
}

// Marshalling a Config gives a tessera.yaml that parses back to it.
func TestRoundTrip(t *testing.T) {
	c, err := Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Config{Default(), c} {
		data, err := yaml.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(data, "marshalled")
		if err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		if !same(got, want) {
			t.Errorf("got %+v, want %+v\n%s", got, want, data)
		}
	}
}

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tessera.yaml")
	data := "data: /from/file\nhttp:\n  listen: 127.0.0.1:1000\nkafka:\n  brokers: [file:9092]\n  broker_listen: 127.0.0.1:2000\n"
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		flags   Overrides
		brokers []string
		data    string
		listen  string
	}{
		{"file", nil, Overrides{}, []string{"file:9092"}, "/from/file", "127.0.0.1:1000"},
		{"empty env is unset", map[string]string{EnvBrokers: ""}, Overrides{}, []string{"file:9092"}, "/from/file", "127.0.0.1:1000"},
		{"env over file", map[string]string{EnvBrokers: "env-1:9092, env-2:9092"}, Overrides{},
			[]string{"env-1:9092", "env-2:9092"}, "/from/file", "127.0.0.1:1000"},
		{"flags over env", map[string]string{EnvBrokers: "env-1:9092"},
			Overrides{Brokers: []string{"flag:9092"}, Data: "/from/flag", HTTPListen: ":0", BrokerListen: "127.0.0.1:3000"},
			[]string{"flag:9092"}, "/from/flag", ":0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, file, tt.env, tt.flags)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Kafka.Brokers, tt.brokers) || c.Data != tt.data || c.HTTP.Listen != tt.listen {
				t.Errorf("got brokers %q, data %q, listen %q; want %q, %q, %q",
					c.Kafka.Brokers, c.Data, c.HTTP.Listen, tt.brokers, tt.data, tt.listen)
			}
			if want := cmpOr(tt.flags.BrokerListen, "127.0.0.1:2000"); c.Kafka.BrokerListen != want {
				t.Errorf("broker_listen = %q, want %q", c.Kafka.BrokerListen, want)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// An overridden value is blamed on its override, not on the file line it replaced.
func TestOverrideErrors(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		flags Overrides
		want  string
	}{
		{"env", map[string]string{EnvBrokers: "kafka-1:9092,kafka-2"}, Overrides{},
			`kafka.brokers[1]: "kafka-2" is not host:port: missing port in address (from $TESSERA_BROKERS)`},
		{"env trailing comma", map[string]string{EnvBrokers: "kafka-1:9092,"}, Overrides{},
			`kafka.brokers[1]: "" is not host:port: missing port in address (from $TESSERA_BROKERS)`},
		{"flag", nil, Overrides{HTTPListen: "localhost"},
			`http.listen: "localhost" is not host:port: missing port in address (from the command line)`},
		{"flag brokers", nil, Overrides{Brokers: []string{":9092"}},
			`kafka.brokers[0]: ":9092" has no host (from the command line)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, "testdata/good.yml", tt.env, tt.flags)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\ngot  %v\nwant %s", err, tt.want)
			}
		})
	}
}

// Overriding a copy leaves the original's record of where values came from alone.
func TestOverrideCopy(t *testing.T) {
	orig, err := Load("testdata/bad_broker.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	c := orig
	c.Override(Overrides{Brokers: []string{"kafka-1:9092", "kafka-2"}})
	want := `testdata/bad_broker.bad.yml:4:7: kafka.brokers[1]: "kafka-2" is not host:port: missing port in address`
	if err := orig.Validate(); err == nil || err.Error() != want {
		t.Errorf("original: got %v, want %s", err, want)
	}
}

func TestValidateAtLeastOnceIgnoresTransactionTimeout(t *testing.T) {
	c := Default()
	c.Processing.Guarantee = AtLeastOnce
	c.Processing.CommitInterval = Duration(time.Minute)
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/missing.yml")
	if err == nil || !strings.HasPrefix(err.Error(), "reading config: open testdata/missing.yml") {
		t.Errorf("got %v", err)
	}
}

// TestThreadsBoundIsTheEngines: processing.threads is refused above the
// bound the engine itself enforces, so a config that validates also starts.
func TestThreadsBoundIsTheEngines(t *testing.T) {
	if maxThreads != topology.MaxThreads {
		t.Errorf("processing.threads is bounded at %d, the engine at %d", maxThreads, topology.MaxThreads)
	}
}
