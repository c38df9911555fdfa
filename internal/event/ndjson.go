package event

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// MaxJSONLine is the longest line, newline excluded, that JSONReader reads.
const MaxJSONLine = 1 << 20

// JSONWriter writes events as newline-delimited JSON (NDJSON): one
// AppendJSON object a line, the way IntelMQ's file output writes them. It
// buffers; call Flush when done. It is not safe for concurrent use.
type JSONWriter struct {
	w   *bufio.Writer
	buf []byte
}

// NewJSONWriter returns a writer to w.
func NewJSONWriter(w io.Writer) *JSONWriter {
	return &JSONWriter{w: bufio.NewWriter(w), buf: make([]byte, 0, 1024)}
}

// Write writes one event and a newline.
func (jw *JSONWriter) Write(e *Event) error {
	jw.buf = append(AppendJSON(jw.buf[:0], e), '\n')
	if _, err := jw.w.Write(jw.buf); err != nil {
		return fmt.Errorf("event json: %w", err)
	}
	return nil
}

// Flush writes what is buffered.
func (jw *JSONWriter) Flush() error {
	if err := jw.w.Flush(); err != nil {
		return fmt.Errorf("event json: %w", err)
	}
	return nil
}

// JSONReader reads newline-delimited JSON events, one object a line, as
// JSONWriter writes them. Blank lines are skipped. It is not safe for
// concurrent use.
type JSONReader struct {
	s    *bufio.Scanner
	name string
	line int
}

// NewJSONReader returns a reader of r; name labels errors (a file name).
func NewJSONReader(r io.Reader, name string) *JSONReader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), MaxJSONLine+1)
	if name == "" {
		name = "event ndjson"
	}
	return &JSONReader{s: s, name: name}
}

// Read returns the next event, or io.EOF after the last. Errors name the
// line, e.g.
//
//	hits.ndjson:7: event json: key "source.port": "http" is not a whole number from 0 to 65535
func (jr *JSONReader) Read() (Event, error) {
	for jr.s.Scan() {
		jr.line++
		line := bytes.TrimSpace(jr.s.Bytes())
		if len(line) == 0 {
			continue
		}
		e, err := DecodeJSON(line)
		if err != nil {
			return Event{}, fmt.Errorf("%s:%d: %w", jr.name, jr.line, err)
		}
		return e, nil
	}
	if err := jr.s.Err(); err != nil {
		return Event{}, fmt.Errorf("%s:%d: %w", jr.name, jr.line+1, err)
	}
	return Event{}, io.EOF
}
