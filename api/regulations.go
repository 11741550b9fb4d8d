package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/tessera-cdp/tessera/definitions"
	"github.com/tessera-cdp/tessera/processor/profile"
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
	// profiles resolves identifiers (set by Register).
	profiles *Profiles
	// erasures and send make deletes possible (set by Erasure).
	erasures *regulation.Erasures
	send     EraseSender
	// await bounds how long a delete waits for the erasure to complete
	// before it answers "pending".
	await time.Duration
}

// EraseSender writes the requests that erase the profiles holding ids
// (identity.EraseRequest, one per identifier) for the regulation reg made
// at at.
type EraseSender func(ctx context.Context, reg string, at time.Time, ids []profile.Ident) error

// eraseAwait is how long a delete waits for the profiles to be gone.
const eraseAwait = 10 * time.Second

// Erasure enables deletes: erasures is the instance's erasure list, kept
// current here as soon as a delete is stored (and by the definitions
// watch for the others'), and send writes the erase requests.
func (g *Regulations) Erasure(erasures *regulation.Erasures, send EraseSender) {
	g.erasures, g.send = erasures, send
}

// NewRegulations returns the regulations API over defs; list is the
// suppression list the instance keeps (for the status), canonical
// normalises identifiers as identity resolution does.
func NewRegulations(defs *definitions.Store, list *regulation.Suppressions, canonical func(typ, value string) string) *Regulations {
	return &Regulations{defs: defs, list: list, canonical: canonical}
}

// All returns every regulation made, for the suppression list.
func (g *Regulations) All() []regulation.Regulation { return regulation.List(g.defs) }

// Register mounts the routes on s behind p's admin token: a regulation
// names people, so even reading one is the admin's.
func (g *Regulations) Register(s *Server, p *Profiles) {
	g.profiles = p
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
	if reg.Type == regulation.Delete {
		g.erase(w, r, reg)
		return
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

// erase handles a delete: it resolves the identifiers to their profiles,
// stores the regulation with the hashes of every identifier those hold
// (the erasure list: from then on, every instance drops their events
// received until now), writes the erase requests, and waits a while for
// the profiles to be gone. The regulation is stored before the requests
// are written, so that no event of the person slips past the list; a
// request that fails to be written is answered 503, and sending the
// delete again finishes it.
func (g *Regulations) erase(w http.ResponseWriter, r *http.Request, reg regulation.Regulation) {
	if g.send == nil || g.profiles == nil {
		writeError(w, http.StatusNotImplemented, "regulation: this instance does not erase")
		return
	}
	ctx := r.Context()
	var ids []profile.Ident
	add := func(id profile.Ident) {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, x := range reg.Identifiers {
		id := profile.Ident{Type: x.Type, Value: x.Value}
		add(id)
		f, err := g.profiles.lookup(ctx, id.String())
		if errors.Is(err, errUnknown) {
			continue
		}
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("regulation: resolving %s: %v", id, err))
			return
		}
		if !slices.Contains(reg.Profiles, f.ID) {
			reg.Profiles = append(reg.Profiles, f.ID)
		}
		for _, y := range f.Identifiers {
			add(y)
		}
	}
	for _, id := range ids {
		reg.Erased = append(reg.Erased, regulation.Hash(id))
	}
	slices.Sort(reg.Erased)
	stored := reg
	stored.Identifiers = nil // the hashes are all the list needs
	body, err := json.Marshal(stored)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if err := g.defs.Put(ctx, regulation.Kind, reg.ID, body); err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("publishing regulation: %v", err))
		return
	}
	if g.erasures != nil {
		g.erasures.Update(g.All())
	}
	if err := g.send(ctx, reg.ID, reg.CreatedAt, ids); err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("regulation %s: writing the erase requests: %v (send the delete again)", reg.ID, err))
		return
	}
	reg.Status = "pending"
	wait, cancel := context.WithTimeout(ctx, g.awaitTime())
	defer cancel()
	for {
		gone, err := g.gone(wait, reg.Profiles)
		if err == nil && gone {
			reg.Status = "done"
			break
		}
		select {
		case <-wait.Done():
		case <-time.After(50 * time.Millisecond): // polling the stores for a condition
			continue
		}
		break
	}
	WriteJSON(w, http.StatusCreated, reg)
}

func (g *Regulations) awaitTime() time.Duration {
	if g.await > 0 {
		return g.await
	}
	return eraseAwait
}

// gone reports whether none of the profiles is alive (following merges:
// a profile merged since into a live one is not gone).
func (g *Regulations) gone(ctx context.Context, profiles []string) (bool, error) {
	for _, id := range profiles {
		alive, err := g.profiles.alive(ctx, id)
		if err != nil || alive {
			return false, err
		}
	}
	return true, nil
}

// withStatus sets r's status from the suppression list as it stands here,
// or, for a delete, from whether its profiles are gone.
func (g *Regulations) withStatus(ctx context.Context, r regulation.Regulation) regulation.Regulation {
	switch {
	case r.Type == regulation.Delete:
		r.Status = "pending"
		if g.profiles != nil {
			if gone, err := g.gone(ctx, r.Profiles); err == nil && gone {
				r.Status = "done"
			}
		}
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
	WriteJSON(w, http.StatusOK, g.withStatus(r.Context(), reg))
}

func (g *Regulations) listAll(w http.ResponseWriter, r *http.Request) {
	out := []regulation.Regulation{}
	for _, reg := range g.All() {
		out = append(out, g.withStatus(r.Context(), reg))
	}
	WriteJSON(w, http.StatusOK, map[string]any{"regulations": out})
}
