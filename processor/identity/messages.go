package identity

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/tessera-cdp/tessera/schemas"
	"github.com/tessera-cdp/tessera/topology"
)

// linkKind and opKind are the symbols of the Avro enums.
type linkKind string
type opKind string

const (
	linkResolve linkKind = "RESOLVE"
	linkClaim   linkKind = "LINK"
	linkRepoint linkKind = "REPOINT"
	linkErase   linkKind = "ERASE"
	linkUnlink  linkKind = "UNLINK"

	opEvent        opKind = "EVENT"
	opMergeRequest opKind = "MERGE_REQUEST"
	opOffer        opKind = "OFFER"
	opAccept       opKind = "ACCEPT"
	opRefuse       opKind = "REFUSE"
	opAbsorb       opKind = "ABSORB"
	opDrop         opKind = "DROP"
	opErase        opKind = "ERASE"
)

// link is a message on <app>.identity-links (schemas/avro/identity_link.avsc).
type link struct {
	Kind        linkKind
	Identifier  string
	Profile     string
	Created     int64
	From        string
	Event       []byte
	Identifiers []string
}

// op is a message on <app>.profile-ops (schemas/avro/profile_op.avsc).
type op struct {
	Kind        opKind
	Profile     string
	Created     int64
	Peer        string
	PeerCreated int64
	Cause       string
	Origin      string
	Owner       string
	Identifiers []string
	Event       []byte
	State       []byte
	Features    []byte
	Reason      string
}

// codecs encodes and decodes link and op in Avro binary (the
// specification's binary encoding), written out field by field: every
// event crosses both topics, and going through goavro's map[string]any
// costs a map, a box per field and a reflective walk per message. The
// bytes are those goavro writes for the .avsc files (messages_test.go
// holds the two to each other), so the schemas stay the contract.
//
// The field order below is the schemas'; newCodecs refuses to start when
// an .avsc no longer lists the fields this file writes. The enum symbols
// are read from the .avsc files, so that a symbol's index, which is what
// goes on the wire, has one source.
//
// A codecs is read-only once made: the stages of every task share one.
type codecs struct {
	linkKinds []string // IdentityLinkKind's symbols, by index
	opKinds   []string // ProfileOpKind's symbols, by index
}

// Avro type names as layout lists them; an enum's symbols come from the
// schema.
const (
	avroEnum    = "enum"
	avroString  = "string"
	avroLong    = "long"
	avroBytes   = "bytes"
	avroStrings = "array<string>"
)

// field is one field of a record as the hand-written code below encodes it.
type field struct{ name, typ string }

// linkLayout and opLayout are the fields encodeLink and encodeOp write, in
// order: what the .avsc files must say.
var (
	linkLayout = []field{
		{"kind", avroEnum}, {"identifier", avroString}, {"profile", avroString}, {"created", avroLong},
		{"from", avroString}, {"event", avroBytes}, {"identifiers", avroStrings},
	}
	opLayout = []field{
		{"kind", avroEnum}, {"profile", avroString}, {"created", avroLong}, {"peer", avroString},
		{"peer_created", avroLong}, {"cause", avroString}, {"origin", avroString}, {"owner", avroString},
		{"identifiers", avroStrings}, {"event", avroBytes}, {"state", avroBytes}, {"features", avroBytes},
		{"reason", avroString},
	}
)

var (
	loadOnce    sync.Once
	loaded      *codecs
	loadedError error
)

// newCodecs returns the codecs. The schemas are read and checked on the
// first call only, so that callers need not keep the result: an erasure
// request makes one.
func newCodecs() (*codecs, error) {
	loadOnce.Do(func() {
		var c codecs
		var errs []error
		var err error
		if c.linkKinds, err = enumOf("identity_link", linkLayout); err != nil {
			errs = append(errs, err)
		}
		if c.opKinds, err = enumOf("profile_op", opLayout); err != nil {
			errs = append(errs, err)
		}
		if loadedError = errors.Join(errs...); loadedError == nil {
			loaded = &c
		}
	})
	return loaded, loadedError
}

// avroType is the part of an Avro type that enumOf reads: a name, or
// an object for an enum or an array.
type avroType struct {
	Type    string   `json:"type"`
	Symbols []string `json:"symbols"`
	Items   string   `json:"items"`
}

// enumOf reads the embedded schema name, checks that its fields are those
// of layout, and returns the symbols of its one enum field (the first).
func enumOf(name string, layout []field) ([]string, error) {
	text, ok := schemas.Schemas()[name]
	if !ok {
		return nil, fmt.Errorf("reading schema %s: no such .avsc", name)
	}
	var rec struct {
		Fields []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(text), &rec); err != nil {
		return nil, fmt.Errorf("reading schema %s: %w", name, err)
	}
	var got []field
	var symbols []string
	for _, f := range rec.Fields {
		var t avroType
		if err := json.Unmarshal(f.Type, &t.Type); err != nil { // not a plain name
			if err := json.Unmarshal(f.Type, &t); err != nil {
				return nil, fmt.Errorf("reading schema %s: field %q: %w", name, f.Name, err)
			}
		}
		typ := t.Type
		switch {
		case t.Type == "array":
			typ = "array<" + t.Items + ">"
		case t.Type == avroEnum && symbols == nil:
			symbols = t.Symbols
		}
		got = append(got, field{f.Name, typ})
	}
	if !slices.Equal(got, layout) || len(symbols) == 0 {
		return nil, fmt.Errorf("reading schema %s: fields %v, but messages.go writes %v: change both together", name, got, layout)
	}
	return symbols, nil
}

// errUnknownSymbol is returned, wrapped, when a kind is not a symbol of
// its enum.
var errUnknownSymbol = errors.New("not a symbol of the schema's enum")

// symbolIndex returns the index of s among symbols.
func symbolIndex(symbols []string, s string) (int, error) {
	for i, sym := range symbols {
		if sym == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("kind %q: %w (%s)", s, errUnknownSymbol, strings.Join(symbols, ", "))
}

func (c *codecs) encodeLink(l link) ([]byte, error) {
	kind, err := symbolIndex(c.linkKinds, string(l.Kind))
	if err != nil {
		return nil, fmt.Errorf("encoding identity link: %w", err)
	}
	n := longLen(int64(kind)) + stringLen(l.Identifier) + stringLen(l.Profile) + longLen(l.Created) +
		stringLen(l.From) + stringLen(l.Event) + stringsLen(l.Identifiers)
	b := make([]byte, 0, n)
	b = appendLong(b, int64(kind))
	b = appendString(b, l.Identifier)
	b = appendString(b, l.Profile)
	b = appendLong(b, l.Created)
	b = appendString(b, l.From)
	b = appendString(b, l.Event)
	b = appendStrings(b, l.Identifiers)
	return b, nil
}

// decodeLink decodes a link. Its Event aliases b. Bytes after the record
// are ignored, as goavro did: a later version of the schema may append
// fields with defaults, and this reader should keep working meanwhile.
func (c *codecs) decodeLink(b []byte) (link, error) {
	d := decoder{b: b}
	l := link{
		Kind:        linkKind(d.readEnum("kind", c.linkKinds)),
		Identifier:  d.readString("identifier"),
		Profile:     d.readString("profile"),
		Created:     d.readLong("created"),
		From:        d.readString("from"),
		Event:       d.readBytes("event"),
		Identifiers: d.readStrings("identifiers"),
	}
	if d.err != nil {
		return link{}, fmt.Errorf("decoding identity link: %w", d.err)
	}
	return l, nil
}

// encodeOp encodes o as the Avro profile op, into bytes of ctx's Scratch,
// which a record forwarded during ctx's processing may use (a profile-ops
// record was 6.0 % of the bytes the hub allocated), or into a new slice when
// ctx is nil.
func (c *codecs) encodeOp(o op, ctx *topology.Context) ([]byte, error) {
	kind, err := symbolIndex(c.opKinds, string(o.Kind))
	if err != nil {
		return nil, fmt.Errorf("encoding profile op: %w", err)
	}
	n := longLen(int64(kind)) + stringLen(o.Profile) + longLen(o.Created) + stringLen(o.Peer) +
		longLen(o.PeerCreated) + stringLen(o.Cause) + stringLen(o.Origin) + stringLen(o.Owner) +
		stringsLen(o.Identifiers) + stringLen(o.Event) + stringLen(o.State) + stringLen(o.Features) +
		stringLen(o.Reason)
	var b []byte
	if ctx != nil {
		b = ctx.Scratch(n)[:0]
	} else {
		b = make([]byte, 0, n)
	}
	b = appendLong(b, int64(kind))
	b = appendString(b, o.Profile)
	b = appendLong(b, o.Created)
	b = appendString(b, o.Peer)
	b = appendLong(b, o.PeerCreated)
	b = appendString(b, o.Cause)
	b = appendString(b, o.Origin)
	b = appendString(b, o.Owner)
	b = appendStrings(b, o.Identifiers)
	b = appendString(b, o.Event)
	b = appendString(b, o.State)
	b = appendString(b, o.Features)
	b = appendString(b, o.Reason)
	return b, nil
}

// decodeOp decodes an op. Its Event, State and Features alias b; trailing
// bytes are ignored as in decodeLink.
func (c *codecs) decodeOp(b []byte) (op, error) {
	d := decoder{b: b}
	o := op{
		Kind:        opKind(d.readEnum("kind", c.opKinds)),
		Profile:     d.readString("profile"),
		Created:     d.readLong("created"),
		Peer:        d.readString("peer"),
		PeerCreated: d.readLong("peer_created"),
		Cause:       d.readString("cause"),
		Origin:      d.readString("origin"),
		Owner:       d.readString("owner"),
		Identifiers: d.readStrings("identifiers"),
		Event:       d.readBytes("event"),
		State:       d.readBytes("state"),
		Features:    d.readBytes("features"),
		Reason:      d.readString("reason"),
	}
	if d.err != nil {
		return op{}, fmt.Errorf("decoding profile op: %w", d.err)
	}
	return o, nil
}

// Avro binary encoding: a long (and an int, and an enum's index) is
// zig-zag coded then written as a little-endian base-128 varint, which is
// what binary.AppendUvarint writes; strings and bytes are a long length
// and the bytes; an array is blocks of a long count and that many items,
// ended by a count of 0.

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func appendLong(b []byte, v int64) []byte { return binary.AppendUvarint(b, zigzag(v)) }

// longLen returns how many bytes appendLong writes for v.
func longLen(v int64) int { return (bits.Len64(zigzag(v)|1) + 6) / 7 }

func appendString[S string | []byte](b []byte, s S) []byte {
	return append(appendLong(b, int64(len(s))), s...)
}

func stringLen[S string | []byte](s S) int { return longLen(int64(len(s))) + len(s) }

// appendStrings writes ss as one block, as goavro does below its block
// limit of 2³¹−1 items, which no message comes near.
func appendStrings(b []byte, ss []string) []byte {
	if len(ss) > 0 {
		b = appendLong(b, int64(len(ss)))
		for _, s := range ss {
			b = appendString(b, s)
		}
	}
	return append(b, 0)
}

func stringsLen(ss []string) int {
	n := 1
	if len(ss) > 0 {
		n += longLen(int64(len(ss)))
		for _, s := range ss {
			n += stringLen(s)
		}
	}
	return n
}

// errOverflow is returned, wrapped, for a varint longer than a long.
var errOverflow = errors.New("varint overflows a long")

// decoder reads Avro binary off the front of b. The first failure sticks
// in err, naming the field, so that a record decodes as straight-line code
// and its error says where the input broke.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(field string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("field %q: %w", field, err)
	}
}

// varint reads a long, returning the error as is for the caller to place.
func (d *decoder) varint() (int64, error) {
	u, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		return 0, io.ErrUnexpectedEOF
	case n < 0:
		return 0, errOverflow
	}
	d.b = d.b[n:]
	return int64(u>>1) ^ -int64(u&1), nil
}

func (d *decoder) readLong(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, err := d.varint()
	if err != nil {
		d.fail(field, err)
	}
	return v
}

func (d *decoder) readEnum(field string, symbols []string) string {
	i := d.readLong(field)
	if d.err != nil {
		return ""
	}
	if i < 0 || i >= int64(len(symbols)) {
		d.fail(field, fmt.Errorf("enum index %d, want 0 to %d", i, len(symbols)-1))
		return ""
	}
	return symbols[i]
}

// raw reads a length-prefixed run of bytes, aliasing d.b; never nil on
// success, as goavro's were not, so that a decoded message is the same
// whichever decoder made it.
func (d *decoder) raw() ([]byte, error) {
	n, err := d.varint()
	switch {
	case err != nil:
		return nil, fmt.Errorf("length: %w", err)
	case n < 0:
		return nil, fmt.Errorf("negative length %d", n)
	case n > int64(len(d.b)):
		return nil, fmt.Errorf("length %d beyond the %d bytes left: %w", n, len(d.b), io.ErrUnexpectedEOF)
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v, nil
}

// readBytes reads a bytes field; the result aliases the input.
func (d *decoder) readBytes(field string) []byte {
	if d.err != nil {
		return nil
	}
	v, err := d.raw()
	if err != nil {
		d.fail(field, err)
	}
	return v
}

func (d *decoder) readString(field string) string {
	return string(d.readBytes(field))
}

// readStrings reads an array of strings in any number of blocks, a negative
// count being followed by the block's size in bytes, which is not needed
// here (the specification lets writers choose, and other writers than
// this file may). The result is never nil, as goavro's was not.
func (d *decoder) readStrings(field string) []string {
	out := []string{}
	for d.err == nil {
		count, err := d.varint()
		if err != nil {
			d.fail(field, fmt.Errorf("block count after %d items: %w", len(out), err))
			break
		}
		if count == 0 {
			break
		}
		if count < 0 {
			if count == math.MinInt64 {
				d.fail(field, fmt.Errorf("block count %d", count))
				break
			}
			count = -count
			if _, err := d.varint(); err != nil {
				d.fail(field, fmt.Errorf("block size after %d items: %w", len(out), err))
				break
			}
		}
		// Every item takes at least its length byte: a larger count is
		// corrupt, and must not size an allocation.
		if count > int64(len(d.b)) {
			d.fail(field, fmt.Errorf("block of %d items in the %d bytes left: %w", count, len(d.b), io.ErrUnexpectedEOF))
			break
		}
		out = slices.Grow(out, int(count))
		for range count {
			s, err := d.raw()
			if err != nil {
				d.fail(field, fmt.Errorf("item %d: %w", len(out), err))
				break
			}
			out = append(out, string(s))
		}
	}
	if d.err != nil {
		return nil
	}
	return out
}
