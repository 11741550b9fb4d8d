// Package regulation holds the privacy requests made of tessera about a
// person — erase them, suppress their data at ingest, or stop suppressing
// it — and the two lists they make.
//
// Regulations are definitions (kind "regulation", see package
// definitions), so every instance sees each one within moments and a
// restart replays them all. The suppression list is their fold in the
// order they were made: for each identifier, the latest of suppress and
// unsuppress wins. The erasure list holds, for each identifier a delete
// regulation named, when it was erased: the identity stage drops every
// event that carries one of them and happened or was received until then,
// so neither an event still in flight, nor an import of old data, nor a
// replay of <app>.events brings the person back.
//
// The erasure list keeps no identifier in clear: a delete regulation
// stores the SHA-256 of each (Hash), which is all the list needs to match
// events, so the definitions topic does not keep what it was asked to
// forget.
package regulation

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fastjson"

	"github.com/tessera-cdp/tessera/definitions"
	"github.com/tessera-cdp/tessera/processor/profile"
)

// Kind is the definitions kind of regulations.
const Kind = "regulation"

// The regulation types.
const (
	// Delete erases the person: the whole profile the identifiers resolve
	// to, in every store and changelog and at every destination, and
	// every event received until then that carries one of its identifiers.
	Delete = "delete"
	// Suppress drops every future event that carries one of the
	// identifiers at ingest (answered 200, counted, never stored).
	Suppress = "suppress"
	// Unsuppress lifts a suppression from then on.
	Unsuppress = "unsuppress"
)

// MaxIdentifiers bounds the identifiers of one regulation.
const MaxIdentifiers = 100

// Identifier is one of a person's identifiers.
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// List returns every regulation stored in defs, skipping bodies that do
// not decode (they were validated when written).
func List(defs *definitions.Store) []Regulation {
	var out []Regulation
	for _, d := range defs.List(Kind) {
		var r Regulation
		if json.Unmarshal(d.Body, &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// Regulation is one request about a person's data.
type Regulation struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Identifiers are the request's, canonical; a stored delete
	// regulation keeps none (see Erased).
	Identifiers []Identifier `json:"identifiers,omitempty"`
	// Erased holds, for a delete, the Hash of every identifier erased:
	// the request's and those of the profiles they resolved to.
	Erased []string `json:"erased,omitempty"`
	// Profiles are, for a delete, the profiles the identifiers resolved
	// to when it was made: its status is "done" once none is left.
	Profiles []string `json:"profiles,omitempty"`
	// Status is "active" for a suppression in force, "lifted" for one an
	// unsuppress lifted since, "done" for an unsuppress or a completed
	// delete, and "pending" for a delete still under way.
	Status    string    `json:"status,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Hash is how the erasure list names the identifier typ:value: the
// SHA-256 of its canonical string (profile.Ident.String), in hex.
func Hash(id profile.Ident) string {
	h := sha256.Sum256([]byte(id.String()))
	return hex.EncodeToString(h[:])
}

// Validate checks r as a request: its type and identifiers.
func (r Regulation) Validate() error {
	var errs []error
	if r.Type != Delete && r.Type != Suppress && r.Type != Unsuppress {
		errs = append(errs, fmt.Errorf("type must be %s, %s or %s, got %q", Delete, Suppress, Unsuppress, r.Type))
	}
	switch n := len(r.Identifiers); {
	case n == 0:
		errs = append(errs, errors.New("identifiers: at least one is required"))
	case n > MaxIdentifiers:
		errs = append(errs, fmt.Errorf("identifiers: at most %d, got %d", MaxIdentifiers, n))
	}
	for i, id := range r.Identifiers {
		if id.Type == "" || id.Value == "" {
			errs = append(errs, fmt.Errorf("identifiers[%d]: type and value are required", i))
		}
	}
	return errors.Join(errs...)
}

// Suppressions is the suppression list. It is safe for concurrent use:
// ingest reads it for every event while the definitions watcher updates
// it.
type Suppressions struct {
	mu  sync.RWMutex
	set map[profile.Ident]string // identifier → the suppressing regulation
}

// Update rebuilds the list from every regulation, folding them in the
// order they were made.
func (s *Suppressions) Update(regs []Regulation) {
	regs = slices.Clone(regs)
	slices.SortStableFunc(regs, func(a, b Regulation) int { return a.CreatedAt.Compare(b.CreatedAt) })
	set := make(map[profile.Ident]string)
	for _, r := range regs {
		for _, id := range r.Identifiers {
			k := profile.Ident{Type: id.Type, Value: id.Value}
			switch r.Type {
			case Suppress:
				set[k] = r.ID
			case Unsuppress:
				delete(set, k)
			}
		}
	}
	s.mu.Lock()
	s.set = set
	s.mu.Unlock()
}

// Len returns how many identifiers are suppressed.
func (s *Suppressions) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.set)
}

// Any reports whether one of ids is suppressed.
func (s *Suppressions) Any(ids []profile.Ident) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range ids {
		if _, ok := s.set[id]; ok {
			return true
		}
	}
	return false
}

// Test returns the test ingest applies to each event (normalized JSON):
// whether one of the identifiers extract finds in it is suppressed. It
// parses nothing while the list is empty. The test is safe for
// concurrent use.
func (s *Suppressions) Test(extract func(*fastjson.Value) []profile.Ident) func(event []byte) bool {
	var parsers fastjson.ParserPool
	return func(event []byte) bool {
		if s.Len() == 0 {
			return false
		}
		p := parsers.Get()
		defer parsers.Put(p)
		v, err := p.ParseBytes(event)
		if err != nil {
			return false // the normalizer made it; it is JSON
		}
		return s.Any(extract(v))
	}
}

// Active reports whether the suppression regulation id is in force: some
// identifier is suppressed by it.
func (s *Suppressions) Active(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, by := range s.set {
		if by == id {
			return true
		}
	}
	return false
}

// Erasures is the erasure list: for each erased identifier's SHA-256, the
// latest time it was erased. It is safe for concurrent use: the identity
// stage reads it for every event while the definitions watcher replaces
// it whole.
type Erasures struct {
	// list is immutable once stored. Keyed by the raw digest, so a lookup
	// hashes without formatting hex.
	list atomic.Pointer[map[[sha256.Size]byte]time.Time]
}

// Update rebuilds the list from every regulation; a hash that is not hex
// SHA-256 (none is: Hash wrote them) is skipped.
func (e *Erasures) Update(regs []Regulation) {
	m := make(map[[sha256.Size]byte]time.Time)
	for _, r := range regs {
		if r.Type != Delete {
			continue
		}
		for _, h := range r.Erased {
			var k [sha256.Size]byte
			if n, err := hex.Decode(k[:], []byte(h)); err != nil || n != sha256.Size {
				continue
			}
			if r.CreatedAt.After(m[k]) {
				m[k] = r.CreatedAt
			}
		}
	}
	e.list.Store(&m)
}

// Len returns how many identifiers are erased.
func (e *Erasures) Len() int {
	if m := e.list.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// ErasedAt returns the latest time one of ids was erased, and whether any
// was. The identity stage drops an event known by then (the earlier of
// when it happened and when it was received): an old event imported or
// replayed after the erasure is the person's, while one that happens later
// is new data (a person who comes back after an erasure starts a new
// profile; suppress them to refuse that). It hashes nothing while the list
// is empty.
func (e *Erasures) ErasedAt(ids []profile.Ident) (time.Time, bool) {
	m := e.list.Load()
	if m == nil || len(*m) == 0 {
		return time.Time{}, false
	}
	var latest time.Time
	found := false
	for _, id := range ids {
		if at, ok := (*m)[sha256.Sum256([]byte(id.String()))]; ok {
			if !found || at.After(latest) {
				latest = at
			}
			found = true
		}
	}
	return latest, found
}
