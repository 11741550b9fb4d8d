// Package profile is the unified customer profile: identifiers, traits
// (latest event timestamp wins, null deletes; a group call's traits are the
// account's and are kept under "group." beside "group_id"), first and last seen, event
// counts by name, the most recent events, and the profiles merged into it.
// It knows nothing of Kafka or of the identity protocol that decides which
// events and merges reach a profile; it only applies them.
package profile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/valyala/fastjson"
)

// Ident is an identifier: a type (user_id, email, …) and a value.
type Ident struct {
	Type  string
	Value string
}

// String returns the "type:value" form used as a key.
func (i Ident) String() string { return i.Type + ":" + i.Value }

// ParseIdent parses "type:value".
func ParseIdent(s string) (Ident, error) {
	// The parts share s's bytes: the profile stage parses every
	// identifier of every op.
	t, v, ok := strings.Cut(s, ":")
	if !ok || t == "" || v == "" {
		return Ident{}, fmt.Errorf("identifier %q is not type:value", s)
	}
	return Ident{Type: t, Value: v}, nil
}

// Trait is a trait value (JSON) and the timestamp of the event that set it.
type Trait struct {
	Value []byte // JSON
	At    int64  // Unix ms of the event
}

// Consent is one consent category's state: granted or not, and when it
// was said (Unix ms of the event).
type Consent struct {
	Granted bool
	At      int64
}

// Profile is one customer. The zero value is an empty profile.
type Profile struct {
	ID string
	// Created orders profiles for merges: (Created, ID) ascending; the
	// later profile folds into the earlier.
	Created     int64
	Identifiers []Ident
	Traits      map[string]Trait
	FirstSeen   int64
	LastSeen    int64
	Events      int64
	Counts      map[string]int64
	// Recent holds the most recent events as JSON, oldest first.
	Recent     [][]byte
	MergedFrom []string
	// Purchases is the spend per purchase day (days since the Unix epoch,
	// UTC): several purchases on one day are one transaction, as the
	// BG/NBD and Gamma-Gamma models count them.
	Purchases map[int32]float64
	// Consent is what the person said of each consent category
	// (Segment's context.consent.categoryPreferences), the latest
	// statement of each winning.
	Consent map[string]Consent
}

// Options say how events fold into a profile.
type Options struct {
	// Keep is how many recent events the profile keeps.
	Keep int
	// PurchaseEvent is the track event that is a purchase; "" records none.
	PurchaseEvent string
	// SpendProperty is the purchase's monetary property.
	SpendProperty string
}

// Before reports whether p orders before q: merges fold the later into the
// earlier, so a chain of merges ends and never cycles.
func Before(aCreated int64, aID string, bCreated int64, bID string) bool {
	if aCreated != bCreated {
		return aCreated < bCreated
	}
	return aID < bID
}

// Has reports whether p holds id.
func (p *Profile) Has(id Ident) bool {
	return slices.Contains(p.Identifiers, id)
}

// CountOf returns how many identifiers of type t p holds.
func (p *Profile) CountOf(t string) int {
	n := 0
	for _, id := range p.Identifiers {
		if id.Type == t {
			n++
		}
	}
	return n
}

// Remove drops id from p's identifiers.
func (p *Profile) Remove(id Ident) {
	p.Identifiers = slices.DeleteFunc(p.Identifiers, func(x Ident) bool { return x == id })
}

// ApplyEvent folds one event (Segment JSON, already parsed) into p: counts,
// seen times, traits for identify and group (and context.traits), and the
// recent-events ring capped at keep.
func (p *Profile) ApplyEvent(v *fastjson.Value, raw []byte, at int64, o Options) {
	keep := o.Keep
	p.Events++
	if p.FirstSeen == 0 || at < p.FirstSeen {
		p.FirstSeen = at
	}
	if at > p.LastSeen {
		p.LastSeen = at
	}
	typ := string(v.GetStringBytes("type"))
	name := typ
	if typ == "track" {
		name = string(v.GetStringBytes("event"))
	}
	if p.Counts == nil {
		p.Counts = make(map[string]int64)
	}
	p.Counts[name]++
	if typ == "track" && o.PurchaseEvent != "" && name == o.PurchaseEvent && at > 0 {
		if p.Purchases == nil {
			p.Purchases = make(map[int32]float64)
		}
		spend := v.GetFloat64("properties", o.SpendProperty)
		p.Purchases[int32(at/86_400_000)] += spend
	}
	switch typ {
	case "identify":
		p.mergeTraits(v.GetObject("traits"), at, "")
	case "group":
		// A group's traits describe the account, not the person: they
		// are kept apart, under "group.", beside the group's id.
		if g := v.Get("groupId"); g != nil {
			p.setTrait("group_id", g.MarshalTo(nil), at)
		}
		p.mergeTraits(v.GetObject("traits"), at, "group.")
	}
	p.mergeTraits(v.GetObject("context", "traits"), at, "")
	if prefs := v.GetObject("context", "consent", "categoryPreferences"); prefs != nil {
		prefs.Visit(func(k []byte, c *fastjson.Value) {
			switch c.Type() {
			case fastjson.TypeTrue, fastjson.TypeFalse:
				p.setConsent(string(k), Consent{Granted: c.Type() == fastjson.TypeTrue, At: at})
			}
		})
	}
	if keep > 0 {
		p.Recent = append(p.Recent, bytes.Clone(raw))
		// Keep the newest by event time; events mostly arrive in order,
		// so a stable sort of a nearly sorted slice is cheap.
		if len(p.Recent) > 1 && eventTime(p.Recent[len(p.Recent)-2]) > at {
			sort.SliceStable(p.Recent, func(i, j int) bool { return eventTime(p.Recent[i]) < eventTime(p.Recent[j]) })
		}
		if len(p.Recent) > keep {
			p.Recent = append(p.Recent[:0], p.Recent[len(p.Recent)-keep:]...)
		}
	}
}

// setConsent records c for category k unless a later event already
// said otherwise.
func (p *Profile) setConsent(k string, c Consent) {
	if p.Consent == nil {
		p.Consent = make(map[string]Consent)
	}
	if cur, ok := p.Consent[k]; !ok || c.At >= cur.At {
		p.Consent[k] = c
	}
}

// Consented reports whether the person granted every one of categories:
// a category never stated is not granted (consent is opt-in).
func (p *Profile) Consented(categories []string) bool {
	for _, c := range categories {
		if !p.Consent[c].Granted {
			return false
		}
	}
	return true
}

func (p *Profile) mergeTraits(o *fastjson.Object, at int64, prefix string) {
	if o == nil {
		return
	}
	o.Visit(func(k []byte, v *fastjson.Value) {
		if v.Type() == fastjson.TypeNull {
			// null deletes, but remembers when, so an older event
			// arriving late does not bring the trait back.
			p.setTrait(prefix+string(k), nil, at)
			return
		}
		p.setTrait(prefix+string(k), v.MarshalTo(nil), at)
	})
}

// setTrait sets trait k to the JSON value (nil deletes) unless a later
// event already set it: the latest event timestamp wins.
func (p *Profile) setTrait(k string, value []byte, at int64) {
	if p.Traits == nil {
		p.Traits = make(map[string]Trait)
	}
	if cur, ok := p.Traits[k]; ok && cur.At > at {
		return
	}
	p.Traits[k] = Trait{Value: value, At: at}
}

// eventTime reads timestamp from an event JSON, in Unix ms (0 if missing).
func eventTime(raw []byte) int64 {
	return parseMillis(fastjson.GetString(raw, "timestamp"))
}

// Absorb folds q (a later profile) into p: identifiers united, traits by
// latest timestamp, counts summed, recent events interleaved by time.
func (p *Profile) Absorb(q *Profile, keep int) {
	for _, id := range q.Identifiers {
		if !p.Has(id) {
			p.Identifiers = append(p.Identifiers, id)
		}
	}
	if p.Traits == nil {
		p.Traits = make(map[string]Trait)
	}
	for k, t := range q.Traits {
		if cur, ok := p.Traits[k]; !ok || t.At > cur.At {
			p.Traits[k] = t
		}
	}
	p.Events += q.Events
	if p.Counts == nil {
		p.Counts = make(map[string]int64)
	}
	for k, n := range q.Counts {
		p.Counts[k] += n
	}
	if q.FirstSeen != 0 && (p.FirstSeen == 0 || q.FirstSeen < p.FirstSeen) {
		p.FirstSeen = q.FirstSeen
	}
	if q.LastSeen > p.LastSeen {
		p.LastSeen = q.LastSeen
	}
	p.Recent = append(p.Recent, q.Recent...)
	sort.SliceStable(p.Recent, func(i, j int) bool { return eventTime(p.Recent[i]) < eventTime(p.Recent[j]) })
	if keep >= 0 && len(p.Recent) > keep {
		p.Recent = append(p.Recent[:0], p.Recent[len(p.Recent)-keep:]...)
	}
	p.MergedFrom = append(p.MergedFrom, q.ID)
	p.MergedFrom = append(p.MergedFrom, q.MergedFrom...)
	for d, s := range q.Purchases {
		if p.Purchases == nil {
			p.Purchases = make(map[int32]float64)
		}
		p.Purchases[d] += s
	}
	for k, c := range q.Consent {
		p.setConsent(k, c)
	}
}

// Version of the binary encoding; bump when the layout changes and keep a
// decoder for the old one.
const encodingVersion = 3

// MarshalBinary encodes p compactly. Profiles are read and written on every
// event, so the format is hand-laid rather than reflected.
func (p *Profile) MarshalBinary() ([]byte, error) {
	return p.AppendBinary(nil), nil
}

// AppendBinary appends p's encoding to b.
func (p *Profile) AppendBinary(b []byte) []byte {
	b = append(b, encodingVersion)
	b = appendString(b, p.ID)
	b = binary.AppendVarint(b, p.Created)
	b = binary.AppendUvarint(b, uint64(len(p.Identifiers)))
	for _, id := range p.Identifiers {
		b = appendString(b, id.Type)
		b = appendString(b, id.Value)
	}
	// Sort the names in a stack array, not a new slice per encoding;
	// a map of more than 32 names spills to the heap.
	var small [32]string
	keys := small[:0]
	for k := range p.Traits {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		t := p.Traits[k]
		b = appendString(b, k)
		b = appendBytes(b, t.Value)
		b = binary.AppendVarint(b, t.At)
	}
	b = binary.AppendVarint(b, p.FirstSeen)
	b = binary.AppendVarint(b, p.LastSeen)
	b = binary.AppendVarint(b, p.Events)
	keys = keys[:0]
	for k := range p.Counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = binary.AppendVarint(b, p.Counts[k])
	}
	b = binary.AppendUvarint(b, uint64(len(p.Recent)))
	for _, e := range p.Recent {
		b = appendBytes(b, e)
	}
	b = binary.AppendUvarint(b, uint64(len(p.MergedFrom)))
	for _, m := range p.MergedFrom {
		b = appendString(b, m)
	}
	var smallDays [32]int32
	days := smallDays[:0]
	for d := range p.Purchases {
		days = append(days, d)
	}
	slices.Sort(days)
	b = binary.AppendUvarint(b, uint64(len(days)))
	for _, d := range days {
		b = binary.AppendVarint(b, int64(d))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(p.Purchases[d]))
	}
	keys = keys[:0]
	for k := range p.Consent {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		c := p.Consent[k]
		b = appendString(b, k)
		if c.Granted {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendVarint(b, c.At)
	}
	return b
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (p *Profile) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	version := d.byte()
	if version < 1 || version > encodingVersion {
		return fmt.Errorf("decoding profile: unknown encoding version %d", version)
	}
	*p = Profile{ID: d.string(), Created: d.varint()}
	n := d.count()
	p.Identifiers = make([]Ident, 0, n)
	for i := 0; i < n; i++ {
		p.Identifiers = append(p.Identifiers, Ident{Type: d.string(), Value: d.string()})
	}
	n = d.count()
	p.Traits = make(map[string]Trait, n)
	for i := 0; i < n; i++ {
		k := d.string()
		p.Traits[k] = Trait{Value: d.bytes(), At: d.varint()}
	}
	p.FirstSeen, p.LastSeen, p.Events = d.varint(), d.varint(), d.varint()
	n = d.count()
	p.Counts = make(map[string]int64, n)
	for i := 0; i < n; i++ {
		k := d.string()
		p.Counts[k] = d.varint()
	}
	n = d.count()
	p.Recent = make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		p.Recent = append(p.Recent, d.bytes())
	}
	n = d.count()
	for i := 0; i < n; i++ {
		p.MergedFrom = append(p.MergedFrom, d.string())
	}
	if version >= 2 {
		n = d.count()
		if n > 0 {
			p.Purchases = make(map[int32]float64, n)
		}
		for i := 0; i < n; i++ {
			day := int32(d.varint())
			p.Purchases[day] = d.float64()
		}
	}
	if version >= 3 {
		if n = d.count(); n > 0 {
			p.Consent = make(map[string]Consent, n)
		}
		for i := 0; i < n; i++ {
			k := d.string()
			p.Consent[k] = Consent{Granted: d.byte() == 1, At: d.varint()}
		}
	}
	if d.err != nil {
		return fmt.Errorf("decoding profile: %w", d.err)
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, v []byte) []byte {
	if v == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

var errShort = errors.New("truncated")

// decoder reads the encoding, remembering the first error so callers check
// once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		if d.err == nil {
			d.err = errShort
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		if d.err == nil {
			d.err = errShort
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length and bounds it by what is left, so a corrupt length
// cannot make a huge allocation.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		if d.err == nil {
			d.err = fmt.Errorf("count %d exceeds the %d bytes left", n, len(d.b))
		}
		return 0
	}
	return int(n)
}

func (d *decoder) float64() float64 {
	if len(d.b) < 8 {
		if d.err == nil {
			d.err = errShort
		}
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) string() string {
	n := d.count()
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.b)) {
		if d.err == nil {
			d.err = errShort
		}
		return nil
	}
	v := bytes.Clone(d.b[:n])
	d.b = d.b[n:]
	return v
}
