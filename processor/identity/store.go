package identity

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/tessera-cdp/tessera/processor/profile"
)

// ProfileID derives the id of the profile that identifier creates:
// deterministic, so a replay of the same events makes the same profiles.
func ProfileID(identifier string) string {
	h := sha256.Sum256([]byte(identifier))
	return "p" + hex.EncodeToString(h[:12])
}

// owner is a value of the identities store.
type owner struct {
	Profile string
	Created int64
}

func (o owner) encode() []byte {
	b := binary.AppendUvarint(nil, uint64(len(o.Profile)))
	b = append(b, o.Profile...)
	return binary.AppendVarint(b, o.Created)
}

func decodeOwner(b []byte) (owner, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return owner{}, fmt.Errorf("decoding owner: truncated")
	}
	o := owner{Profile: string(b[k : k+int(n)])}
	c, m := binary.Varint(b[k+int(n):])
	if m <= 0 {
		return owner{}, fmt.Errorf("decoding owner: truncated")
	}
	o.Created = c
	return o, nil
}

// record is a value of the profiles store: the profile and the protocol
// state around it.
type record struct {
	// P.ID is empty for a stub: messages arrived before the event that
	// creates the profile, and wait in the queue (queue.go).
	P profile.Profile
	// MergedInto redirects everything to the profile this one folded into,
	// created at MergedCreated.
	MergedInto    string
	MergedCreated int64
	// Offering is the winner this profile offered itself to.
	Offering string
	// Absorbing is the loser whose state this profile waits for.
	Absorbing string
	// Queue holds, in a record written before version 6, encoded ops
	// received while busy, in arrival order. Ops wait in the queue store
	// since (queue.go); the profile's next step moves these there.
	Queue [][]byte
	// QueueHead is the sequence number of the oldest op waiting in the
	// queue store, Queued how many wait there (queue.go).
	QueueHead uint64
	Queued    int
	// Computed holds the keys (features.Info.Key) of the features whose
	// tiles already include this profile's history: a feature defined
	// later is computed from the profile's recent events once, then kept
	// up to date by each event.
	Computed map[string]bool
	// Audiences holds the audiences the profile is in, by name.
	Audiences map[string]bool
	// Evaluated holds the keys (audience.Audience.Key) of the audiences
	// this profile has been evaluated against: the first evaluation of an
	// existing profile activates only if the audience says so.
	Evaluated map[string]bool
	// Erased, when not zero, makes the record an erasure marker: the
	// profile was erased by a request made at this time (Unix ms). The
	// marker holds nothing of the person; it answers what was already on
	// its way to the profile (see step.afterErasure) until the sweep
	// deletes it, Options.ErasureGrace later.
	// INVARIANT: a marker has no profile (P.ID == ""), no redirect and no
	// queue once its step ends.
	Erased int64
	// Timeline counts the profile's entries in the timeline store: at
	// least, unless TimelineExact (see timeline.go). P.Recent is empty
	// from version 5 on: a record of an earlier version keeps its events
	// there until its next step moves them (step.migrateRecent).
	Timeline int
	// TimelineExact says that Timeline is the exact count and
	// TimelineNewest the time (Unix ms) no entry is newer than,
	// math.MinInt64 for an empty timeline, so that a trim reads only the
	// entries it deletes (timeline.go). False in a record written before
	// version 8, and in a new profile's until its first trim counts.
	TimelineExact  bool
	TimelineNewest int64
	// TileFloor is the profile's tile floor (features doc.go, Expiry): no
	// event in its windowed feature tiles is older (Unix ms), so an
	// expiring sweep passes over the features whose cut-off is not past
	// it. features.NoTiles for a profile without tiles; 0, as a record
	// written before version 7 has, bounds nothing and is always safe.
	TileFloor int64
}

func (r *record) busy() bool { return r.Offering != "" || r.Absorbing != "" }

const recordVersion = 8

// encode returns the record's encoding in a new slice.
func (r *record) encode() []byte { return r.appendTo(nil) }

// appendTo appends the record's encoding to b. The profile stage encodes
// every record it touches, once per op, into a buffer it reuses: Put
// copies the value, so the buffer is free again when Put returns.
func (r *record) appendTo(b []byte) []byte {
	b = append(b, recordVersion)
	for _, s := range []string{r.MergedInto, r.Offering, r.Absorbing} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, r.MergedCreated)
	b = binary.AppendVarint(b, r.Erased)
	b = binary.AppendUvarint(b, uint64(r.Timeline))
	b = binary.AppendUvarint(b, r.QueueHead)
	b = binary.AppendUvarint(b, uint64(r.Queued))
	b = binary.AppendVarint(b, r.TileFloor)
	if r.TimelineExact {
		b = append(b, 1)
		b = binary.AppendVarint(b, r.TimelineNewest)
	} else {
		b = append(b, 0)
	}
	for _, set := range []map[string]bool{r.Computed, r.Audiences, r.Evaluated} {
		b = appendSet(b, set)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Queue)))
	for _, q := range r.Queue {
		b = binary.AppendUvarint(b, uint64(len(q)))
		b = append(b, q...)
	}
	if r.P.ID != "" {
		b = r.P.AppendBinary(b)
	}
	return b
}

// interner gives one string for equal byte strings, so that decoding a
// record allocates no string for the audience and feature names of its
// sets, which every profile repeats. It belongs to one goroutine; a nil
// interner allocates each string.
type interner map[string]string

// maxInterned bounds an interner: names come from definitions, which are
// few, but redefinitions add new ones for as long as the process runs.
const maxInterned = 4096

func (in interner) str(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in) < maxInterned {
		in[s] = s
	}
	return s
}

// decodeRecord decodes a profiles store value; in, if not nil, interns
// the names of its sets.
func decodeRecord(b []byte, in interner) (*record, error) {
	if len(b) == 0 || b[0] < 1 || b[0] > recordVersion {
		return nil, fmt.Errorf("decoding profile record: unknown version")
	}
	version := b[0]
	b = b[1:]
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, fmt.Errorf("decoding profile record: truncated")
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	r := &record{}
	for _, dst := range []*string{&r.MergedInto, &r.Offering, &r.Absorbing} {
		v, err := next()
		if err != nil {
			return nil, err
		}
		*dst = string(v)
	}
	mc, k := binary.Varint(b)
	if k <= 0 {
		return nil, fmt.Errorf("decoding profile record: truncated")
	}
	r.MergedCreated = mc
	b = b[k:]
	if version >= 4 {
		er, k := binary.Varint(b)
		if k <= 0 {
			return nil, fmt.Errorf("decoding profile record: truncated erasure time")
		}
		r.Erased = er
		b = b[k:]
	}
	if version >= 5 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > 1<<31 {
			return nil, fmt.Errorf("decoding profile record: bad timeline count")
		}
		r.Timeline = int(n)
		b = b[k:]
	}
	if version >= 6 {
		head, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, fmt.Errorf("decoding profile record: bad queue head")
		}
		b = b[k:]
		n, k := binary.Uvarint(b)
		if k <= 0 || n > 1<<31 {
			return nil, fmt.Errorf("decoding profile record: bad queue count")
		}
		b = b[k:]
		r.QueueHead, r.Queued = head, int(n)
	}
	if version >= 7 {
		floor, k := binary.Varint(b)
		if k <= 0 {
			return nil, fmt.Errorf("decoding profile record: bad tile floor")
		}
		b = b[k:]
		r.TileFloor = floor
	}
	if version >= 8 {
		if len(b) == 0 || b[0] > 1 {
			return nil, fmt.Errorf("decoding profile record: bad timeline flag")
		}
		r.TimelineExact = b[0] == 1
		b = b[1:]
		if r.TimelineExact {
			newest, k := binary.Varint(b)
			if k <= 0 {
				return nil, fmt.Errorf("decoding profile record: bad newest timeline entry")
			}
			b = b[k:]
			r.TimelineNewest = newest
		}
	}
	sets := 0
	switch version {
	case 2:
		sets = 1
	case 3, 4, 5, 6, 7, 8:
		sets = 3
	}
	for i, dst := range []*map[string]bool{&r.Computed, &r.Audiences, &r.Evaluated}[:sets] {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)) {
			return nil, fmt.Errorf("decoding profile record: bad count of set %d", i)
		}
		b = b[k:]
		if n > 0 {
			*dst = make(map[string]bool, n)
		}
		for j := uint64(0); j < n; j++ {
			v, err := next()
			if err != nil {
				return nil, err
			}
			(*dst)[in.str(v)] = true
		}
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("decoding profile record: bad queue length")
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		v, err := next()
		if err != nil {
			return nil, err
		}
		r.Queue = append(r.Queue, append([]byte(nil), v...))
	}
	if len(b) > 0 {
		if err := r.P.UnmarshalBinary(b); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// appendSet appends a set of strings, sorted so equal sets encode equally.
func appendSet(b []byte, set map[string]bool) []byte {
	var small [16]string // sets are a few names: no allocation for them
	keys := small[:0]
	for k, in := range set {
		if in {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	return b
}
