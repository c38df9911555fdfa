package cli

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The --json output is for scripts, and every command's follows the same
// rules (README, "JSON output"):
//
//   - keys are snake_case, as the API's: a field's json tag when it has
//     one, else its Go name in snake case (ASName → as_name, IPs → ips);
//   - absent values are left out: nil pointers, slices and maps, zero
//     times, the empty strings of untagged fields, and what a tag's
//     omitempty or omitzero leaves out;
//   - a struct's fields keep their order; map keys are sorted.
//
// writeJSON encodes v by these rules, with reflection, so that a type
// shared with the store or the registry that has no json tags of its own
// still prints as the API prints it.

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	timeType      = reflect.TypeFor[time.Time]()
)

func writeJSON(w io.Writer, v any) error {
	var raw bytes.Buffer
	if err := encodeScript(&raw, reflect.ValueOf(v)); err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw.Bytes(), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// encodeScript writes v's JSON to b.
func encodeScript(b *bytes.Buffer, v reflect.Value) error {
	if !v.IsValid() {
		b.WriteString("null")
		return nil
	}
	t := v.Type()
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface &&
		(t.Implements(jsonMarshaler) || t.Implements(textMarshaler) ||
			reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshaler)) {
		// The type says how it is written (time.Time, netip.Addr, …).
		p := reflect.New(t)
		p.Elem().Set(v)
		return marshalStd(b, p.Interface())
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		return encodeScript(b, v.Elem())
	case reflect.Struct:
		return encodeStruct(b, v)
	case reflect.Map:
		return encodeMap(b, v)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return marshalStd(b, v.Interface()) // base64, as encoding/json
		}
		if v.IsNil() {
			b.WriteString("[]")
			return nil
		}
		fallthrough
	case reflect.Array:
		b.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := encodeScript(b, v.Index(i)); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	}
	return marshalStd(b, v.Interface())
}

func marshalStd(b *bytes.Buffer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b.Write(data)
	return nil
}

// encodeStruct writes a struct's fields, embedded structs' fields in line
// as encoding/json does; a name met twice keeps its first value.
func encodeStruct(b *bytes.Buffer, v reflect.Value) error {
	b.WriteByte('{')
	seen := map[string]bool{}
	if err := encodeFields(b, v, seen); err != nil {
		return err
	}
	b.WriteByte('}')
	return nil
}

func encodeFields(b *bytes.Buffer, v reflect.Value, seen map[string]bool) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		fv := v.Field(i)
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if ft.Kind() == reflect.Struct && !ft.Implements(jsonMarshaler) && !reflect.PointerTo(ft).Implements(jsonMarshaler) {
				if err := encodeFields(b, fv, seen); err != nil {
					return err
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = snakeCase(f.Name)
		}
		if seen[name] || absent(fv, hasTag, slices.Contains(strings.Split(opts, ","), "omitempty")) ||
			slices.Contains(strings.Split(opts, ","), "omitzero") && isZero(fv) {
			continue
		}
		seen[name] = true
		if len(seen) > 1 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(name)
		b.Write(key)
		b.WriteByte(':')
		if slices.Contains(strings.Split(opts, ","), "string") {
			// ,string quotes a number or bool, as encoding/json does.
			if err := marshalStd(b, fmt.Sprint(fv.Interface())); err != nil {
				return err
			}
			continue
		}
		if err := encodeScript(b, fv); err != nil {
			return err
		}
	}
	return nil
}

// absent reports whether a field is left out: nil, a zero time, an empty
// string of an untagged field, or empty under omitempty.
func absent(v reflect.Value, tagged, omitempty bool) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
		if v.IsNil() {
			return true
		}
	case reflect.String:
		if !tagged && v.Len() == 0 {
			return true
		}
	}
	if v.Type() == timeType && v.Interface().(time.Time).IsZero() {
		return true
	}
	if v.Kind() == reflect.Pointer && v.Elem().Type() == timeType && v.Elem().Interface().(time.Time).IsZero() {
		return true
	}
	if omitempty {
		switch v.Kind() {
		case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
			return v.Len() == 0
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
			reflect.Float32, reflect.Float64:
			return v.IsZero()
		}
	}
	return false
}

// isZero is omitzero's test, as encoding/json's: the value's IsZero
// method if it has one, else the zero value of its type.
func isZero(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return true
		}
		return z.IsZero()
	}
	return v.IsZero()
}

// encodeMap writes a map with its keys sorted, as encoding/json does.
func encodeMap(b *bytes.Buffer, v reflect.Value) error {
	if v.IsNil() {
		b.WriteString("{}")
		return nil
	}
	type kv struct {
		k string
		v reflect.Value
	}
	var kvs []kv
	iter := v.MapRange()
	for iter.Next() {
		k, err := mapKey(iter.Key())
		if err != nil {
			return err
		}
		kvs = append(kvs, kv{k, iter.Value()})
	}
	slices.SortFunc(kvs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	b.WriteByte('{')
	for i, p := range kvs {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(p.k)
		b.Write(key)
		b.WriteByte(':')
		if err := encodeScript(b, p.v); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

func mapKey(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
		t, err := tm.MarshalText()
		return string(t), err
	}
	switch k.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), nil
	}
	return "", fmt.Errorf("json: map key of type %s", k.Type())
}

// snakeCase turns a Go field name into a JSON key: FirstSeen → first_seen,
// ASName → as_name, HostID → host_id, IPs → ips, SHA256 → sha256.
func snakeCase(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if i > 0 && unicode.IsUpper(c) {
			prev := r[i-1]
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			// "IPs", "ASNs": a plural s after an acronym stays with it.
			plural := nextLower && r[i+1] == 's' && (i+2 == len(r) || unicode.IsUpper(r[i+2]))
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower && !plural) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
