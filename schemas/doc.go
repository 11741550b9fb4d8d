// Package schemas holds what tessera's topics carry: the Segment-spec event
// on tessera.events (JSON, validated and completed by Normalizer), the Avro
// schemas of every internal topic (embedded .avsc files with their goavro
// codecs), and tracking plans (JSON Schema per event name).
//
// Events stay JSON from ingest to the profile: they are parsed with
// fastjson, which reuses its buffers and reflects nothing, because the hot
// path touches every event.
package schemas
