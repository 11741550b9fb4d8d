// Package regulation holds the privacy requests made of tessera about a
// person — suppress their data at ingest, or stop suppressing it — and
// the suppression list they make.
//
// Regulations are definitions (kind "regulation", see package
// definitions), so every instance sees each one within moments and a
// restart replays them all. The suppression list is their fold in the
// order they were made: for each identifier, the latest of suppress and
// unsuppress wins.
package regulation

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/valyala/fastjson"

	"github.com/tessera-cdp/tessera/processor/profile"
)

// Kind is the definitions kind of regulations.
const Kind = "regulation"

// The regulation types.
const (
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

// Regulation is one request about a person's data.
type Regulation struct {
	ID          string       `json:"id"`
	Type        string       `json:"type"`
	Identifiers []Identifier `json:"identifiers"`
	// Status is "active" for a suppression in force, "lifted" for one an
	// unsuppress lifted since, and "done" for an unsuppress.
	Status    string    `json:"status,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Validate checks r as a request: its type and identifiers.
func (r Regulation) Validate() error {
	var errs []error
	if r.Type != Suppress && r.Type != Unsuppress {
		errs = append(errs, fmt.Errorf("type must be %s or %s, got %q", Suppress, Unsuppress, r.Type))
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
			if r.Type == Suppress {
				set[k] = r.ID
			} else {
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
