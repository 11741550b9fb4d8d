package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/topology"
)

// hubTopology is the topology `tessera run` runs: identity resolution and
// profiles (processor/identity); later layers add features, predictions
// and audiences to the profile stage.
// hubHooks are what the topology reads from outside the engine: the
// definitions in force, the model scores, the activation encoding.
type hubHooks struct {
	features  func() *features.Set
	audiences func() *audience.Set
	predict   func(p *profile.Profile) (predictions, rfm map[string]any)
	activate  func(identity.Activation) ([]byte, error)
	// eventsTopic and skipEvent are a replay's: the live app's events
	// topic, and its --to bound (see identity.Options).
	eventsTopic string
	skipEvent   func(partition int32, offset int64) bool
	// erasedAt reads the erasure list (regulation.Erasures.ErasedAt).
	erasedAt func(ids []profile.Ident) (time.Time, bool)
	// reg registers the stages' counters; nil registers none.
	reg prometheus.Registerer
}

func hubTopology(cfg config.Config, log *slog.Logger, h hubHooks) (*topology.Topology, error) {
	rules, err := identity.NewRules(cfg.Identity)
	if err != nil {
		return nil, err
	}
	b := topology.NewBuilder()
	err = identity.Add(b, identity.Options{
		App:           cfg.App,
		Partitions:    int32(cfg.Kafka.Partitions),
		Rules:         rules,
		DedupeWindow:  time.Duration(cfg.Profiles.DedupeWindow),
		RecentEvents:  cfg.Profiles.RecentEvents,
		PurchaseEvent: cfg.Predictions.PurchaseEvent,
		SpendProperty: cfg.Predictions.SpendProperty,
		Features:      h.features,
		Audiences:     h.audiences,
		Predict:       h.predict,
		Activate:      h.activate,
		EventsTopic:   h.eventsTopic,
		SkipEvent:     h.skipEvent,
		ErasedAt:      h.erasedAt,
		ErasureGrace:  time.Duration(cfg.Profiles.ErasureGrace),
		Logger:        log,
		Registerer:    h.reg,
	})
	if err != nil {
		return nil, err
	}
	return b.Build()
}
