package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var ft config.Feature
	if err := dec.Decode(&ft); err != nil {
		writeError(w, http.StatusBadRequest, "feature: "+err.Error())
		return
	}
	name, problem := nameFromPath(r, ft.Name)
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	ft.Name = name
	// The config's validation is the one source of truth for what a
	// feature may be.
	cfg := config.Default()
	cfg.Features = []config.Feature{ft}
	if err := cfg.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if f.check != nil {
		if err := f.check(ft); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	out, _ := json.Marshal(ft)
	if err := f.routes.publish(r.Context(), ft.Name, out); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		status = http.StatusCreated
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(out)
}
