package jsonbody

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name string `json:"name"`
	}
	for in, want := range map[string]string{
		`{"name":"a"}`:            "",
		``:                        "request body: empty, want a JSON object",
		`{"name":"a","x":1}`:      `request body: unknown field "x"`,
		`{"name":"a"} {"name":1}`: "request body: data after the JSON object",
		`{"name":1}`:              "request body: cannot unmarshal number into Go struct field body.name of type string",
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
