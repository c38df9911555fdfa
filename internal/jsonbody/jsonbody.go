// Package jsonbody reads the JSON object of a request body strictly, the
// same way for the API and the dashboard: unknown fields, an empty body and
// anything after the object are refused, with a message that says which.
package jsonbody

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Error is a body that is not the JSON object wanted; its message is for
// the client (a 400 answer).
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// Decode reads one JSON object from r into v. A body cut off by
// http.MaxBytesReader returns its *http.MaxBytesError as is; every other
// failure is an *Error.
func Decode(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return err
		case errors.Is(err, io.EOF):
			return &Error{"request body: empty, want a JSON object"}
		}
		return &Error{"request body: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if dec.More() {
		return &Error{"request body: data after the JSON object"}
	}
	return nil
}
