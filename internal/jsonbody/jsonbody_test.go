package jsonbody

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name string    `json:"name"`
		N    uint      `json:"n"`
		Tags []string  `json:"tags"`
		At   time.Time `json:"at"`
	}
	for in, want := range map[string]string{
		`{"name":"a"}`:            "",
		``:                        "request body: empty, want a JSON object",
		`{"name":"a","x":1}`:      `request body: unknown field "x"`,
		`{"name":"a"} {"name":1}`: "request body: data after the JSON object",
		`{"name":1}`:              `request body: field "name": want a string, not a number`,
		`{"at":"2026-01-01"}`:     `request body: time "2026-01-01" is not RFC 3339, e.g. 2010-02-22T15:04:05Z`,
		`{"n":-1}`:                `request body: field "n": want a whole number ≥ 0, not the number -1`,
		`{"tags":{}}`:             `request body: field "tags": want an array, not an object`,
		`"a"`:                     "request body: want a JSON object, not a string",
		`[1]`:                     "request body: want a JSON object, not an array",
		`{"name":`:                "request body: unexpected EOF",
		`{name:1}`:                "request body: not JSON (byte 2): invalid character 'n' looking for beginning of object key string",
	} {
		var b body
		err := Decode(strings.NewReader(in), &b)
		var bad *Error
		switch {
		case want == "" && (err != nil || b.Name != "a"):
			t.Errorf("%q: %v, %+v", in, err, b)
		case want != "" && (!errors.As(err, &bad) || bad.Msg != want):
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
	// Over a MaxBytesReader limit: the limit's own error, for a 413.
	rec := httptest.NewRecorder()
	r := http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(`{"name":"`+strings.Repeat("a", 100)+`"}`)), 10)
	var tooBig *http.MaxBytesError
	if err := Decode(r, &body{}); !errors.As(err, &tooBig) {
		t.Errorf("over the limit: %v", err)
	}
}

// FuzzDecode: any body is decoded or refused with an *Error (never a
// panic), and a refusal's message names the request body.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{``, `{"name":"a"}`, `{"name":1}`, `"a"`, `[1]`, `{"n":-1}`, `{"tags":{}}`, `{name:1}`, `{"name":"a"} x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var b struct {
			Name string   `json:"name"`
			N    uint     `json:"n"`
			Tags []string `json:"tags"`
		}
		err := Decode(strings.NewReader(in), &b)
		var bad *Error
		if err != nil && (!errors.As(err, &bad) || !strings.HasPrefix(bad.Msg, "request body: ")) {
			t.Fatalf("%q: %v", in, err)
		}
	})
}
