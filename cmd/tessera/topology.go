package main

import (
	"log/slog"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/topology"
)

// hubTopology is the topology `tessera run` runs: identity resolution and
// profiles (processor/identity); later layers add features, predictions
// and audiences to the profile stage.
func hubTopology(cfg config.Config, log *slog.Logger, feats func() *features.Set) (*topology.Topology, error) {
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
		Features:      feats,
		Logger:        log,
	})
	if err != nil {
		return nil, err
	}
	return b.Build()
}
