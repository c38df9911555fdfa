package registry

import (
	"errors"
	"strings"
	"testing"
)

var normalizeTests = []struct {
	in, want string // want "" means an error
	errHas   string // fragment of the error
}{
	{"example.com", "example.com", ""},
	{"EXAMPLE.COM", "example.com", ""},
	{"ExAmPlE.CoM", "example.com", ""},
	{"example.com.", "example.com", ""},
	{"  example.com. \t", "example.com", ""},
	{"sub.domain.example.org", "sub.domain.example.org", ""},
	{"a1-b2.example.net", "a1-b2.example.net", ""},
	{"123.example.com", "123.example.com", ""},
	{"bücher.example", "xn--bcher-kva.example", ""},
	{"BÜCHER.EXAMPLE", "xn--bcher-kva.example", ""},
	{"Bücher.Example.", "xn--bcher-kva.example", ""},
	{"ПРИМЕР.испытание", "xn--e1afmkfd.xn--80akhbyknj4f", ""}, // an IDN TLD ICANN reserves for tests
	{"пример.ИСПЫТАНИЕ.", "xn--e1afmkfd.xn--80akhbyknj4f", ""},
	{"XN--BCHER-KVA.example", "xn--bcher-kva.example", ""},
	{"faß.example", "xn--fa-hia.example", ""},
	{"例え.test", "xn--r8jz45g.test", ""},
	{"例え。test", "xn--r8jz45g.test", ""},
	{"ｅｘａｍｐｌｅ.com", "example.com", ""},
	{strings.Repeat("a", 63) + ".com", strings.Repeat("a", 63) + ".com", ""},
	{strings.Repeat("abcdefghi.", 24) + "abcde.example", strings.Repeat("abcdefghi.", 24) + "abcde.example", ""},

	{"", "", "empty name"},
	{"   ", "", "empty name"},
	{".", "", "empty name"},
	{"example..com", "", "empty label at position 2"},
	{".example.com", "", "empty label at position 1"},
	{"example.com..", "", "empty label"},
	{strings.Repeat("a", 64) + ".com", "", "64 octets long, more than 63"},
	{strings.Repeat("abcdefghi.", 25) + "info", "", "254 octets long, more than 253"},
	{"foo_bar.example", "", `label "foo_bar" has an underscore`},
	{"_dmarc.example.com", "", "underscore"},
	{"-lead.example", "", `label "-lead" begins or ends with '-'`},
	{"trail-.example", "", "begins or ends with '-'"},
	{"ab--cd.example", "", "positions 3 and 4"},
	{"xn--zz.example", "", `label "xn--zz" is not a valid A-label`},
	{"xn--abc.example", "", "not a valid A-label"},
	{"ex ample.example", "", "character ' '"},
	{"*.example.com", "", "character '*'"},
	{"localhost", "", `single label "localhost"`},
	{"com.", "", "single label"},
	{"192.0.2.1", "", "IP address"},
	{"192.0.2.1.", "", "IP address"},
	{"2001:db8::1", "", "IP address"},
	{"[2001:db8::1]", "", "IP address"},
	{"example.123", "", `top-level domain "123" is all-numeric`},
	{"1.2.3", "", "all-numeric"},
	{"a\u200db.example", "", "not a valid internationalised label"},
	{"\xff.example", "", "UTF-8"},
	{"exa☃mple.example", "", ""}, // a snowman is allowed by IDNA2008 mapping? checked below
}

func TestNormalizeName(t *testing.T) {
	for _, tt := range normalizeTests {
		got, err := NormalizeName(tt.in)
		if tt.want == "" && tt.errHas == "" {
			// Outcome not fixed; it must be consistent.
			if err == nil {
				if again, err := NormalizeName(got); err != nil || again != got {
					t.Errorf("NormalizeName(%q) = %q, not idempotent: %q, %v", tt.in, got, again, err)
				}
			}
			continue
		}
		if tt.want != "" {
			if err != nil || got != tt.want {
				t.Errorf("NormalizeName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("NormalizeName(%q) = %q; want an error with %q", tt.in, got, tt.errHas)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("NormalizeName(%q): %v does not wrap ErrInvalid", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("NormalizeName(%q): %v; want it to contain %q", tt.in, err, tt.errHas)
		}
	}
}

func TestRegistryOf(t *testing.T) {
	for tld, want := range map[string]string{
		"com": "Verisign", "NET": "Verisign", "org": "Public Interest Registry", "info": "Identity Digital",
		"ru": "Coordination Center for TLD RU", "xn--p1ai": "Coordination Center for TLD RU",
		"cn": "CNNIC", "de": "DENIC", "uk": "Nominet", "xyz": "", "example": "",
	} {
		if got := RegistryOf(tld); got != want {
			t.Errorf("RegistryOf(%q) = %q; want %q", tld, got, want)
		}
	}
	if n := len(registries); n < 30 {
		t.Errorf("registry table has %d entries; want about 30", n)
	}
}

func FuzzNormalizeName(f *testing.F) {
	for _, tt := range normalizeTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeName(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("NormalizeName(%q): %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		for i := 0; i < len(n); i++ {
			if c := n[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
				t.Fatalf("NormalizeName(%q) = %q: byte %q outside [a-z0-9.-]", s, n, c)
			}
		}
		if len(n) > maxNameLen || !strings.Contains(n, ".") || strings.HasSuffix(n, ".") {
			t.Fatalf("NormalizeName(%q) = %q: bad shape", s, n)
		}
		again, err := NormalizeName(n)
		if err != nil || again != n {
			t.Fatalf("NormalizeName(%q) = %q, but NormalizeName(%q) = %q, %v", s, n, n, again, err)
		}
	})
}
