package fileimport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/valyala/fastjson"
)

// record is one row of a file. It is valid until the reader's next call.
type record struct {
	// line is the line the record starts on, counted from 1.
	line int
	// raw is its text without the final line break.
	raw []byte
	// fields are its columns, for the text formats.
	fields [][]byte
	// obj is its object, for jsonl.
	obj *fastjson.Value
}

// reader reads a file as records: lines for most formats, several lines for
// a CSV record with a quoted line break.
type reader struct {
	br        *bufio.Reader
	format    Format
	delimiter byte
	comment   []byte
	max       int

	line   int    // physical lines read
	long   []byte // a line longer than br's buffer
	multi  []byte // a record of several lines
	rec    record
	fields [][]byte
	csv    csvSplitter
	jp     fastjson.Parser
}

func newReader(r io.Reader, m *Mapping, max int) *reader {
	return &reader{
		br:        bufio.NewReaderSize(r, 64<<10),
		format:    m.format,
		delimiter: m.delimiter,
		comment:   []byte(m.comment),
		max:       max,
	}
}

// next returns the next record, skipping blank and comment lines. At the end
// of the file it returns io.EOF. A record that cannot be split is returned
// with a *LineError (the record is still set, for its line and raw text);
// any other error is the file's.
func (r *reader) next() (*record, error) {
	for {
		b, long, err := r.readLine()
		if err != nil {
			return nil, err
		}
		r.rec = record{line: r.line, raw: b}
		if long {
			return &r.rec, &LineError{Line: r.line, Err: fmt.Errorf("is longer than %d bytes", r.max)}
		}
		trimmed := bytes.TrimLeft(b, " \t")
		if len(bytes.TrimSpace(trimmed)) == 0 || (len(r.comment) > 0 && bytes.HasPrefix(trimmed, r.comment)) {
			continue
		}
		switch r.format {
		case Whitespace:
			r.fields = splitWhitespace(r.fields[:0], b)
			r.rec.fields = r.fields
		case JSONL:
			v, err := r.jp.ParseBytes(b)
			if err != nil {
				return &r.rec, &LineError{Line: r.line, Err: jsonSyntaxError(b, err)}
			}
			if v.Type() != fastjson.TypeObject {
				return &r.rec, &LineError{Line: r.line, Err: fmt.Errorf("expected a JSON object, got %s", v.Type())}
			}
			r.rec.obj = v
		default:
			return r.nextCSV(b)
		}
		return &r.rec, nil
	}
}

// nextCSV splits a CSV or TSV record that starts with line b, reading more
// lines while a quoted field is open.
func (r *reader) nextCSV(b []byte) (*record, error) {
	start := r.line
	fields, open, col := r.csv.split(b, r.delimiter)
	if open {
		r.multi = append(r.multi[:0], b...) // reading on overwrites b
	}
	for open {
		next, long, err := r.readLine()
		if errors.Is(err, io.EOF) {
			r.rec.raw = r.multi
			return &r.rec, &LineError{Line: start, Err: errors.New("a quoted field is not closed at the end of the file")}
		}
		if err != nil {
			return nil, err
		}
		if long || len(r.multi)+1+len(next) > r.max {
			r.rec.raw = r.multi
			return &r.rec, &LineError{Line: start, Err: fmt.Errorf("is longer than %d bytes: is a quote not closed?", r.max)}
		}
		r.multi = append(append(r.multi, '\n'), next...)
		b = r.multi
		fields, open, col = r.csv.split(b, r.delimiter)
	}
	r.rec.raw = b
	if col > 0 {
		return &r.rec, &LineError{Line: start, Column: fmt.Sprintf("$%d", col), Err: errors.New("text after the closing quote of a quoted field")}
	}
	r.rec.fields = fields
	return &r.rec, nil
}

// readLine returns the next line without its line break (\n or \r\n); a line
// longer than r.max is cut there and reported as long. At the end of the
// file it returns io.EOF.
func (r *reader) readLine() (line []byte, long bool, err error) {
	b, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.long = append(r.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = r.br.ReadSlice('\n')
			if room := r.max + 2 - len(r.long); room > 0 {
				r.long = append(r.long, b[:min(room, len(b))]...)
			} else {
				long = true
			}
		}
		b = r.long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("reading line %d: %w", r.line+1, err)
	}
	if len(b) == 0 {
		return nil, false, io.EOF
	}
	r.line++
	b = bytes.TrimSuffix(b, []byte{'\n'})
	b = bytes.TrimSuffix(b, []byte{'\r'})
	if r.line == 1 {
		b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	}
	if len(b) > r.max {
		b, long = b[:r.max], true
	}
	return b, long, nil
}

// splitWhitespace appends the fields of line, separated by runs of ASCII
// spaces and tabs (and carriage returns), to dst. The fields alias line.
func splitWhitespace(dst [][]byte, line []byte) [][]byte {
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return dst
		}
		j := i
		for j < len(line) && !isSpace(line[j]) {
			j++
		}
		dst = append(dst, line[i:j:j])
		i = j
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// csvSplitter splits CSV records (RFC 4180), reusing its buffers.
type csvSplitter struct {
	buf    []byte // the fields' contents, unquoted
	ends   []int
	fields [][]byte
}

// split splits record (one line, or several joined by \n) at delim. A field
// that starts with a quote is quoted: it ends at the next lone quote, and ""
// inside it is a quote; elsewhere a quote is an ordinary character. open
// reports a quoted field still open at the end of record (it continues on
// the next line); col, when not 0, is the 1-based column of a quoted field
// followed by something other than delim. The fields are valid until the
// next call.
func (s *csvSplitter) split(record []byte, delim byte) (fields [][]byte, open bool, col int) {
	s.buf, s.ends = s.buf[:0], s.ends[:0]
	i := 0
	for {
		if i < len(record) && record[i] == '"' {
			i++
			for {
				j := bytes.IndexByte(record[i:], '"')
				if j < 0 {
					return nil, true, 0
				}
				s.buf = append(s.buf, record[i:i+j]...)
				i += j + 1
				if i < len(record) && record[i] == '"' {
					s.buf = append(s.buf, '"')
					i++
					continue
				}
				break
			}
			if i < len(record) && record[i] != delim {
				return nil, false, len(s.ends) + 1
			}
		} else {
			j := bytes.IndexByte(record[i:], delim)
			if j < 0 {
				j = len(record) - i
			}
			s.buf = append(s.buf, record[i:i+j]...)
			i += j
		}
		s.ends = append(s.ends, len(s.buf))
		if i >= len(record) {
			break
		}
		i++ // the delimiter
	}
	s.fields = s.fields[:0]
	start := 0
	for _, end := range s.ends {
		s.fields = append(s.fields, s.buf[start:end:end])
		start = end
	}
	return s.fields, false, 0
}

// jsonSyntaxError locates a fastjson parse error with encoding/json, which
// reports offsets; it runs only on bad lines. The offset is that of the
// first byte that makes the line invalid, counted from 0 (the line's length
// when it ends too early), as schemas.SyntaxError counts it.
func jsonSyntaxError(line []byte, perr error) error {
	var v any
	err := json.Unmarshal(line, &v)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return fmt.Errorf("malformed JSON: %v", perr)
	}
	off := se.Offset
	if !strings.HasPrefix(se.Error(), "unexpected end") && off > 0 {
		off-- // encoding/json counts the offending byte as read
	}
	return fmt.Errorf("malformed JSON at byte %d: %s", off, se.Error())
}
