package dnssec

import (
	"strings"
	"testing"
)

// bindECDSA is a private key file as dnssec-keygen 9.18 writes it.
const bindECDSA = `Private-key-format: v1.3
Algorithm: 13 (ECDSAP256SHA256)
PrivateKey: 3UehuBz737OYf85lYZX+N3XP4qR1zMBSI6Fx3HG5tlc=
Created: 20261207181414
Publish: 20261207181414
Activate: 20261207181414
`

func TestParsePrivate(t *testing.T) {
	alg, signer, err := ParsePrivate([]byte(bindECDSA), "K.private")
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyOf(alg, signer)
	// The DNSKEY that dnssec-keygen wrote beside it, keyid 31518.
	if err != nil || k.Tag() != 31518 || k.PublicKey != "XA3vCMbUzb0rFHFCeYUyACXRFMzUWp2Mxo0fEmVKxyfwEAgbu2L6cCn18o4KpqngZDQicrciWDGrBglUHVKqQg==" {
		t.Fatalf("key %d %s: %v", k.Tag(), k.PublicKey, err)
	}
	// What FormatPrivate writes reads back the same.
	for _, alg := range []uint8{13, 15} {
		k, _ := NewKey(alg)
		b, err := FormatPrivate(k)
		if err != nil {
			t.Fatal(err)
		}
		a2, s2, err := ParsePrivate(b, "x")
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		back, _ := keyOf(a2, s2)
		if back.PublicKey != k.PublicKey || a2 != alg {
			t.Errorf("algorithm %d: round trip changed the key", alg)
		}
	}
}

func TestParsePrivateErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "", "f: no Private-key-format line"},
		{"no colon", "Private-key-format: v1.3\nAlgorithm 13\n", `f:2: "Algorithm 13" is not a "Name: value" line`},
		{"format", "Private-key-format: v2.0\n", `f:1: Private-key-format "v2.0": want v1.2 or v1.3`},
		{"RSA", "Private-key-format: v1.3\nAlgorithm: 8 (RSASHA256)\n", "f:2: algorithm 8: takedown signs with 13"},
		{"algorithm", "Private-key-format: v1.3\nAlgorithm: thirteen\n", `f:2: Algorithm "thirteen" is not a number`},
		{"no key", "Private-key-format: v1.3\nAlgorithm: 13\n", "f: no PrivateKey line"},
		{"no algorithm", "Private-key-format: v1.3\nPrivateKey: AAAA\n", "f: no Algorithm line"},
		{"short", "Private-key-format: v1.3\nAlgorithm: 15\n\nPrivateKey: AAAA\n", "f:4: PrivateKey: 3 bytes, want 32 for algorithm 15"},
		{"twice", "Private-key-format: v1.3\nAlgorithm: 15\nAlgorithm: 13\n", "f:3: a second Algorithm (the first on line 2)"},
		{"zero scalar", "Private-key-format: v1.3\nAlgorithm: 13\nPrivateKey: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "f:3: PrivateKey: not a P-256 private key"},
		{"huge", strings.Repeat(";\n", maxKeyFile), "f: 32768 bytes, more than"},
	} {
		_, _, err := ParsePrivate([]byte(tc.text), "f")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// FuzzParsePrivate feeds private key files to the parser: it must not
// panic, and a key it accepts must write and read back the same.
func FuzzParsePrivate(f *testing.F) {
	f.Add([]byte(bindECDSA))
	f.Add([]byte("Private-key-format: v1.2\r\nAlgorithm: 15 (ED25519)\r\nPrivateKey: TUxKzH7/nNj7hSF1/Rr8toAFOlFImz7Bt+TqV37CLKA=\r\n"))
	f.Add([]byte("Private-key-format: v1.3\nAlgorithm: 13\nPrivateKey: AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		alg, signer, err := ParsePrivate(b, "fuzz")
		if err != nil {
			return
		}
		k, err := keyOf(alg, signer)
		if err != nil {
			t.Fatalf("a key read has no public key: %v", err)
		}
		out, err := FormatPrivate(k)
		if err != nil {
			t.Fatal(err)
		}
		a2, s2, err := ParsePrivate(out, "again")
		if err != nil {
			t.Fatalf("a key read does not read back: %v\n%s", err, out)
		}
		if back, _ := keyOf(a2, s2); a2 != alg || back.PublicKey != k.PublicKey {
			t.Fatal("the key changed in a round trip")
		}
	})
}
