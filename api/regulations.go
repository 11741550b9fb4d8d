package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tessera-cdp/tessera/definitions"
	"github.com/tessera-cdp/tessera/regulation"
)

// Regulations serves POST /v1/regulations and GET /v1/regulations[/{id}]:
// privacy requests about a person (see package regulation), stored as
// definitions so that every instance applies them.
type Regulations struct {
	defs *definitions.Store
	// canonical writes an identifier as events' are matched
	// (identity.Rules.Canonical).
	canonical func(typ, value string) string
	list      *regulation.Suppressions
}

// NewRegulations returns the regulations API over defs; list is the
// suppression list the instance keeps (for the status), canonical
// normalises identifiers as identity resolution does.
func NewRegulations(defs *definitions.Store, list *regulation.Suppressions, canonical func(typ, value string) string) *Regulations {
	return &Regulations{defs: defs, list: list, canonical: canonical}
}

// All returns every regulation made, for the suppression list.
func (g *Regulations) All() []regulation.Regulation {
	var out []regulation.Regulation
	for _, d := range g.defs.List(regulation.Kind) {
		var r regulation.Regulation
		if json.Unmarshal(d.Body, &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// Register mounts the routes on s behind p's admin token: a regulation
// names people, so even reading one is the admin's.
func (g *Regulations) Register(s *Server, p *Profiles) {
	s.Handle("POST /v1/regulations", p.auth(g.post))
	s.Handle("GET /v1/regulations", p.auth(g.listAll))
	s.Handle("GET /v1/regulations/{id}", p.auth(g.get))
}

func (g *Regulations) post(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var req struct {
		Type        string                  `json:"type"`
		Identifiers []regulation.Identifier `json:"identifiers"`
	}
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "regulation: "+err.Error())
		return
	}
	var id [12]byte
	rand.Read(id[:])
	reg := regulation.Regulation{ID: "reg_" + hex.EncodeToString(id[:]), Type: req.Type,
		Identifiers: req.Identifiers, CreatedAt: time.Now().UTC()}
	if err := reg.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, "regulation: "+err.Error())
		return
	}
	for i, ident := range reg.Identifiers {
		if g.canonical != nil {
			reg.Identifiers[i].Value = g.canonical(ident.Type, ident.Value)
		}
	}
	body, err := json.Marshal(reg)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if err := g.defs.Put(r.Context(), regulation.Kind, reg.ID, body); err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("publishing regulation: %v", err))
		return
	}
	// The list catches up through the definitions watch a moment later;
	// the regulation just made is in force as far as this answer goes.
	reg.Status = "active"
	if reg.Type == regulation.Unsuppress {
		reg.Status = "done"
	}
	WriteJSON(w, http.StatusCreated, reg)
}

// withStatus sets r's status from the suppression list as it stands here.
func (g *Regulations) withStatus(r regulation.Regulation) regulation.Regulation {
	switch {
	case r.Type == regulation.Unsuppress:
		r.Status = "done"
	case g.list != nil && !g.list.Active(r.ID):
		r.Status = "lifted"
	default:
		r.Status = "active"
	}
	return r
}

func (g *Regulations) get(w http.ResponseWriter, r *http.Request) {
	d, ok := g.defs.Get(regulation.Kind, r.PathValue("id"))
	var reg regulation.Regulation
	if !ok || json.Unmarshal(d.Body, &reg) != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no regulation %q", r.PathValue("id")))
		return
	}
	WriteJSON(w, http.StatusOK, g.withStatus(reg))
}

func (g *Regulations) listAll(w http.ResponseWriter, _ *http.Request) {
	out := []regulation.Regulation{}
	for _, reg := range g.All() {
		out = append(out, g.withStatus(reg))
	}
	WriteJSON(w, http.StatusOK, map[string]any{"regulations": out})
}
