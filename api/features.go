package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	defs *definitions.Store
	// check validates a definition beyond the config's checks (the
	// features engine compiles its filter); nil accepts what the config
	// accepts.
	check func(config.Feature) error
}

// NewFeatures returns the features API over defs.
func NewFeatures(defs *definitions.Store, check func(config.Feature) error) *Features {
	return &Features{defs: defs, check: check}
}

// Seed publishes the features of the configuration that are missing or
// different, so the config file and the API end in the same place.
func (f *Features) Seed(ctx context.Context, features []config.Feature) error {
	for _, ft := range features {
		body, err := json.Marshal(ft)
		if err != nil {
			return err
		}
		if d, ok := f.defs.Get(featureKind, ft.Name); ok && string(d.Body) == string(body) {
			continue
		}
		if err := f.defs.Put(ctx, featureKind, ft.Name, body); err != nil {
			return fmt.Errorf("publishing feature %s: %w", ft.Name, err)
		}
	}
	return nil
}

// Register mounts the routes on s behind p's admin token.
func (f *Features) Register(s *Server, p *Profiles) {
	s.Handle("GET /v1/features", p.auth(f.list))
	s.Handle("GET /v1/features/{name}", p.auth(f.get))
	s.Handle("POST /v1/features", p.auth(f.put))
	s.Handle("PUT /v1/features/{name}", p.auth(f.put))
	s.Handle("DELETE /v1/features/{name}", p.auth(f.delete))
}

func (f *Features) list(w http.ResponseWriter, _ *http.Request) {
	out := []json.RawMessage{}
	for _, d := range f.defs.List(featureKind) {
		out = append(out, d.Body)
	}
	writeJSON(w, http.StatusOK, map[string]any{"features": out})
}

func (f *Features) get(w http.ResponseWriter, r *http.Request) {
	d, ok := f.defs.Get(featureKind, r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no feature named %q", r.PathValue("name")))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(d.Body)
}

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
	if name := r.PathValue("name"); name != "" {
		if ft.Name == "" {
			ft.Name = name
		}
		if ft.Name != name {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("name %q in the body does not match %q in the path", ft.Name, name))
			return
		}
	}
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
	if err := f.defs.Put(r.Context(), featureKind, ft.Name, out); err != nil {
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

func (f *Features) delete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := f.defs.Get(featureKind, name); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no feature named %q", name))
		return
	}
	if err := f.defs.Delete(r.Context(), featureKind, name); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
