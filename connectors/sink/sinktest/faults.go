package sinktest

import (
	"sync"
	"time"
)

// Faults is a receiver's bookkeeping: what it received and the fault it
// was asked to answer with. Embed a *Faults in a Receiver for its
// Received, Inject and Heal, and call Record for each delivery.
type Faults struct {
	mu    sync.Mutex
	got   []Received
	fault Fault
	left  int           // deliveries the fault still fails
	stall chan struct{} // closed by Heal
}

// NewFaults returns Faults with nothing injected.
func NewFaults() *Faults { return &Faults{stall: make(chan struct{})} }

// Received returns a copy of the deliveries recorded so far.
func (f *Faults) Received() []Received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Received(nil), f.got...)
}

// Inject makes the next deliveries fail as x says.
func (f *Faults) Inject(x Fault) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault, f.left = x, x.Times
	return true
}

// Heal ends the injected fault and releases stalled deliveries.
func (f *Faults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault, f.left = Fault{}, 0
	select {
	case <-f.stall:
	default:
		close(f.stall)
	}
}

// Record records one delivery and decides how to answer it: the fault
// kind (0 to accept it; a Stall lasts until Heal, the others for their
// Times), the Retry-After a Throttle asks for, and the channel a Stall
// waits on before answering.
func (f *Faults) Record(rec Received) (FaultKind, time.Duration, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kind := f.fault.Kind
	switch {
	case kind == Stall:
	case kind != 0 && f.left > 0:
		f.left--
	default:
		kind = 0
	}
	rec.Refused = kind
	f.got = append(f.got, rec)
	return kind, f.fault.RetryAfter, f.stall
}
