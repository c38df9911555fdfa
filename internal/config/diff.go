package config

import (
	"reflect"
	"strings"
)

// Changed returns the keys whose values differ between a and b, in file
// order, as dotted paths of the YAML keys ("dns.listen", "dns.rrl.slip").
// Lists and maps are compared whole and named by their key.
func Changed(a, b Config) []string {
	var out []string
	changed(reflect.ValueOf(a), reflect.ValueOf(b), "", &out)
	return out
}

func changed(a, b reflect.Value, path string, out *[]string) {
	if a.Kind() != reflect.Struct {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
		return
	}
	t := a.Type()
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if path != "" {
			key = path + "." + tag
		}
		changed(a.Field(i), b.Field(i), key, out)
	}
}
