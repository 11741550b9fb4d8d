// Package filesink is the file sink: activations appended to a JSON Lines
// file.
//
// Each line is one activation as JSON (sink.Activation's fields: id, type,
// name, profile_id, timestamp, profile and, for event_triggered, event),
// or the destination's template rendered (see sink.Template), which must
// render one valid JSON value; it is compacted onto its line. The id is
// the idempotency key: a redelivered activation appears again with the
// same id, so readers deduplicate on it.
//
// A batch is one write followed by an fsync, so when WriteBatch returns
// the batch is on disk. The file is opened (created, with its folder, if
// missing) for each batch and closed after it, so rotating it (mv, then
// signal nothing) takes effect at the next batch. A failed write is cut
// back off the file, so a retry does not leave half a line behind. One
// destination writes a file: two writing the same path may interleave
// batches, never lines.
package filesink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// Sink is the file sink. Build it with New.
type Sink struct {
	name string
	path string
	tmpl *sink.Template // nil: the activation as JSON
}

// New returns the file sink of dest: path is required, template is
// optional. getenv is unused: the file sink has no secrets.
func New(dest config.Destination, getenv func(string) string) (sink.Sink, error) {
	if err := sink.CheckFields(dest, "path", "template"); err != nil {
		return nil, fmt.Errorf("file %s: %w", dest.Name, err)
	}
	if dest.Path == "" {
		return nil, fmt.Errorf("file %s: path is required", dest.Name)
	}
	s := &Sink{name: dest.Name, path: dest.Path}
	if dest.Template != "" {
		var err error
		if s.tmpl, err = sink.ParseTemplate(dest.Name+".template", dest.Template, ""); err != nil {
			return nil, fmt.Errorf("file %s: %w", dest.Name, err)
		}
	}
	return s, nil
}

// Connect checks that the file can be opened for appending.
func (s *Sink) Connect(context.Context) error {
	f, err := s.open()
	if err != nil {
		return err
	}
	return f.Close()
}

func (s *Sink) open() (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the folder of %s: %w", s.path, err)
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", s.path, err)
	}
	return f, nil
}

// WriteBatch appends the batch and syncs the file. An activation whose
// template fails is reported failed; the others are written.
func (s *Sink) WriteBatch(_ context.Context, batch []sink.Activation) error {
	var (
		buf  bytes.Buffer
		errs sink.BatchError
	)
	for i, a := range batch {
		line, err := s.line(a)
		if err != nil {
			errs.Fail(i, err)
			continue
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	if buf.Len() > 0 {
		if err := s.append(buf.Bytes()); err != nil {
			return err
		}
	}
	if len(errs.Failed) > 0 {
		return &errs
	}
	return nil
}

// append writes b at the end of the file and syncs it, or cuts the file
// back to where it was.
func (s *Sink) append(b []byte) (err error) {
	f, err := s.open()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("writing %s: %w", s.path, err)
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if err != nil {
		if terr := f.Truncate(st.Size()); terr != nil {
			err = errors.Join(err, fmt.Errorf("cutting off the failed write: %w", terr))
		}
		return fmt.Errorf("writing %s: %w", s.path, err)
	}
	return nil
}

// line is a's line, without the newline.
func (s *Sink) line(a sink.Activation) ([]byte, error) {
	if s.tmpl == nil {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, sink.Permanent(fmt.Errorf("encoding activation %s: %w", a.ID, err))
		}
		return b, nil
	}
	b, err := s.tmpl.Render(a)
	if err != nil {
		return nil, err
	}
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		return nil, sink.Permanent(fmt.Errorf("the template did not render valid JSON: %w", err))
	}
	return c.Bytes(), nil
}

// Close does nothing: the file is closed after each batch.
func (s *Sink) Close(context.Context) error { return nil }
