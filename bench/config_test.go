package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
)

// TestHubConfig checks that the generated configuration parses strictly,
// validates, and describes the topology DESIGN.md §9 measures: 8 windowed
// features, 5 audiences, an event trigger, a discard sink and a webhook.
func TestHubConfig(t *testing.T) {
	for _, recent := range []int{-1, 0, 20} {
		h := hubConfig{App: "bench-x", Data: t.TempDir(), Partitions: 6, Guarantee: "at_least_once",
			WriteKey: "k", WebhookURL: "http://127.0.0.1:1/hook", RecentEvents: recent}
		cfg, err := config.Parse([]byte(h.yaml()), "tessera.yaml")
		if err != nil {
			t.Fatalf("parsing:\n%s\n%v", h.yaml(), err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("validating: %v", err)
		}
		if cfg.App != "bench-x" || cfg.Kafka.Partitions != 6 || cfg.Processing.Guarantee != config.AtLeastOnce {
			t.Errorf("app %q, partitions %d, guarantee %q", cfg.App, cfg.Kafka.Partitions, cfg.Processing.Guarantee)
		}
		want := config.Default().Profiles.RecentEvents
		if recent >= 0 {
			want = recent
		}
		if cfg.Profiles.RecentEvents != want {
			t.Errorf("recent_events = %d, want %d", cfg.Profiles.RecentEvents, want)
		}
		if p, d := cfg.Processing, config.Default().Processing; p.ReadCacheBytes != 0 || p.ProducerLinger != d.ProducerLinger ||
			p.CommitInterval != d.CommitInterval || p.MinCommitInterval != d.MinCommitInterval {
			t.Errorf("read_cache_bytes %d, producer_linger %s, commit_interval %s, min_commit_interval %s: not the defaults",
				p.ReadCacheBytes, p.ProducerLinger, p.CommitInterval, p.MinCommitInterval)
		}
		if len(cfg.Features) != 8 {
			t.Errorf("%d features, want 8", len(cfg.Features))
		}
		for _, f := range cfg.Features {
			if f.Window == "lifetime" {
				t.Errorf("feature %s is not windowed", f.Name)
			}
		}
		if _, err := features.Compile(cfg.Features, features.Options{}); err != nil {
			t.Errorf("features do not compile: %v", err)
		}
		if len(cfg.Audiences) != 5 || len(cfg.Triggers) != 1 || cfg.Triggers[0].Name != TriggerName {
			t.Errorf("%d audiences and triggers %+v, want 5 and %s", len(cfg.Audiences), cfg.Triggers, TriggerName)
		}
		var defs []audience.Definition
		for _, a := range cfg.Audiences {
			defs = append(defs, audience.Definition{Name: a.Name, Rule: a.Rule})
		}
		if _, err := audience.Compile(defs, []audience.Trigger{{Name: TriggerName, Rule: cfg.Triggers[0].Rule}}); err != nil {
			t.Errorf("audiences do not compile: %v", err)
		}
		types := map[string]bool{}
		for _, d := range cfg.Destinations {
			types[d.Type] = true
		}
		if len(cfg.Destinations) != 2 || !types["discard"] || !types["webhook"] {
			t.Errorf("destinations %+v, want a discard and a webhook", cfg.Destinations)
		}
	}
}

// TestHubConfigSettings checks that the settings a run passes through to
// the hub reach its configuration, and that the hub's own rules reject a
// bad one before anything starts.
func TestHubConfigSettings(t *testing.T) {
	h := hubConfig{App: "bench-x", Data: t.TempDir(), Partitions: 6, Guarantee: "at_least_once",
		WriteKey: "k", WebhookURL: "http://127.0.0.1:1/hook", RecentEvents: -1,
		ReadCacheBytes: 4 << 20, ProducerLinger: "0s", CommitInterval: "50ms", MinCommitInterval: "10ms"}
	cfg, err := config.Parse([]byte(h.yaml()), "tessera.yaml")
	if err != nil {
		t.Fatalf("parsing:\n%s\n%v", h.yaml(), err)
	}
	if p := cfg.Processing; p.ReadCacheBytes != 4<<20 || p.ProducerLinger != 0 || p.CommitInterval != config.Duration(50*time.Millisecond) ||
		p.MinCommitInterval != config.Duration(10*time.Millisecond) {
		t.Errorf("read_cache_bytes %d, producer_linger %s, commit_interval %s, min_commit_interval %s, want 4194304, 0s, 50ms and 10ms",
			p.ReadCacheBytes, p.ProducerLinger, p.CommitInterval, p.MinCommitInterval)
	}

	for _, tc := range []struct {
		name string
		set  func(*Options)
		want string
	}{
		{"cache below the hub's minimum", func(o *Options) { o.ReadCacheBytes = 1000 }, "processing.read_cache_bytes"},
		{"negative cache", func(o *Options) { o.ReadCacheBytes = -1 }, "read cache bytes must be"},
		{"linger past the hub's maximum", func(o *Options) { o.ProducerLinger = 2 * time.Second }, "processing.producer_linger"},
		{"negative commit interval", func(o *Options) { o.CommitInterval = -time.Second }, "commit intervals must be"},
		{"negative minimum commit interval", func(o *Options) { o.MinCommitInterval = -time.Millisecond }, "a minimum of -1ms"},
		{"hub environment without a value", func(o *Options) { o.HubEnv = []string{"GOGC=200", "GOMEMLIMIT"} }, `hub environment: want NAME=value, got "GOMEMLIMIT"`},
		{"hub environment without a name", func(o *Options) { o.HubEnv = []string{"=200"} }, "hub environment"},
		{"commit interval past the transaction timeout", func(o *Options) { o.CommitInterval = time.Hour }, "processing.commit_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.set(&o)
			err := o.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if err := DefaultOptions().validate(); err != nil {
		t.Errorf("the default options: %v", err)
	}
}
