package bench

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/tessera-cdp/tessera/schemas"
)

// Workload describes the synthetic customers and what they do. The zero
// value is not useful; start from DefaultWorkload.
type Workload struct {
	// Customers is how many distinct customers the events come from.
	Customers int
	// ZipfS and ZipfV shape how activity spreads over customers: the
	// customer of rank k (from 0) sends a share proportional to
	// (ZipfV+k)^-ZipfS. ZipfS must be above 1 and ZipfV at least 1. The
	// defaults (1.1, 100) give the busiest customer 0.2 % of the events and
	// the busiest 1,000 of 100,000 customers 43 %.
	ZipfS, ZipfV float64
	// MergeRate is the share of customers who browse anonymously first and
	// identify later, so that their anonymous profile merges into their
	// user profile (an identity merge). The others send their userId from
	// the start.
	MergeRate float64
	// Track, Identify and Page are the shares of each call type; they are
	// normalised to sum to 1.
	Track, Identify, Page float64
	// EventBytes is the size each event's JSON is padded to (before
	// ingest adds receivedAt).
	EventBytes int
	// LateShare is the share of events whose timestamp is 1 to 72 hours
	// before the stream's clock: out of order, within the allowed lateness.
	LateShare float64
	// MarkShare is the share of events marked (properties.bench_mark) to
	// fire the benchmark's event trigger, each producing one activation.
	MarkShare float64
	// Seed makes the workload reproducible.
	Seed uint64
}

// DefaultWorkload returns the workload `tessera bench` runs unless told
// otherwise.
func DefaultWorkload() Workload {
	return Workload{
		Customers: 100_000, ZipfS: 1.1, ZipfV: 100, MergeRate: 0.2,
		Track: 0.7, Identify: 0.1, Page: 0.2,
		EventBytes: 1024, LateShare: 0.05, MarkShare: 0.01, Seed: 1,
	}
}

// Validate checks the workload, naming the field at fault.
func (w Workload) Validate() error {
	switch {
	case w.Customers < 1:
		return fmt.Errorf("customers must be at least 1, got %d", w.Customers)
	case w.ZipfS <= 1:
		return fmt.Errorf("zipf exponent must be above 1, got %g", w.ZipfS)
	case w.ZipfV < 1:
		return fmt.Errorf("zipf offset must be at least 1, got %g", w.ZipfV)
	case w.Track < 0 || w.Identify < 0 || w.Page < 0 || w.Track+w.Identify+w.Page == 0:
		return fmt.Errorf("event mix must be non-negative shares with a positive sum, got track %g identify %g page %g", w.Track, w.Identify, w.Page)
	case w.EventBytes < 0 || w.EventBytes > schemas.MaxEventBytes-1024:
		return fmt.Errorf("event size must be between 0 and %d bytes, got %d", schemas.MaxEventBytes-1024, w.EventBytes)
	}
	for name, v := range map[string]float64{"merge rate": w.MergeRate, "late share": w.LateShare, "mark share": w.MarkShare} {
		if v < 0 || v > 1 {
			return fmt.Errorf("%s must be between 0 and 1, got %g", name, v)
		}
	}
	return nil
}

// Event is one generated event.
type Event struct {
	// JSON is the event as an SDK would send it (Segment spec).
	JSON []byte
	// Seq numbers the events of a generator from 0; the messageId ends
	// with it.
	Seq int64
	// Marked says the event fires the benchmark trigger.
	Marked bool
}

// Generator produces a workload's events, in order. It is not safe for
// concurrent use.
type Generator struct {
	w        Workload
	run      string
	rng      *rand.Rand
	zipf     *rand.Zipf
	merging  []bool // customers who start anonymous
	known    []bool // merging customers who have identified
	seen     []bool
	nSeen    int
	seq      int64
	buf      []byte
	identify float64 // thresholds of the mix
	page     float64
}

// NewGenerator returns a generator of w whose messageIds start with run
// (unique per benchmark run, so repeated runs never dedupe each other).
func NewGenerator(w Workload, run string) (*Generator, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(w.Seed, 0x7e55e4a))
	g := &Generator{
		w: w, run: run, rng: rng,
		zipf:    rand.NewZipf(rng, w.ZipfS, w.ZipfV, uint64(w.Customers-1)),
		merging: make([]bool, w.Customers),
		known:   make([]bool, w.Customers),
		seen:    make([]bool, w.Customers),
	}
	for c := range g.merging {
		g.merging[c] = rng.Float64() < w.MergeRate
	}
	sum := w.Track + w.Identify + w.Page
	g.identify = w.Identify / sum
	g.page = g.identify + w.Page/sum
	return g, nil
}

// Customers returns how many distinct customers the events so far came
// from: the number of live profiles they make once every merge is done.
func (g *Generator) Customers() int { return g.nSeen }

// customer maps a Zipf rank to a customer number, scattering the busy
// ones over the id space (and so over partitions).
func (g *Generator) customer() int {
	rank := g.zipf.Uint64()
	return int((rank*2654435761 + 12345) % uint64(g.w.Customers))
}

var (
	trackEvents = []string{"Product Viewed", "Product Viewed", "Product Viewed", "Added to Cart", "Checkout Started", "Order Completed"}
	categories  = []string{"shoes", "shirts", "outdoor", "kitchen", "books", "toys", "garden", "audio", "beauty", "sports", "office", "pets"}
	pages       = []string{"/", "/search", "/cart", "/account", "/category/shoes", "/category/outdoor", "/product", "/help"}
)

const (
	userAgent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
	padding   = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. "
)

// Next returns the next event, stamped now (or, for a late event, 1 to 72
// hours before now). The returned JSON is valid until the next call.
func (g *Generator) Next(now time.Time) Event {
	c := g.customer()
	if !g.seen[c] {
		g.seen[c] = true
		g.nSeen++
	}
	seq := g.seq
	g.seq++
	ev := Event{Seq: seq, Marked: g.rng.Float64() < g.w.MarkShare}

	typ := "track"
	switch x := g.rng.Float64(); {
	case x < g.identify:
		typ = "identify"
	case x < g.page:
		typ = "page"
	}
	anonymous := g.merging[c] && !g.known[c]
	if anonymous && typ == "identify" {
		g.known[c] = true // this identify links the anonymous profile: a merge
		anonymous = false
	}
	ts := now
	if g.rng.Float64() < g.w.LateShare {
		ts = now.Add(-time.Hour - time.Duration(g.rng.Int64N(int64(71*time.Hour))))
	}
	cs := strconv.Itoa(c)

	b := append(g.buf[:0], `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","messageId":"`...)
	b = append(b, g.run...)
	b = append(b, '-')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","anonymousId":"anon-`...)
	b = append(b, cs...)
	b = append(b, '"')
	if !anonymous {
		b = append(b, `,"userId":"user-`...)
		b = append(b, cs...)
		b = append(b, '"')
	}
	b = append(b, `,"timestamp":"`...)
	b = ts.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	switch typ {
	case "identify":
		ev.Marked = false // a trigger reads properties, which identify has none of
		b = append(b, `,"traits":{"email":"customer-`...)
		b = append(b, cs...)
		b = append(b, `@example.com","name":"Customer `...)
		b = append(b, cs...)
		b = append(b, `","plan":"`...)
		if c%5 == 0 {
			b = append(b, "pro"...)
		} else {
			b = append(b, "free"...)
		}
		b = append(b, `","logins":`...)
		b = strconv.AppendInt(b, int64(g.rng.IntN(200)), 10)
		b = append(b, '}')
	case "page":
		p := pages[g.rng.IntN(len(pages))]
		b = append(b, `,"name":"`...)
		b = append(b, p...)
		b = append(b, `","properties":{"path":"`...)
		b = append(b, p...)
		b = append(b, `","url":"https://shop.example.com`...)
		b = append(b, p...)
		b = append(b, `","title":"Example Shop","referrer":"https://www.example.org/"`...)
		b = g.mark(b, ev.Marked)
		b = append(b, '}')
	default:
		name := trackEvents[g.rng.IntN(len(trackEvents))]
		b = append(b, `,"event":"`...)
		b = append(b, name...)
		b = append(b, `","properties":{"product_id":"p-`...)
		b = strconv.AppendInt(b, int64(g.rng.IntN(500)), 10)
		b = append(b, `","category":"`...)
		b = append(b, categories[g.rng.IntN(len(categories))]...)
		b = append(b, `","price":`...)
		price := 5 + g.rng.IntN(295)
		b = strconv.AppendInt(b, int64(price), 10)
		b = append(b, `,"quantity":`...)
		q := 1 + g.rng.IntN(3)
		b = strconv.AppendInt(b, int64(q), 10)
		if name == "Order Completed" {
			b = append(b, `,"revenue":`...)
			b = strconv.AppendInt(b, int64(price*q), 10)
			b = append(b, `,"currency":"EUR"`...)
		}
		b = g.mark(b, ev.Marked)
		b = append(b, '}')
	}
	b = append(b, `,"context":{"ip":"203.0.113.`...)
	b = strconv.AppendInt(b, int64(c%250), 10)
	b = append(b, `","locale":"en-GB","userAgent":"`...)
	b = append(b, userAgent...)
	b = append(b, `","library":{"name":"analytics.js","version":"5.2.0"},"page":{"url":"https://shop.example.com/","referrer":"https://www.example.org/"}`...)
	// Pad to EventBytes with a note in the context, where no feature or
	// rule looks, so every event costs the same to carry.
	const noteOverhead = len(`,"note":""}}`)
	if n := g.w.EventBytes - len(b) - noteOverhead; n > 0 {
		b = append(b, `,"note":"`...)
		for n > 0 {
			k := min(n, len(padding))
			b = append(b, padding[:k]...)
			n -= k
		}
		b = append(b, '"')
	}
	b = append(b, "}}"...)
	g.buf = b
	ev.JSON = b
	return ev
}

func (g *Generator) mark(b []byte, marked bool) []byte {
	if marked {
		b = append(b, `,"bench_mark":true`...)
	}
	return b
}

// SeqOf returns the sequence number at the end of a messageId the
// generator of run wrote, and whether it is one.
func SeqOf(run, messageID string) (int64, bool) {
	if len(messageID) <= len(run)+1 || messageID[:len(run)] != run || messageID[len(run)] != '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(messageID[len(run)+1:], 10, 64)
	return n, err == nil
}
