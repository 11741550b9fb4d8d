package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tessera-cdp/tessera/definitions"
)

// definitionRoutes serves the list, get and delete of one kind of
// definition (features, audiences) and publishes it; each kind adds the
// write that validates its own JSON.
type definitionRoutes struct {
	defs *definitions.Store
	// kind is the definitions kind and the noun of error messages;
	// plural names the list in GET's answer and the route.
	kind, plural string
}

// publish writes a definition unless the same body is already there, so
// seeding the config's definitions at every start writes nothing new.
func (d definitionRoutes) publish(ctx context.Context, name string, body []byte) error {
	if cur, ok := d.defs.Get(d.kind, name); ok && bytes.Equal(cur.Body, body) {
		return nil
	}
	if err := d.defs.Put(ctx, d.kind, name, body); err != nil {
		return fmt.Errorf("publishing %s %s: %w", d.kind, name, err)
	}
	return nil
}

// register mounts GET list and one, POST and PUT (write) and DELETE on s
// behind p's admin token.
func (d definitionRoutes) register(s *Server, p *Profiles, write http.HandlerFunc) {
	base := "/v1/" + d.plural
	s.Handle("GET "+base, p.auth(d.list))
	s.Handle("GET "+base+"/{name}", p.auth(d.get))
	s.Handle("POST "+base, p.auth(write))
	s.Handle("PUT "+base+"/{name}", p.auth(write))
	s.Handle("DELETE "+base+"/{name}", p.auth(d.delete))
}

func (d definitionRoutes) list(w http.ResponseWriter, _ *http.Request) {
	out := []json.RawMessage{}
	for _, def := range d.defs.List(d.kind) {
		out = append(out, def.Body)
	}
	writeJSON(w, http.StatusOK, map[string]any{d.plural: out})
}

func (d definitionRoutes) get(w http.ResponseWriter, r *http.Request) {
	def, ok := d.defs.Get(d.kind, r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no %s named %q", d.kind, r.PathValue("name")))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(def.Body)
}

func (d definitionRoutes) delete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := d.defs.Get(d.kind, name); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no %s named %q", d.kind, name))
		return
	}
	if err := d.defs.Delete(r.Context(), d.kind, name); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// nameFromPath reconciles the name in a PUT's path with the body's: the
// body may leave it out; it must not contradict it. It returns the name
// and "" or an error message.
func nameFromPath(r *http.Request, body string) (string, string) {
	path := r.PathValue("name")
	switch {
	case path == "":
		return body, ""
	case body == "":
		return path, ""
	case body != path:
		return "", fmt.Sprintf("name %q in the body does not match %q in the path", body, path)
	}
	return body, ""
}
