package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/definitions"
)

// featureKind is the definitions kind of features.
const featureKind = "feature"

// Features serves GET/POST/PUT/DELETE /v1/features: feature definitions,
// stored as definitions so every running instance picks a change up
// without a restart. The JSON has the config's field names.
type Features struct {
	defs   *definitions.Store
	routes definitionRoutes
	// check validates a definition beyond the config's checks (the
	// features engine compiles its filter); nil accepts what the config
	// accepts.
	check func(config.Feature) error
}

// NewFeatures returns the features API over defs.
func NewFeatures(defs *definitions.Store, check func(config.Feature) error) *Features {
	return &Features{defs: defs, check: check, routes: definitionRoutes{defs: defs, kind: featureKind, plural: "features"}}
}

// Seed publishes the features of the configuration that are missing or
// different, so the config file and the API end in the same place.
func (f *Features) Seed(ctx context.Context, features []config.Feature) error {
	for _, ft := range features {
		body, err := json.Marshal(ft)
		if err != nil {
			return err
		}
		if err := f.routes.publish(ctx, ft.Name, body); err != nil {
			return err
		}
	}
	return nil
}

// Register mounts the routes on s behind p's admin token.
func (f *Features) Register(s *Server, p *Profiles) { f.routes.register(s, p, f.put) }

func (f *Features) put(w http.ResponseWriter, r *http.Request) {
	ft, ok := decodeDefinition(w, r, "feature", func(f *config.Feature) *string { return &f.Name },
		func(c *config.Config, ft config.Feature) { c.Features = []config.Feature{ft} }, f.check)
	if !ok {
		return
	}
	out, _ := json.Marshal(ft)
	status, ok := f.routes.publishWrite(w, r, ft.Name, out)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(out)
}
