package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"github.com/tessera-cdp/tessera/config"
)

// Supervisor keeps one running Runner per destination definition, in
// step with the definitions as they change: Apply starts the new ones,
// restarts the changed ones and stops the removed ones, and keeps the
// Registry (the HTTP API's view) current.
//
// A restarted destination resumes from its consumer group's committed
// offsets, so a change loses nothing; what was in flight may be delivered
// again, with the same idempotency key. Its delivery log and counts carry
// over to the new Runner.
type Supervisor struct {
	reg   *Registry
	build func(config.Destination) (*Runner, error)
	log   *slog.Logger
	ctx   context.Context // every runner's parent

	mu      sync.Mutex // serialises Apply and Close
	running map[string]*supervised
	closed  bool
}

// supervised is one running destination.
type supervised struct {
	dest   config.Destination
	runner *Runner
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returns
}

// NewSupervisor returns a Supervisor that builds runners with build and
// registers them in reg. Runners run until ctx ends or Close.
func NewSupervisor(ctx context.Context, reg *Registry, build func(config.Destination) (*Runner, error), log *slog.Logger) *Supervisor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{reg: reg, build: build, log: log, ctx: ctx, running: make(map[string]*supervised)}
}

// Apply makes the running destinations those of dests. A destination
// that does not build (a missing secret, a bad template) is left as it
// was, running its previous definition if it had one, and its error is
// returned, joined with the others'; the rest are applied regardless.
func (s *Supervisor) Apply(dests []config.Destination) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil // stopping: a late change has nothing to run
	}
	var errs []error
	want := make(map[string]bool, len(dests))
	for _, d := range dests {
		want[d.Name] = true
		cur := s.running[d.Name]
		if cur != nil && reflect.DeepEqual(cur.dest, d) {
			continue
		}
		r, err := s.build(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("destination %s: %w", d.Name, err))
			continue
		}
		if cur != nil {
			s.stop(cur)
			r.inherit(cur.runner)
			s.log.Info("destination changed: restarted", "destination", d.Name)
		} else {
			s.log.Info("destination started", "destination", d.Name, "type", d.Type)
		}
		s.start(d, r)
	}
	for name, cur := range s.running {
		if !want[name] {
			s.stop(cur)
			delete(s.running, name)
			s.reg.Remove(name)
			s.log.Info("destination removed: stopped", "destination", name)
		}
	}
	return errors.Join(errs...)
}

// start runs r for d. The caller holds s.mu.
func (s *Supervisor) start(d config.Destination, r *Runner) {
	ctx, cancel := context.WithCancel(s.ctx)
	sv := &supervised{dest: d, runner: r, cancel: cancel, done: make(chan struct{})}
	s.running[d.Name] = sv
	s.reg.Replace(r)
	go func() {
		defer close(sv.done)
		if err := r.Run(ctx); err != nil {
			s.log.Error("destination stopped", "destination", d.Name, "err", err)
		}
	}()
}

// stop stops sv's runner and waits until it has left its group, so its
// successor starts from the offsets it committed. The caller holds s.mu.
func (s *Supervisor) stop(sv *supervised) {
	sv.cancel()
	<-sv.done
}

// Close stops every destination and waits for them.
func (s *Supervisor) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for name, sv := range s.running {
		s.stop(sv)
		delete(s.running, name)
	}
}
