package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/definitions"
)

// destinationKind is the definitions kind of destinations.
const destinationKind = "destination"

// Destinations serves GET/POST/PUT/DELETE /v1/destinations: destination
// definitions, with the config's field names, stored as definitions so
// that every instance starts, restarts or stops the destination's runner
// without a restart of its own. Secrets never travel through it: a
// definition names the environment variable that holds each (secret_env,
// dsn_env), which must be set on every instance.
//
// GET answers each definition with its live status (the runner's state,
// counts and last error) under "status", when it runs here.
type Destinations struct {
	defs   *definitions.Store
	routes definitionRoutes
	// check builds the destination's sink without connecting it, so a
	// definition missing a required field or secret is refused; nil
	// accepts what the config accepts.
	check func(config.Destination) error
	// status returns a running destination's status (any JSON value).
	status func(name string) (any, bool)
}

// NewDestinations returns the destinations API over defs. check and
// status may be nil.
func NewDestinations(defs *definitions.Store, check func(config.Destination) error, status func(string) (any, bool)) *Destinations {
	return &Destinations{defs: defs, check: check, status: status,
		routes: definitionRoutes{defs: defs, kind: destinationKind, plural: "destinations"}}
}

// Seed publishes the config's destinations that are missing or different,
// so the config file and the API end in the same place.
func (d *Destinations) Seed(ctx context.Context, dests []config.Destination) error {
	for _, dest := range dests {
		body, err := json.Marshal(dest)
		if err != nil {
			return err
		}
		if err := d.routes.publish(ctx, dest.Name, body); err != nil {
			return err
		}
	}
	return nil
}

// Definitions returns the destinations in force. A definition that does
// not decode (written by a newer version) is skipped.
func (d *Destinations) Definitions() []config.Destination {
	var out []config.Destination
	for _, def := range d.defs.List(destinationKind) {
		var dest config.Destination
		if json.Unmarshal(def.Body, &dest) == nil {
			out = append(out, dest)
		}
	}
	return out
}

// Exists reports whether a destination called name is defined.
func (d *Destinations) Exists(name string) bool {
	_, ok := d.defs.Get(destinationKind, name)
	return ok
}

// Register mounts the routes on s behind p's admin token.
func (d *Destinations) Register(s *Server, p *Profiles) {
	base := "/v1/" + d.routes.plural
	s.Handle("GET "+base, p.auth(d.list))
	s.Handle("GET "+base+"/{name}", p.auth(d.get))
	s.Handle("POST "+base, p.auth(d.write))
	s.Handle("PUT "+base+"/{name}", p.auth(d.write))
	s.Handle("DELETE "+base+"/{name}", p.auth(d.routes.delete))
}

// view is a definition with its status merged in.
func (d *Destinations) view(body []byte) map[string]any {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		m = map[string]any{}
	}
	if name, _ := m["name"].(string); d.status != nil {
		if st, ok := d.status(name); ok {
			m["status"] = st
		}
	}
	return m
}

func (d *Destinations) list(w http.ResponseWriter, _ *http.Request) {
	out := []map[string]any{}
	for _, def := range d.defs.List(destinationKind) {
		out = append(out, d.view(def.Body))
	}
	WriteJSON(w, http.StatusOK, map[string]any{"destinations": out})
}

func (d *Destinations) get(w http.ResponseWriter, r *http.Request) {
	def, ok := d.defs.Get(destinationKind, r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no destination named %q", r.PathValue("name")))
		return
	}
	WriteJSON(w, http.StatusOK, d.view(def.Body))
}

func (d *Destinations) write(w http.ResponseWriter, r *http.Request) {
	// Building the sink (check) tests the type's own requirements: a
	// URL, a secret that is set.
	dest, ok := decodeDefinition(w, r, "destination", func(d *config.Destination) *string { return &d.Name },
		func(c *config.Config, dest config.Destination) { c.Destinations = []config.Destination{dest} }, d.check)
	if !ok {
		return
	}
	out, err := json.Marshal(dest)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	status, ok := d.routes.publishWrite(w, r, dest.Name, out)
	if !ok {
		return
	}
	WriteJSON(w, status, d.view(out))
}
