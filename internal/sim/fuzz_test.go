package sim

import (
	"strings"
	"testing"
)

// FuzzParseShares feeds --families values: no panic, and what parses is
// one lower-case family per comma-separated part.
func FuzzParseShares(f *testing.F) {
	for _, s := range []string{"waledac=0.8,conficker=0.1,rustock=0.1", "waledac", " Rustock = 2 ,", "a=b=c", "=1", ",,", "waledac=NaN", "x=1e309"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		shares, err := ParseShares(s)
		if err != nil {
			return
		}
		parts := 0
		for _, p := range strings.Split(s, ",") {
			if strings.TrimSpace(p) != "" {
				parts++
			}
		}
		if len(shares) != parts {
			t.Fatalf("%q: %d shares of %d parts", s, len(shares), parts)
		}
		for _, sh := range shares {
			if sh.Family != strings.ToLower(sh.Family) {
				t.Fatalf("%q: family %q", s, sh.Family)
			}
		}
		// New rejects what is not a family and share it knows.
		familyWeights(shares) //nolint:errcheck // only must not panic
	})
}
