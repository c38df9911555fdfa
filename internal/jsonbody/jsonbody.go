// Package jsonbody reads the JSON object of a request body strictly, the
// same way for the API and the dashboard: unknown fields, an empty body and
// anything after the object are refused, with a message that says which.
package jsonbody

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"
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
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		var pe *time.ParseError
		switch {
		case errors.As(err, &pe):
			return &Error{fmt.Sprintf("request body: time %q is not RFC 3339, e.g. 2010-02-22T15:04:05Z", pe.Value)}
		case errors.As(err, &te) && te.Field == "":
			return &Error{"request body: want a JSON object, not " + article(te.Value)}
		case errors.As(err, &te):
			return &Error{fmt.Sprintf("request body: field %q: want %s, not %s", fieldPath(te.Field), kindOf(te.Type), article(te.Value))}
		case errors.As(err, &se):
			return &Error{fmt.Sprintf("request body: not JSON (byte %d): %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))}
		}
		return &Error{"request body: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if dec.More() {
		return &Error{"request body: data after the JSON object"}
	}
	return nil
}

// fieldPath is UnmarshalTypeError.Field as the client wrote it: without
// the Go names of embedded structs ("NewCase.name" is "name"), which are
// capitalised where the keys of the bodies are snake_case.
func fieldPath(f string) string {
	parts := strings.Split(f, ".")
	keep := parts[:0]
	for i, p := range parts {
		if i < len(parts)-1 && p != "" && 'A' <= p[0] && p[0] <= 'Z' {
			continue
		}
		keep = append(keep, p)
	}
	return strings.Join(keep, ".")
}

// article names a JSON value of UnmarshalTypeError.Value ("string",
// "number 1.5", "array", …) for a message: "a string", "the number 1.5".
func article(v string) string {
	switch {
	case strings.HasPrefix(v, "number "):
		return "the " + v
	case v == "array" || v == "object":
		return "an " + v
	case v == "bool":
		return "true or false"
	}
	return "a " + v
}

// kindOf says in JSON's words what a Go type takes.
func kindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a whole number ≥ 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
