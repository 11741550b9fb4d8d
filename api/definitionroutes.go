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
	WriteJSON(w, http.StatusOK, map[string]any{d.plural: out})
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

// maxDefinitionBody bounds the JSON body of a definition write.
const maxDefinitionBody = 64 << 10

// decodeDefinition reads a definition of type T from a POST or PUT: the
// JSON body, decoded strictly (an unknown field is an error), its name
// (nameOf) reconciled with the path's, then checked by the config's
// validation — the one source of truth for what a definition may be;
// place puts it into a default config — and by check when not nil. It
// answers 400 naming kind and returns false when any of that fails.
func decodeDefinition[T any](w http.ResponseWriter, r *http.Request, kind string, nameOf func(*T) *string,
	place func(*config.Config, T), check func(T) error) (T, bool) {
	var v T
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDefinitionBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return v, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		writeError(w, http.StatusBadRequest, kind+": "+err.Error())
		return v, false
	}
	name, problem := nameFromPath(r, *nameOf(&v))
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return v, false
	}
	*nameOf(&v) = name
	cfg := config.Default()
	place(&cfg, v)
	if err := cfg.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return v, false
	}
	if check != nil {
		if err := check(v); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return v, false
		}
	}
	return v, true
}

// publishWrite publishes body as definition name for a POST or PUT and
// returns the status to answer with (201 for POST, 200 for PUT), or
// answers 503 and returns false when the definitions topic cannot be
// written.
func (d definitionRoutes) publishWrite(w http.ResponseWriter, r *http.Request, name string, body []byte) (int, bool) {
	if err := d.publish(r.Context(), name, body); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return 0, false
	}
	if r.Method == http.MethodPost {
		return http.StatusCreated, true
	}
	return http.StatusOK, true
}
