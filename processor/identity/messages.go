package identity

import (
	"fmt"

	"github.com/linkedin/goavro/v2"
	"github.com/tessera-cdp/tessera/schemas"
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

// codecs holds the two goavro codecs.
type codecs struct {
	link, op *goavro.Codec
}

func newCodecs() (*codecs, error) {
	l, err := schemas.Codec("identity_link")
	if err != nil {
		return nil, err
	}
	o, err := schemas.Codec("profile_op")
	if err != nil {
		return nil, err
	}
	return &codecs{link: l, op: o}, nil
}

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func fromAny(v any) []string {
	a, _ := v.([]any)
	out := make([]string, len(a))
	for i, x := range a {
		out[i], _ = x.(string)
	}
	return out
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (c *codecs) encodeLink(l link) ([]byte, error) {
	b, err := c.link.BinaryFromNative(nil, map[string]any{
		"kind": string(l.Kind), "identifier": l.Identifier, "profile": l.Profile, "created": l.Created,
		"from": l.From, "event": orEmpty(l.Event), "identifiers": strs(l.Identifiers),
	})
	if err != nil {
		return nil, fmt.Errorf("encoding identity link: %w", err)
	}
	return b, nil
}

func (c *codecs) decodeLink(b []byte) (link, error) {
	n, _, err := c.link.NativeFromBinary(b)
	if err != nil {
		return link{}, fmt.Errorf("decoding identity link: %w", err)
	}
	m := n.(map[string]any)
	return link{
		Kind: linkKind(m["kind"].(string)), Identifier: m["identifier"].(string), Profile: m["profile"].(string),
		Created: m["created"].(int64), From: m["from"].(string), Event: m["event"].([]byte),
		Identifiers: fromAny(m["identifiers"]),
	}, nil
}

func (c *codecs) encodeOp(o op) ([]byte, error) {
	b, err := c.op.BinaryFromNative(nil, map[string]any{
		"kind": string(o.Kind), "profile": o.Profile, "created": o.Created, "peer": o.Peer,
		"peer_created": o.PeerCreated, "cause": o.Cause, "origin": o.Origin, "owner": o.Owner,
		"identifiers": strs(o.Identifiers), "event": orEmpty(o.Event), "state": orEmpty(o.State), "features": orEmpty(o.Features), "reason": o.Reason,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding profile op: %w", err)
	}
	return b, nil
}

func (c *codecs) decodeOp(b []byte) (op, error) {
	n, _, err := c.op.NativeFromBinary(b)
	if err != nil {
		return op{}, fmt.Errorf("decoding profile op: %w", err)
	}
	m := n.(map[string]any)
	return op{
		Kind: opKind(m["kind"].(string)), Profile: m["profile"].(string), Created: m["created"].(int64),
		Peer: m["peer"].(string), PeerCreated: m["peer_created"].(int64), Cause: m["cause"].(string),
		Origin: m["origin"].(string), Owner: m["owner"].(string), Identifiers: fromAny(m["identifiers"]), Event: m["event"].([]byte),
		State: m["state"].([]byte), Features: m["features"].([]byte), Reason: m["reason"].(string),
	}, nil
}
