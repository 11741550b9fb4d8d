package schemas

import (
	"embed"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
)

//go:embed avro/*.avsc
var avroFiles embed.FS

var (
	codecsOnce sync.Once
	codecs     map[string]*goavro.Codec
	codecsErr  error
)

// Codec returns the goavro codec of the embedded schema name (the .avsc
// file name without extension, e.g. "invalid_event").
func Codec(name string) (*goavro.Codec, error) {
	codecsOnce.Do(loadCodecs)
	if codecsErr != nil {
		return nil, codecsErr
	}
	c, ok := codecs[name]
	if !ok {
		return nil, fmt.Errorf("schemas: no Avro schema %q", name)
	}
	return c, nil
}

// Schemas returns the embedded Avro schemas by name, for a schema registry.
func Schemas() map[string]string {
	out := make(map[string]string)
	entries, _ := avroFiles.ReadDir("avro")
	for _, e := range entries {
		b, _ := avroFiles.ReadFile(path.Join("avro", e.Name()))
		out[strings.TrimSuffix(e.Name(), ".avsc")] = string(b)
	}
	return out
}

func loadCodecs() {
	codecs = make(map[string]*goavro.Codec)
	for name, text := range Schemas() {
		c, err := goavro.NewCodec(text)
		if err != nil {
			codecsErr = fmt.Errorf("schemas: parsing %s.avsc: %w", name, err)
			return
		}
		codecs[name] = c
	}
}

// InvalidEvent is an input that could not be processed, as written to
// <app>.events.invalid: never silently dropped.
type InvalidEvent struct {
	Raw        []byte
	Reason     string
	Source     string
	ReceivedAt time.Time
}

// Encode returns e in Avro binary.
func (e InvalidEvent) Encode() ([]byte, error) {
	c, err := Codec("invalid_event")
	if err != nil {
		return nil, err
	}
	raw := e.Raw
	if raw == nil {
		raw = []byte{}
	}
	b, err := c.BinaryFromNative(nil, map[string]any{
		"raw": raw, "reason": e.Reason, "source": e.Source, "received_at": e.ReceivedAt.UnixMilli(),
	})
	if err != nil {
		return nil, fmt.Errorf("encoding invalid event: %w", err)
	}
	return b, nil
}

// DecodeInvalidEvent decodes an <app>.events.invalid value.
func DecodeInvalidEvent(b []byte) (InvalidEvent, error) {
	c, err := Codec("invalid_event")
	if err != nil {
		return InvalidEvent{}, err
	}
	n, _, err := c.NativeFromBinary(b)
	if err != nil {
		return InvalidEvent{}, fmt.Errorf("decoding invalid event: %w", err)
	}
	m := n.(map[string]any)
	return InvalidEvent{
		Raw:        m["raw"].([]byte),
		Reason:     m["reason"].(string),
		Source:     m["source"].(string),
		ReceivedAt: time.UnixMilli(m["received_at"].(int64)).UTC(),
	}, nil
}
