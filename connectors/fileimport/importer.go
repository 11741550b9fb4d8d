package fileimport

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/valyala/fastjson"
)

// Publisher writes events to <app>.events and rejected inputs to
// <app>.events.invalid, durably, before it returns. *ingest.Writer is one.
type Publisher interface {
	// PublishFrom writes events; Result lists those a tracking plan
	// blocked, which it sent to the invalid-events topic itself under the
	// source source(i) ("import:<file>:<line>").
	PublishFrom(ctx context.Context, evs []schemas.Normalized, source func(i int) string) (ingest.Result, error)
	// Reject writes inputs that could not become events.
	Reject(ctx context.Context, rs ...ingest.Rejection) error
}

// LineError is a record of the file that could not become an event: what
// is wrong and where.
type LineError struct {
	// Line is the line the record starts on, counted from 1.
	Line int
	// Column is the column as errors name it ($3, "amount" ($5), or for
	// jsonl "user.id"); "" when the problem is the whole record.
	Column string
	// Key is the mapping key the column gives ("properties.revenue"), if any.
	Key string
	// Err is the problem.
	Err error
}

// Error formats e as `line 12, column $3 (timestamp): "1997-13-01" does not
// match layout 2006-01-02: month out of range`.
func (e *LineError) Error() string {
	var b strings.Builder
	b.WriteString("line ")
	b.WriteString(strconv.Itoa(e.Line))
	if e.Column != "" {
		b.WriteString(", column ")
		b.WriteString(e.Column)
	}
	if e.Key != "" {
		b.WriteString(" (")
		b.WriteString(e.Key)
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns e.Err.
func (e *LineError) Unwrap() error { return e.Err }

// Report says what an import did. Every record is counted once:
// Lines = Imported + Skipped + Invalid.
type Report struct {
	// Lines is the number of records read: lines that are not blank, a
	// comment or the header (a quoted CSV field may join several lines
	// into one record).
	Lines int64
	// Imported is the number of events written to <app>.events.
	Imported int64
	// Skipped is the number of records a filter left out.
	Skipped int64
	// Invalid is the number of records sent to <app>.events.invalid,
	// including events a tracking plan blocked.
	Invalid int64
	// FirstErrors are the first invalid records, in line order, at most
	// Options.MaxErrors of them.
	FirstErrors []LineError
}

// Defaults of Options.
const (
	// DefaultBatchSize is how many events are published at once.
	DefaultBatchSize = 1000
	// DefaultMaxErrors is how many invalid records a Report lists.
	DefaultMaxErrors = 10
	// DefaultMaxRecordBytes is the longest record read: a longer one is
	// rejected, not read into memory.
	DefaultMaxRecordBytes = 1 << 20
	// maxRawBytes caps the raw text of a rejected record on the invalid
	// topic, well under Kafka's default 1 MB message limit.
	maxRawBytes = 64 << 10
)

// Options configures an Importer. A zero field takes its default.
type Options struct {
	// BatchSize is how many events (and rejected records) are written per
	// request, overriding DefaultBatchSize (1,000). One batch is written
	// while the next is read.
	BatchSize int
	// MaxErrors is how many invalid records Report.FirstErrors lists,
	// overriding DefaultMaxErrors (10).
	MaxErrors int
	// MaxRecordBytes is the longest record read, overriding
	// DefaultMaxRecordBytes (1 MiB); a longer one is rejected.
	MaxRecordBytes int
	// Progress, if set, is called from the importing goroutine after each
	// batch and at the end with the bytes of the file read so far and its
	// size (-1 when unknown, as for a pipe). For a gzip file both count
	// compressed bytes.
	Progress func(read, total int64)
	// Now returns the receivedAt of the import's events, read once when
	// the import starts; default time.Now.
	Now func() time.Time
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	o.BatchSize = cmp.Or(o.BatchSize, DefaultBatchSize)
	o.MaxErrors = cmp.Or(o.MaxErrors, DefaultMaxErrors)
	o.MaxRecordBytes = cmp.Or(o.MaxRecordBytes, DefaultMaxRecordBytes)
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Importer imports files with one mapping through one publisher. It is safe
// for concurrent use: each import has its own state.
type Importer struct {
	m    *Mapping
	pub  Publisher
	opts Options
}

// NewImporter returns an Importer that turns records into events with m and
// writes them with pub.
func NewImporter(m *Mapping, pub Publisher, opts Options) *Importer {
	return &Importer{m: m, pub: pub, opts: opts.withDefaults()}
}

// ImportFile imports the file at path, decompressing it if it is gzip.
// Sources on the invalid topic name it as path.
func (im *Importer) ImportFile(ctx context.Context, path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("opening the file to import: %w", err)
	}
	defer f.Close()
	size := int64(-1)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	cr := &countingReader{r: f}
	br := bufio.NewReader(cr)
	var src io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return Report{}, fmt.Errorf("reading %s as gzip: %w", path, err)
		}
		defer zr.Close()
		src = zr
	}
	return im.run(ctx, src, cr, path, size)
}

// Import imports the records read from r. name says which file it is, in
// errors and in the sources of rejected records ("import:<name>:<line>");
// size is its length for Options.Progress, or -1.
func (im *Importer) Import(ctx context.Context, r io.Reader, name string, size int64) (Report, error) {
	cr := &countingReader{r: r}
	return im.run(ctx, cr, cr, name, size)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// batch is what is written at once: events and the lines they came from,
// and rejected records.
type batch struct {
	events  []schemas.Normalized
	lines   []int
	rejects []ingest.Rejection
}

// sent is what the writing goroutine did.
type sent struct {
	imported int64
	blocked  int64
	errs     []LineError // the first blocked events
	err      error
}

// run is one import. The calling goroutine reads, maps and normalizes; one
// more writes batches, so a batch is written while the next is built.
func (im *Importer) run(ctx context.Context, src io.Reader, cr *countingReader, name string, size int64) (Report, error) {
	var rep Report
	m, opts := im.m, im.opts
	received := opts.Now()
	progress := func() {
		if opts.Progress != nil {
			opts.Progress(cr.n, size)
		}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := make(chan *batch, 1)
	done := make(chan sent, 1)
	go func() { done <- write(ctx, cancel, im.pub, batches, name, opts.MaxErrors) }()

	var (
		p    *plan
		err  error
		norm schemas.Normalizer
		buf  []byte
		b    = &batch{}
	)
	if !m.header {
		p, err = bind(m, nil, name, 0)
	}
	rd := newReader(src, m, opts.MaxRecordBytes)
	flush := func() {
		if len(b.events)+len(b.rejects) == 0 {
			return
		}
		select {
		case batches <- b:
		case <-ctx.Done():
		}
		b = &batch{events: make([]schemas.Normalized, 0, opts.BatchSize)}
		progress()
	}
	for err == nil {
		if err = ctx.Err(); err != nil {
			break
		}
		var rec *record
		rec, err = rd.next()
		var lerr *LineError
		if errors.As(err, &lerr) {
			err = nil
		}
		if err != nil {
			break
		}
		if p == nil { // the header
			if lerr != nil {
				err = fmt.Errorf("reading the header: %w", lerr)
				break
			}
			header := make([]string, len(rec.fields))
			for i, f := range rec.fields {
				header[i] = string(bytes.TrimSpace(f))
			}
			p, err = bind(m, header, name, rec.line)
			continue
		}

		rep.Lines++
		var skip bool
		if lerr == nil {
			buf, skip, lerr = p.event(buf[:0], rec)
		}
		if skip {
			rep.Skipped++
			continue
		}
		var ev schemas.Normalized
		if lerr == nil {
			ev, lerr = p.normalize(&norm, buf, rec, received)
		}
		if lerr != nil {
			rep.Invalid++
			if len(rep.FirstErrors) < opts.MaxErrors {
				rep.FirstErrors = append(rep.FirstErrors, *lerr)
			}
			raw := rec.raw
			if len(raw) > maxRawBytes {
				raw = raw[:maxRawBytes]
			}
			b.rejects = append(b.rejects, ingest.Rejection{
				Raw:    bytes.Clone(raw),
				Reason: lerr.Error(),
				Source: source(name, rec.line),
			})
		} else {
			b.events = append(b.events, ev)
			b.lines = append(b.lines, rec.line)
		}
		if len(b.events)+len(b.rejects) >= opts.BatchSize {
			flush()
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if ctx.Err() == nil {
		flush() // what was read is written, even before a read error
	}
	close(batches)
	s := <-done
	progress()

	rep.Imported = s.imported
	rep.Invalid += s.blocked
	rep.FirstErrors = append(rep.FirstErrors, s.errs...)
	slices.SortStableFunc(rep.FirstErrors, func(a, b LineError) int { return cmp.Compare(a.Line, b.Line) })
	rep.FirstErrors = rep.FirstErrors[:min(len(rep.FirstErrors), opts.MaxErrors)]
	switch {
	case s.err != nil:
		return rep, s.err
	case err != nil && ctx.Err() != nil:
		return rep, fmt.Errorf("importing %s: stopped after line %d: %w", name, rd.line, context.Cause(ctx))
	case err != nil:
		return rep, fmt.Errorf("importing %s: %w", name, err)
	}
	return rep, nil
}

// source names a record on the invalid-events topic.
func source(file string, line int) string {
	return "import:" + file + ":" + strconv.Itoa(line)
}

// normalize validates and completes the event JSON built from rec.
func (p *plan) normalize(norm *schemas.Normalizer, event []byte, rec *record, received time.Time) (schemas.Normalized, *LineError) {
	id, lerr := p.messageID(rec)
	if lerr != nil {
		return schemas.Normalized{}, lerr
	}
	v, err := norm.Parse(event)
	if err != nil {
		// The event is built by appendString and convert, which write
		// only valid JSON: this is a bug, reported rather than hidden.
		return schemas.Normalized{}, &LineError{Line: rec.line, Err: fmt.Errorf("building the event: %w", err)}
	}
	ev, err := norm.Normalize(v, schemas.Input{ReceivedAt: received, MessageID: id})
	if err != nil {
		lerr := &LineError{Line: rec.line, Err: err}
		var ve *schemas.ValidationError
		if errors.As(err, &ve) {
			if f := p.m.fieldOf(ve.Field); f != nil {
				lerr.Column, lerr.Key = p.label[f.col.id], f.key
			}
		}
		return ev, lerr
	}
	// A guard, cheap beside the rest: whatever a file holds, nothing that
	// is not JSON reaches the events topic.
	if err := fastjson.ValidateBytes(ev.Value); err != nil {
		return ev, &LineError{Line: rec.line, Err: fmt.Errorf("the normalized event is not valid JSON: %v", err)}
	}
	return ev, nil
}

// write writes batches until the channel closes. The first error cancels
// the import; later batches are drained unwritten.
func write(ctx context.Context, cancel context.CancelCauseFunc, pub Publisher, batches <-chan *batch, name string, maxErrors int) sent {
	var s sent
	for b := range batches {
		if s.err != nil {
			continue
		}
		if len(b.rejects) > 0 {
			if err := pub.Reject(ctx, b.rejects...); err != nil {
				s.err = fmt.Errorf("sending %d invalid records to the invalid-events topic: %w", len(b.rejects), err)
				cancel(s.err)
				continue
			}
		}
		if len(b.events) == 0 {
			continue
		}
		res, err := pub.PublishFrom(ctx, b.events, func(i int) string { return source(name, b.lines[i]) })
		if err != nil {
			s.err = fmt.Errorf("publishing the events of lines %d to %d: %w", b.lines[0], b.lines[len(b.lines)-1], err)
			cancel(s.err)
			continue
		}
		s.imported += int64(len(b.events) - len(res.Blocked))
		for _, bl := range res.Blocked {
			s.blocked++
			if len(s.errs) < maxErrors && bl.Index >= 0 && bl.Index < len(b.lines) {
				s.errs = append(s.errs, LineError{Line: b.lines[bl.Index], Err: fmt.Errorf("blocked by a tracking plan: %s", bl.Reason)})
			}
		}
	}
	return s
}
