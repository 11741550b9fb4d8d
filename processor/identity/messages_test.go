package identity

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/tessera-cdp/tessera/schemas"
)

// The hand-written codecs of messages.go are held to goavro, which wrote
// these messages before them and reads the .avsc files directly: same
// bytes out, same values in, either way round.

// avroCodecs returns goavro's codecs of the two schemas.
func avroCodecs(t testing.TB) (linkCodec, opCodec *goavro.Codec) {
	t.Helper()
	l, err := schemas.Codec("identity_link")
	if err != nil {
		t.Fatal(err)
	}
	o, err := schemas.Codec("profile_op")
	if err != nil {
		t.Fatal(err)
	}
	return l, o
}

func mustCodecs(t testing.TB) *codecs {
	t.Helper()
	c, err := newCodecs()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func fromAnys(v any) []string {
	a := v.([]any)
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = x.(string)
	}
	return out
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// goavroLink and goavroOp are the native forms messages.go used to give
// goavro.
func goavroLink(l link) map[string]any {
	return map[string]any{
		"kind": string(l.Kind), "identifier": l.Identifier, "profile": l.Profile, "created": l.Created,
		"from": l.From, "event": nonNil(l.Event), "identifiers": anys(l.Identifiers),
	}
}

func goavroOp(o op) map[string]any {
	return map[string]any{
		"kind": string(o.Kind), "profile": o.Profile, "created": o.Created, "peer": o.Peer,
		"peer_created": o.PeerCreated, "cause": o.Cause, "origin": o.Origin, "owner": o.Owner,
		"identifiers": anys(o.Identifiers), "event": nonNil(o.Event), "state": nonNil(o.State),
		"features": nonNil(o.Features), "reason": o.Reason,
	}
}

func linkFromGoavro(n any) link {
	m := n.(map[string]any)
	return link{
		Kind: linkKind(m["kind"].(string)), Identifier: m["identifier"].(string), Profile: m["profile"].(string),
		Created: m["created"].(int64), From: m["from"].(string), Event: m["event"].([]byte),
		Identifiers: fromAnys(m["identifiers"]),
	}
}

func opFromGoavro(n any) op {
	m := n.(map[string]any)
	return op{
		Kind: opKind(m["kind"].(string)), Profile: m["profile"].(string), Created: m["created"].(int64),
		Peer: m["peer"].(string), PeerCreated: m["peer_created"].(int64), Cause: m["cause"].(string),
		Origin: m["origin"].(string), Owner: m["owner"].(string), Identifiers: fromAnys(m["identifiers"]),
		Event: m["event"].([]byte), State: m["state"].([]byte), Features: m["features"].([]byte),
		Reason: m["reason"].(string),
	}
}

// normLink and normOp are what a decoder returns for a message: empty
// bytes and arrays come back empty, not nil.
func normLink(l link) link {
	l.Event = nonNil(l.Event)
	if l.Identifiers == nil {
		l.Identifiers = []string{}
	}
	return l
}

func normOp(o op) op {
	o.Event, o.State, o.Features = nonNil(o.Event), nonNil(o.State), nonNil(o.Features)
	if o.Identifiers == nil {
		o.Identifiers = []string{}
	}
	return o
}

// gen makes random field values, favouring the edges of the encoding:
// empty values, lengths whose varint takes one, two and three bytes, and
// longs at every sign and width.
type gen struct{ rng *rand.Rand }

func (g gen) long() int64 {
	switch g.rng.IntN(6) {
	case 0:
		return []int64{0, -1, 1, 63, -64, 64, -65, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}[g.rng.IntN(10)]
	case 1:
		return -g.rng.Int64N(1 << 20)
	case 2:
		return -g.rng.Int64()
	case 3:
		return g.rng.Int64N(1 << 45) // Unix ms
	}
	return g.rng.Int64() >> g.rng.IntN(64)
}

func (g gen) length() int {
	switch g.rng.IntN(8) {
	case 0, 1:
		return 0
	case 2:
		return 63 + g.rng.IntN(3) // where a zig-zag length takes a second byte
	case 3:
		if g.rng.IntN(8) == 0 {
			return 8190 + g.rng.IntN(4) // and a third byte
		}
		return 100 + g.rng.IntN(1000)
	}
	return 1 + g.rng.IntN(40)
}

func (g gen) bytes() []byte {
	n := g.length()
	if n == 0 && g.rng.IntN(2) == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.UintN(256))
	}
	return b
}

func (g gen) string() string {
	if g.rng.IntN(4) == 0 {
		return string(g.bytes()) // any bytes: Avro strings are not checked for UTF-8 by either side
	}
	const alphabet = "abcxyz:_-0189ÄéΩ漢🙂"
	runes := []rune(alphabet)
	var sb strings.Builder
	for range g.length() {
		sb.WriteRune(runes[g.rng.IntN(len(runes))])
	}
	return sb.String()
}

func (g gen) strings() []string {
	var n int
	switch g.rng.IntN(6) {
	case 0:
		return nil
	case 1:
		return []string{}
	case 2:
		n = 60 + g.rng.IntN(200)
	default:
		n = 1 + g.rng.IntN(5)
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = g.string()
		if len(ss[i]) > 1000 {
			ss[i] = ss[i][:1000] // keeps a long array of long strings in bounds
		}
	}
	return ss
}

func (g gen) link(kind string) link {
	return link{Kind: linkKind(kind), Identifier: g.string(), Profile: g.string(), Created: g.long(),
		From: g.string(), Event: g.bytes(), Identifiers: g.strings()}
}

func (g gen) op(kind string) op {
	return op{Kind: opKind(kind), Profile: g.string(), Created: g.long(), Peer: g.string(),
		PeerCreated: g.long(), Cause: g.string(), Origin: g.string(), Owner: g.string(),
		Identifiers: g.strings(), Event: g.bytes(), State: g.bytes(), Features: g.bytes(), Reason: g.string()}
}

// TestMessagesMatchGoavro checks, over random messages of every kind, that
// the encoding is goavro's byte for byte, that goavro reads it back, and
// that goavro's encoding decodes to the message.
func TestMessagesMatchGoavro(t *testing.T) {
	c := mustCodecs(t)
	lc, oc := avroCodecs(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	g := gen{rand.New(rand.NewPCG(seed, 1))}
	for i := range 1000 {
		l := g.link(c.linkKinds[i%len(c.linkKinds)])
		want, err := lc.BinaryFromNative(nil, goavroLink(l))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.encodeLink(l)
		if err != nil {
			t.Fatalf("encodeLink(%+v): %v", l, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encodeLink(%+v) =\n%x, goavro wrote\n%x", l, got, want)
		}
		if n, rest, err := lc.NativeFromBinary(got); err != nil || len(rest) != 0 || !reflect.DeepEqual(linkFromGoavro(n), normLink(l)) {
			t.Fatalf("goavro decodes encodeLink(%+v) as %v, %d bytes left, %v", l, n, len(rest), err)
		}
		if back, err := c.decodeLink(want); err != nil || !reflect.DeepEqual(back, normLink(l)) {
			t.Fatalf("decodeLink of goavro's encoding of %+v = %+v, %v", l, back, err)
		}

		o := g.op(c.opKinds[i%len(c.opKinds)])
		want, err = oc.BinaryFromNative(nil, goavroOp(o))
		if err != nil {
			t.Fatal(err)
		}
		got, err = c.encodeOp(o, nil)
		if err != nil {
			t.Fatalf("encodeOp(%+v): %v", o, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encodeOp(%+v) =\n%x, goavro wrote\n%x", o, got, want)
		}
		if n, rest, err := oc.NativeFromBinary(got); err != nil || len(rest) != 0 || !reflect.DeepEqual(opFromGoavro(n), normOp(o)) {
			t.Fatalf("goavro decodes encodeOp(%+v) as %v, %d bytes left, %v", o, n, len(rest), err)
		}
		if back, err := c.decodeOp(want); err != nil || !reflect.DeepEqual(back, normOp(o)) {
			t.Fatalf("decodeOp of goavro's encoding of %+v = %+v, %v", o, back, err)
		}
	}
}

// TestKindsAreSchemaSymbols checks that every kind the protocol sends is a
// symbol of its enum, in the schema, and that a kind that is not one is
// refused rather than written as something else.
func TestKindsAreSchemaSymbols(t *testing.T) {
	c := mustCodecs(t)
	for _, k := range []linkKind{linkResolve, linkClaim, linkRepoint, linkErase, linkUnlink} {
		if _, err := c.encodeLink(link{Kind: k}); err != nil {
			t.Errorf("link kind %s: %v", k, err)
		}
	}
	for _, k := range []opKind{opEvent, opMergeRequest, opOffer, opAccept, opRefuse, opAbsorb, opDrop, opErase} {
		if _, err := c.encodeOp(op{Kind: k}, nil); err != nil {
			t.Errorf("op kind %s: %v", k, err)
		}
	}
	if _, err := c.encodeLink(link{Kind: "MERGE"}); err == nil || !strings.Contains(err.Error(), `encoding identity link: kind "MERGE"`) {
		t.Errorf("encodeLink of kind MERGE: %v, want an error naming it", err)
	}
	if _, err := c.encodeOp(op{}, nil); err == nil || !strings.Contains(err.Error(), `encoding profile op: kind ""`) {
		t.Errorf("encodeOp of no kind: %v, want an error naming it", err)
	}
}

// TestSchemaLayoutIsChecked checks that newCodecs' check refuses a schema
// whose fields differ from what messages.go writes.
func TestSchemaLayoutIsChecked(t *testing.T) {
	moved := append([]field{opLayout[1], opLayout[0]}, opLayout[2:]...)
	if _, err := enumOf("profile_op", moved); err == nil || !strings.Contains(err.Error(), "reading schema profile_op: fields") {
		t.Errorf("enumOf with two fields swapped: %v", err)
	}
	if _, err := enumOf("identity_link", linkLayout[:6]); err == nil {
		t.Error("enumOf with a field missing: no error")
	}
}

// appendBlocks writes ss as an Avro array in random blocks, some with a
// negative count and the block's size, as other writers may.
func appendBlocks(b []byte, rng *rand.Rand, ss []string) []byte {
	for len(ss) > 0 {
		n := 1 + rng.IntN(len(ss))
		var block []byte
		for _, s := range ss[:n] {
			block = appendString(block, s)
		}
		if rng.IntN(2) == 0 {
			b = appendLong(b, int64(-n))
			b = appendLong(b, int64(len(block)))
		} else {
			b = appendLong(b, int64(n))
		}
		b = append(b, block...)
		ss = ss[n:]
	}
	return append(b, 0)
}

// TestArraysInBlocks checks that arrays written in several blocks, with
// negative counts, decode as goavro decodes them.
func TestArraysInBlocks(t *testing.T) {
	c := mustCodecs(t)
	lc, oc := avroCodecs(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	g := gen{rng}
	for i := range 500 {
		ids := g.strings()
		l := g.link(c.linkKinds[i%len(c.linkKinds)])
		l.Identifiers = nil
		b, err := c.encodeLink(l)
		if err != nil {
			t.Fatal(err)
		}
		// identifiers is the last field: replace its empty array.
		b = appendBlocks(b[:len(b)-1], rng, ids)
		l.Identifiers = ids
		if got, err := c.decodeLink(b); err != nil || !reflect.DeepEqual(got, normLink(l)) {
			t.Fatalf("decodeLink(%x) = %+v, %v; want %+v", b, got, err, normLink(l))
		}
		if n, _, err := lc.NativeFromBinary(b); err != nil || !reflect.DeepEqual(linkFromGoavro(n), normLink(l)) {
			t.Fatalf("goavro decodes %x as %v, %v", b, n, err)
		}

		o := g.op(c.opKinds[i%len(c.opKinds)])
		head := o
		head.Identifiers, head.Event, head.State, head.Features, head.Reason = nil, nil, nil, nil, ""
		b, err = c.encodeOp(head, nil)
		if err != nil {
			t.Fatal(err)
		}
		// identifiers is followed by four empty fields of one byte each.
		b = appendBlocks(b[:len(b)-5], rng, ids)
		b = appendString(appendString(appendString(appendString(b, o.Event), o.State), o.Features), o.Reason)
		o.Identifiers = ids
		if got, err := c.decodeOp(b); err != nil || !reflect.DeepEqual(got, normOp(o)) {
			t.Fatalf("decodeOp(%x) = %+v, %v; want %+v", b, got, err, normOp(o))
		}
		if n, _, err := oc.NativeFromBinary(b); err != nil || !reflect.DeepEqual(opFromGoavro(n), normOp(o)) {
			t.Fatalf("goavro decodes %x as %v, %v", b, n, err)
		}
	}
}

// TestDecodeRefusesBadInput checks that truncated and corrupt messages
// are errors that name the message and the field, never panics or
// silently different values.
func TestDecodeRefusesBadInput(t *testing.T) {
	c := mustCodecs(t)
	lc, oc := avroCodecs(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	g := gen{rng}
	for i := range 200 {
		lb, err := c.encodeLink(g.link(c.linkKinds[i%len(c.linkKinds)]))
		if err != nil {
			t.Fatal(err)
		}
		ob, err := c.encodeOp(g.op(c.opKinds[i%len(c.opKinds)]), nil)
		if err != nil {
			t.Fatal(err)
		}
		// Every strict prefix lacks a field, or part of one.
		for _, n := range []int{0, 1, len(lb) / 2, len(lb) - 1, rng.IntN(len(lb))} {
			if _, err := c.decodeLink(lb[:n]); err == nil || !strings.HasPrefix(err.Error(), "decoding identity link: field ") {
				t.Fatalf("decodeLink of %d of %d bytes: %v", n, len(lb), err)
			}
		}
		for _, n := range []int{0, 1, len(ob) / 2, len(ob) - 1, rng.IntN(len(ob))} {
			if _, err := c.decodeOp(ob[:n]); err == nil || !strings.HasPrefix(err.Error(), "decoding profile op: field ") {
				t.Fatalf("decodeOp of %d of %d bytes: %v", n, len(ob), err)
			}
		}
		// Flipped bytes: whatever decodes must be what goavro reads too.
		for range 10 {
			b := bytes.Clone(lb)
			for range 1 + rng.IntN(3) {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
			checkLinkAgainstGoavro(t, c, lc, b)
			b = bytes.Clone(ob)
			for range 1 + rng.IntN(3) {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
			checkOpAgainstGoavro(t, c, oc, b)
		}
	}

	for _, tt := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, `decoding profile op: field "kind": unexpected EOF`},
		{"enum index past the symbols", []byte{byte(zigzag(int64(len(c.opKinds))))}, `decoding profile op: field "kind": enum index 8, want 0 to 7`},
		{"negative enum index", []byte{1}, `field "kind": enum index -1`},
		{"varint of eleven bytes", append(bytes.Repeat([]byte{0xff}, 10), 1), `field "kind": varint overflows a long`},
		{"negative length", []byte{0, 3}, `field "profile": negative length -2`},
		{"length past the end", []byte{0, 20, 'a'}, `field "profile": length 10 beyond the 1 bytes left: unexpected EOF`},
		{"no created", []byte{0, 2, 'p'}, `field "created": unexpected EOF`},
		{"array count past the end", opPrefix(t, c, appendLong(nil, 1000)...), `field "identifiers": block of 1000 items in the 0 bytes left`},
		{"smallest block count", opPrefix(t, c, appendLong(nil, math.MinInt64)...), `field "identifiers": block count -9223372036854775808`},
		{"no block size", opPrefix(t, c, 1), `field "identifiers": block size after 0 items: unexpected EOF`},
		{"item cut", opPrefix(t, c, 4, 2, 'a', 4, 'b'), `field "identifiers": item 1: length 2 beyond the 1 bytes left`},
		{"no end of array", opPrefix(t, c, 2, 2, 'a'), `field "identifiers": block count after 1 items: unexpected EOF`},
	} {
		_, err := c.decodeOp(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: decodeOp(%x): %v, want %q", tt.name, tt.in, err, tt.want)
		}
	}
}

// opPrefix returns an op encoded up to its identifiers, followed by tail.
func opPrefix(t *testing.T, c *codecs, tail ...byte) []byte {
	t.Helper()
	b, err := c.encodeOp(op{Kind: opEvent, Profile: "p"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return append(b[:len(b)-5], tail...)
}

func checkLinkAgainstGoavro(t *testing.T, c *codecs, lc *goavro.Codec, b []byte) {
	t.Helper()
	got, err := c.decodeLink(b)
	if err != nil {
		if !strings.HasPrefix(err.Error(), "decoding identity link: field ") {
			t.Fatalf("decodeLink(%x): %v", b, err)
		}
		return
	}
	n, _, gerr := lc.NativeFromBinary(b)
	if gerr != nil || !reflect.DeepEqual(linkFromGoavro(n), got) {
		t.Fatalf("decodeLink(%x) = %+v, goavro reads %v, %v", b, got, n, gerr)
	}
}

func checkOpAgainstGoavro(t *testing.T, c *codecs, oc *goavro.Codec, b []byte) {
	t.Helper()
	got, err := c.decodeOp(b)
	if err != nil {
		if !strings.HasPrefix(err.Error(), "decoding profile op: field ") {
			t.Fatalf("decodeOp(%x): %v", b, err)
		}
		return
	}
	n, _, gerr := oc.NativeFromBinary(b)
	if gerr != nil || !reflect.DeepEqual(opFromGoavro(n), got) {
		t.Fatalf("decodeOp(%x) = %+v, goavro reads %v, %v", b, got, n, gerr)
	}
}

// FuzzDecode feeds any bytes to both decoders: they must not panic, and
// what they accept goavro must read the same.
func FuzzDecode(f *testing.F) {
	c := mustCodecs(f)
	lc, oc := avroCodecs(f)
	g := gen{rand.New(rand.NewPCG(4, 4))}
	for i := range 8 {
		lb, _ := c.encodeLink(g.link(c.linkKinds[i%len(c.linkKinds)]))
		ob, _ := c.encodeOp(g.op(c.opKinds[i%len(c.opKinds)]), nil)
		f.Add(lb)
		f.Add(ob)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkLinkAgainstGoavro(t, c, lc, b)
		checkOpAgainstGoavro(t, c, oc, b)
	})
}

// BenchmarkMessages encodes and decodes the messages every event sends: a
// RESOLVE link and an EVENT op carrying a 1 KB event and three
// identifiers.
func BenchmarkMessages(b *testing.B) {
	c := mustCodecs(b)
	event := bytes.Repeat([]byte("x"), 1024)
	ids := []string{"user_id:u-1842", "anonymous_id:2c1e6a0f-6b1d-4f4e-9a55-1f3b7c2d9e10", "email:someone@example.com"}
	l := link{Kind: linkResolve, Identifier: ids[0], Event: event, Identifiers: ids}
	o := op{Kind: opEvent, Profile: "p-01HZX3K6T1V2W3Y4Z5A6B7C8D9", Created: 1767225600000, Identifiers: ids, Event: event}
	lb, err := c.encodeLink(l)
	if err != nil {
		b.Fatal(err)
	}
	ob, err := c.encodeOp(o, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode-link", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.encodeLink(l); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-link", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.decodeLink(lb); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-op", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.encodeOp(o, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-op", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.decodeOp(ob); err != nil {
				b.Fatal(err)
			}
		}
	})
}
