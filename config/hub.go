package config

import (
	"errors"
	"fmt"
	"regexp"
)

// API is the api section: the JSON API's credentials.
type API struct {
	// AdminToken is the bearer token of the JSON API under /v1/ (profiles,
	// audiences, destinations). Empty disables those routes. Prefer
	// $TESSERA_ADMIN_TOKEN to writing it here.
	AdminToken string `yaml:"admin_token"`
}

// Ingest is the ingest section: the Segment-compatible HTTP API.
type Ingest struct {
	// WriteKeys are the accepted write keys (HTTP Basic user name, or
	// writeKey in a batch body). $TESSERA_WRITE_KEYS adds more. Empty: the
	// ingest endpoints answer 401 to everyone.
	WriteKeys []string `yaml:"write_keys"`
}

// Sources is the sources section.
type Sources struct {
	// Kafka lists external topics carrying Segment-spec events.
	Kafka []KafkaSource `yaml:"kafka"`
}

// KafkaSource is one external topic read into <app>.events.
type KafkaSource struct {
	// Topic is the topic to read.
	Topic string `yaml:"topic"`
	// Format is json (Segment-spec JSON, the default) or avro (Confluent
	// wire format, schemas from SchemaRegistry).
	Format string `yaml:"format"`
	// SchemaRegistry is the schema registry URL, required for avro.
	SchemaRegistry string `yaml:"schema_registry"`
	// Brokers, when set, read the topic from another cluster.
	Brokers []string `yaml:"brokers"`
}

// TrackingPlan validates the properties (track) or traits (identify) of
// one event against a JSON Schema.
type TrackingPlan struct {
	// Event is the track event name, or "identify", "page", "screen",
	// "group" for those calls.
	Event string `yaml:"event"`
	// Schema is a JSON Schema file, relative to the config file's folder.
	Schema string `yaml:"schema"`
	// Policy is allow (record the violation, keep the event) or block
	// (send the event to <app>.events.invalid).
	Policy string `yaml:"policy"`
}

// Identity is the identity section: which identifiers an event carries,
// in priority order, and how many of each a profile may hold.
type Identity struct {
	// Types lists identifier types, highest priority first.
	Types []IdentifierType `yaml:"types"`
	// BlockedValues are never used as identifiers (compared after
	// trimming, case-insensitively).
	BlockedValues []string `yaml:"blocked_values"`
	// BlockedPatterns are regular expressions; a value that matches one is
	// never used as an identifier.
	BlockedPatterns []string `yaml:"blocked_patterns"`
	// MaxIdentifiers caps the identifiers one profile may hold in total.
	MaxIdentifiers int `yaml:"max_identifiers"`
}

// IdentifierType is one kind of identifier.
type IdentifierType struct {
	// Name is the type, e.g. user_id, email.
	Name string `yaml:"name"`
	// Limit is how many values of this type one profile may hold.
	Limit int `yaml:"limit"`
	// From lists where the value is read, as dotted paths into the event
	// (userId, traits.email, context.traits.email, context.device.id).
	// Custom types from context.externalIds[] need no path: an external
	// id's type names its identifier type.
	From []string `yaml:"from"`
	// Lowercase folds the value to lower case (emails).
	Lowercase bool `yaml:"lowercase"`
}

// Profiles is the profiles section.
type Profiles struct {
	// DedupeWindow is how long a messageId is remembered to drop retried
	// events. Default 24h.
	DedupeWindow Duration `yaml:"dedupe_window"`
	// RecentEvents is how many recent events a profile keeps for its
	// timeline. Default 100.
	RecentEvents int `yaml:"recent_events"`
}

// DefaultIdentity returns the identity rules of DESIGN.md §5.
func DefaultIdentity() Identity {
	return Identity{
		Types: []IdentifierType{
			{Name: "user_id", Limit: 1, From: []string{"userId"}},
			{Name: "email", Limit: 5, From: []string{"traits.email", "context.traits.email", "properties.email"}, Lowercase: true},
			{Name: "phone", Limit: 5, From: []string{"traits.phone", "context.traits.phone"}},
			{Name: "device_id", Limit: 5, From: []string{"context.device.id"}},
			{Name: "anonymous_id", Limit: 5, From: []string{"anonymousId"}},
		},
		BlockedValues:  []string{"", "null", "undefined", "anonymous", "0", "-1", "none", "nil"},
		MaxIdentifiers: 100,
	}
}

var identTypePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// validateHub checks the customer-data sections.
func (c Config) validateHub(check func(path string, err error)) {
	seen := map[string]bool{}
	for i, t := range c.Identity.Types {
		p := fmt.Sprintf("identity.types[%d]", i)
		if !identTypePattern.MatchString(t.Name) {
			check(p+".name", fmt.Errorf("must match [a-z][a-z0-9_]*, got %q", t.Name))
		}
		if seen[t.Name] {
			check(p+".name", fmt.Errorf("%q is listed twice", t.Name))
		}
		seen[t.Name] = true
		if t.Limit < 1 {
			check(p+".limit", fmt.Errorf("must be at least 1, got %d", t.Limit))
		}
	}
	if len(c.Identity.Types) == 0 {
		check("identity.types", errors.New("must list at least one identifier type"))
	}
	for i, pat := range c.Identity.BlockedPatterns {
		if _, err := regexp.Compile(pat); err != nil {
			check(fmt.Sprintf("identity.blocked_patterns[%d]", i), fmt.Errorf("is not a regular expression: %v", err))
		}
	}
	if c.Identity.MaxIdentifiers < 1 {
		check("identity.max_identifiers", fmt.Errorf("must be at least 1, got %d", c.Identity.MaxIdentifiers))
	}
	check("profiles.dedupe_window", positive(c.Profiles.DedupeWindow))
	if n := c.Profiles.RecentEvents; n < 0 || n > 1000 {
		check("profiles.recent_events", fmt.Errorf("must be between 0 and 1000, got %d", n))
	}
	for i, s := range c.Sources.Kafka {
		p := fmt.Sprintf("sources.kafka[%d]", i)
		if s.Topic == "" {
			check(p+".topic", errors.New("must not be empty"))
		}
		switch s.Format {
		case "", "json":
		case "avro":
			if s.SchemaRegistry == "" {
				check(p+".schema_registry", errors.New("is required when format is avro"))
			}
		default:
			check(p+".format", fmt.Errorf("must be json or avro, got %q", s.Format))
		}
		for j, b := range s.Brokers {
			check(fmt.Sprintf("%s.brokers[%d]", p, j), checkAddr(b, true))
		}
	}
	for i, tp := range c.TrackingPlans {
		p := fmt.Sprintf("tracking_plans[%d]", i)
		if tp.Event == "" {
			check(p+".event", errors.New("must not be empty"))
		}
		if tp.Schema == "" {
			check(p+".schema", errors.New("must name a JSON Schema file"))
		}
		if tp.Policy != "allow" && tp.Policy != "block" {
			check(p+".policy", fmt.Errorf("must be allow or block, got %q", tp.Policy))
		}
	}
}
