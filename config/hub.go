package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// API is the api section: the JSON API's credentials.
type API struct {
	// AdminToken is the bearer token of the JSON API under /v1/ (profiles,
	// audiences, destinations). Empty disables those routes. Prefer
	// $TESSERA_ADMIN_TOKEN to writing it here.
	AdminToken string `yaml:"admin_token"`
	// ViewerToken is the read-only bearer token, for support agents: it
	// reads profiles, their events and predictions, and insights, and
	// changes nothing. Empty: there is no viewer. Prefer
	// $TESSERA_VIEWER_TOKEN to writing it here.
	ViewerToken string `yaml:"viewer_token"`
}

// Ingest is the ingest section: the Segment-compatible HTTP API.
type Ingest struct {
	// WriteKeys are the accepted write keys (HTTP Basic user name, or
	// writeKey in a batch body). $TESSERA_WRITE_KEYS adds more. Empty: the
	// ingest endpoints answer 401 to everyone.
	WriteKeys []string `yaml:"write_keys"`
	// RateLimit limits the events per second of each write key; off by default.
	RateLimit RateLimit `yaml:"rate_limit"`
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
	// ErasureGrace is how long an erased profile leaves a marker (nothing
	// of the person, only the time of the request) to answer messages
	// already on their way to it; its tombstone follows. Default 10m.
	ErasureGrace Duration `yaml:"erasure_grace"`
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

// ParseWindow parses a window or horizon: a number and a unit, m (minutes),
// h, d, w (weeks), or "lifetime" (returned as 0). Windows run from 1m to
// 365d.
func ParseWindow(s string) (time.Duration, error) {
	if s == "lifetime" {
		return 0, nil
	}
	if len(s) < 2 {
		return 0, fmt.Errorf("must be a number and a unit (m, h, d, w) or lifetime, got %q", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("must be a positive number and a unit (m, h, d, w) or lifetime, got %q", s)
	}
	unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("unit must be m, h, d or w, got %q", s)
	}
	d := time.Duration(n) * unit
	if d > 365*24*time.Hour {
		return 0, fmt.Errorf("must be at most 365d, got %q", s)
	}
	return d, nil
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
	check("profiles.erasure_grace", positive(c.Profiles.ErasureGrace))
	if n := c.Profiles.RecentEvents; n < 0 || n > 1000 {
		check("profiles.recent_events", fmt.Errorf("must be between 0 and 1000, got %d", n))
	}
	names := map[string]bool{}
	for i, f := range c.Features {
		p := fmt.Sprintf("features[%d]", i)
		if !identTypePattern.MatchString(f.Name) {
			check(p+".name", fmt.Errorf("must match [a-z][a-z0-9_]*, got %q", f.Name))
		}
		if names[f.Name] {
			check(p+".name", fmt.Errorf("%q is declared twice", f.Name))
		}
		names[f.Name] = true
		if (f.Event == "") == (f.Type == "") {
			check(p, errors.New("needs exactly one of event or type"))
		}
		switch f.Agg {
		case "count":
		case "sum", "min", "max", "avg", "count_distinct", "first", "last", "most_frequent":
			if f.Property == "" {
				check(p+".property", fmt.Errorf("is required for agg %s", f.Agg))
			}
		default:
			check(p+".agg", fmt.Errorf("must be count, sum, min, max, avg, count_distinct, first, last or most_frequent, got %q", f.Agg))
		}
		if _, err := ParseWindow(f.Window); err != nil {
			check(p+".window", err)
		}
	}
	pr := c.Predictions
	if pr.PurchaseEvent == "" {
		check("predictions.purchase_event", errors.New("must not be empty"))
	}
	for i, h := range pr.Horizons {
		if d, err := ParseWindow(h); err != nil || d == 0 {
			check(fmt.Sprintf("predictions.horizons[%d]", i), fmt.Errorf("must be a span such as 30d or 39w, got %q", h))
		}
	}
	check("predictions.fit_interval", positive(pr.FitInterval))
	if pr.AllowedLateness < 0 {
		check("predictions.allowed_lateness", fmt.Errorf("must not be negative, got %s", pr.AllowedLateness))
	}
	dests := map[string]bool{}
	for i, d := range c.Destinations {
		p := fmt.Sprintf("destinations[%d]", i)
		if !identTypePattern.MatchString(d.Name) {
			check(p+".name", fmt.Errorf("must match [a-z][a-z0-9_]*, got %q", d.Name))
		}
		if dests[d.Name] {
			check(p+".name", fmt.Errorf("%q is declared twice", d.Name))
		}
		dests[d.Name] = true
		if !slices.Contains(DestinationTypes, d.Type) {
			check(p+".type", fmt.Errorf("must be one of %s, got %q", strings.Join(DestinationTypes, ", "), d.Type))
		}
		for j, t := range d.Types {
			if t != "audience_entered" && t != "audience_exited" && t != "event_triggered" {
				check(fmt.Sprintf("%s.types[%d]", p, j), fmt.Errorf("must be audience_entered, audience_exited or event_triggered, got %q", t))
			}
		}
		for j, c := range d.Categories {
			if !identTypePattern.MatchString(c) {
				check(fmt.Sprintf("%s.categories[%d]", p, j), fmt.Errorf("must match [a-z][a-z0-9_]*, got %q", c))
			}
		}
		if d.Delivery.MaxAttempts < 0 || d.Delivery.BatchSize < 0 || d.Delivery.RatePerSecond < 0 {
			check(p+".delivery", errors.New("max_attempts, batch_size and rate_per_second must not be negative"))
		}
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

// Feature is a rolling behavioural feature: an aggregation of an event (or
// one of its properties) over a window, per profile. The JSON names are the
// same as the YAML ones, for the definitions API.
type Feature struct {
	// Name is how rules and the profile API refer to it.
	Name string `yaml:"name" json:"name"`
	// Event is the track event name it counts; Type selects a call type
	// (identify, page, …) instead. One of the two is required.
	Event string `yaml:"event" json:"event,omitempty"`
	Type  string `yaml:"type" json:"type,omitempty"`
	// Filter is an optional expression over the event's properties
	// (e.g. `revenue > 100`), evaluated per event.
	Filter string `yaml:"filter" json:"filter,omitempty"`
	// Agg is count, sum, min, max, avg, count_distinct, first, last or
	// most_frequent.
	Agg string `yaml:"agg" json:"agg"`
	// Property is the event property aggregated; required by every agg
	// but count.
	Property string `yaml:"property" json:"property,omitempty"`
	// Window is 1m … 365d, or lifetime.
	Window string `yaml:"window" json:"window"`
}

// Predictions is the predictions section: which event is a purchase and
// which property its spend, the horizons scored, and how often the models
// are refitted.
type Predictions struct {
	// PurchaseEvent is the track event of a purchase. Default "Order Completed".
	PurchaseEvent string `yaml:"purchase_event"`
	// SpendProperty is the purchase's monetary value. Default "revenue".
	SpendProperty string `yaml:"spend_property"`
	// Horizons are the spans the profile API predicts over. Default 30d, 90d, 365d.
	Horizons []string `yaml:"horizons"`
	// FitInterval is how often the models are refitted. Default 1h.
	FitInterval Duration `yaml:"fit_interval"`
	// AllowedLateness is how late an event may arrive and still update
	// its feature window. Default 7 days.
	AllowedLateness Duration `yaml:"allowed_lateness"`
}

// Destination is a channel activations are delivered to. The fields a
// type does not use must be empty. Secrets are never written here: a
// field ending in _env names the environment variable holding one.
type Destination struct {
	// Name identifies the destination (its consumer group, metrics label
	// and delivery log).
	Name string `yaml:"name" json:"name"`
	// Type is webhook, kafka, smtp, twilio_sms, sendgrid, slack, redis,
	// postgres, file or discard (acknowledges and drops; the benchmark's
	// null sink).
	Type string `yaml:"type" json:"type"`
	// Audiences limits the destination to these audiences and triggers;
	// empty takes all.
	Audiences []string `yaml:"audiences" json:"audiences,omitempty"`
	// Types limits it to these activation types (audience_entered,
	// audience_exited, event_triggered); empty takes all.
	Types []string `yaml:"types" json:"types,omitempty"`
	// Categories are the consent categories the destination serves
	// (marketing, analytics, …): it gets a person's activations only if
	// they granted every one of them (context.consent.categoryPreferences);
	// a category they never spoke of is not granted. Empty: consent does
	// not apply. profile_deleted notices go regardless.
	Categories []string `yaml:"categories" json:"categories,omitempty"`
	// Template is a Go text/template rendering the payload (the body of a
	// webhook or email, the text of an SMS or Slack message) from the
	// activation; each type has a default.
	Template string `yaml:"template" json:"template,omitempty"`
	// Subject is the email subject template (smtp, sendgrid).
	Subject string `yaml:"subject" json:"subject,omitempty"`

	// URL is the endpoint: the webhook's or Slack's URL, or the base URL
	// of Twilio's or SendGrid's API (defaults to theirs).
	URL string `yaml:"url" json:"url,omitempty"`
	// Address is host:port of an SMTP or Redis server.
	Address string `yaml:"address" json:"address,omitempty"`
	// SecretEnv names the variable with the webhook's signing secret, the
	// SendGrid or Twilio API key/auth token, or the SMTP/Redis password.
	SecretEnv string `yaml:"secret_env" json:"secret_env,omitempty"`
	// Username is the SMTP user or the Twilio account SID.
	Username string `yaml:"username" json:"username,omitempty"`
	// From is the sender: an email address or a phone number.
	From string `yaml:"from" json:"from,omitempty"`
	// ToTrait is the profile trait holding the recipient's address or
	// phone number. Default "email" (email) or "phone" (SMS).
	ToTrait string `yaml:"to_trait" json:"to_trait,omitempty"`
	// Topic and Brokers name the Kafka topic and cluster (the hub's when
	// empty).
	Topic   string   `yaml:"topic" json:"topic,omitempty"`
	Brokers []string `yaml:"brokers" json:"brokers,omitempty"`
	// DSNEnv names the variable holding the PostgreSQL connection string.
	DSNEnv string `yaml:"dsn_env" json:"dsn_env,omitempty"`
	// Path is the file sink's JSON Lines file.
	Path string `yaml:"path" json:"path,omitempty"`

	// Delivery tunes the runtime; zero values take the defaults.
	Delivery Delivery `yaml:"delivery" json:"delivery,omitempty"`
}

// Delivery tunes how a destination's runtime delivers.
type Delivery struct {
	// MaxAttempts before the dead-letter topic. Default 8.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts,omitempty"`
	// BackoffMin and BackoffMax bound the jittered exponential backoff.
	// Defaults 200ms and 30s.
	BackoffMin Duration `yaml:"backoff_min" json:"backoff_min,omitempty"`
	BackoffMax Duration `yaml:"backoff_max" json:"backoff_max,omitempty"`
	// RatePerSecond caps deliveries per second; 0 is unlimited.
	RatePerSecond float64 `yaml:"rate_per_second" json:"rate_per_second,omitempty"`
	// BatchSize is the most activations per write where the channel
	// batches. Default 100.
	BatchSize int `yaml:"batch_size" json:"batch_size,omitempty"`
	// Timeout bounds one write. Default 10s.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// DestinationTypes are the sink types.
var DestinationTypes = []string{"webhook", "kafka", "smtp", "twilio_sms", "sendgrid", "slack", "redis", "postgres", "file", "discard"}

// Audience is an audience as the config and the API write it: a rule over
// traits, features, predictions and rfm, and the destinations it feeds.
type Audience struct {
	Name             string   `yaml:"name" json:"name"`
	Rule             string   `yaml:"rule" json:"rule"`
	Destinations     []string `yaml:"destinations" json:"destinations,omitempty"`
	ActivateExisting bool     `yaml:"activate_existing" json:"activate_existing,omitempty"`
}

// Trigger is a rule on a single incoming event (of Event, when set).
type Trigger struct {
	Name         string   `yaml:"name" json:"name"`
	Event        string   `yaml:"event" json:"event,omitempty"`
	Rule         string   `yaml:"rule" json:"rule"`
	Destinations []string `yaml:"destinations" json:"destinations,omitempty"`
}
