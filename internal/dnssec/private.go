package dnssec

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// ErrKeyFile is wrapped by every error about the content of a private key
// file.
var ErrKeyFile = errors.New("not a DNSSEC private key file")

// maxKeyFile bounds a private key file: BIND's are under 400 bytes.
const maxKeyFile = 16 << 10

// ParsePrivate reads a private key file in BIND's format ("Private-key-
// format: v1.2" or "v1.3", what dnssec-keygen writes) of algorithm 13 or
// 15, and returns the algorithm and the key. Lines other than the format,
// the algorithm and the private key (BIND's timing lines: Created, Publish,
// Activate…) are read and left. An error names file and line.
func ParsePrivate(data []byte, file string) (alg uint8, key crypto.Signer, err error) {
	fail := func(line int, format string, args ...any) (uint8, crypto.Signer, error) {
		where := file
		if line > 0 {
			where += ":" + strconv.Itoa(line)
		}
		return 0, nil, fmt.Errorf("dnssec: %s: %s: %w", where, fmt.Sprintf(format, args...), ErrKeyFile)
	}
	if len(data) > maxKeyFile {
		return fail(0, "%d bytes, more than a key file's %d", len(data), maxKeyFile)
	}
	var format, private string
	var fline, aline, pline int
	for i, raw := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		line := strings.TrimSpace(string(bytes.TrimSuffix(raw, []byte("\r"))))
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return fail(n, "%q is not a \"Name: value\" line", cut(line))
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		switch k {
		case "private-key-format":
			if fline > 0 {
				return fail(n, "a second Private-key-format (the first on line %d)", fline)
			}
			if v != "v1.2" && v != "v1.3" {
				return fail(n, "Private-key-format %q: want v1.2 or v1.3", cut(v))
			}
			format, fline = v, n
		case "algorithm":
			if aline > 0 {
				return fail(n, "a second Algorithm (the first on line %d)", aline)
			}
			num, _, _ := strings.Cut(v, " ")
			a, err := strconv.ParseUint(num, 10, 8)
			if err != nil {
				return fail(n, "Algorithm %q is not a number", cut(v))
			}
			if uint8(a) != ECDSAP256SHA256 && uint8(a) != ED25519 {
				return fail(n, "algorithm %d: takedown signs with 13 (ECDSAP256SHA256) or 15 (ED25519)", a)
			}
			alg, aline = uint8(a), n
		case "privatekey":
			if pline > 0 {
				return fail(n, "a second PrivateKey (the first on line %d)", pline)
			}
			private, pline = v, n
		}
	}
	switch {
	case format == "":
		return fail(0, "no Private-key-format line")
	case aline == 0:
		return fail(0, "no Algorithm line")
	case pline == 0:
		return fail(0, "no PrivateKey line")
	}
	raw, err := base64.StdEncoding.DecodeString(private)
	if err != nil {
		return fail(pline, "PrivateKey is not base64: %v", err)
	}
	if key, err = SignerOf(alg, raw); err != nil {
		return fail(pline, "PrivateKey: %v", err)
	}
	return alg, key, nil
}

// SignerOf returns the private key of algorithm alg whose raw form is raw:
// the 32-byte scalar of ECDSA P-256, the 32-byte seed of Ed25519 (what
// PrivateBytes returns, and BIND's PrivateKey line holds).
func SignerOf(alg uint8, raw []byte) (crypto.Signer, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("%d bytes, want 32 for algorithm %d", len(raw), alg)
	}
	switch alg {
	case ED25519:
		return ed25519.NewKeyFromSeed(raw), nil
	case ECDSAP256SHA256:
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("not a P-256 private key: %v", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("algorithm %d: want 13 (ECDSAP256SHA256) or 15 (ED25519)", alg)
}

// PrivateBytes returns the raw form of k's private key (see SignerOf).
func (k *Key) PrivateBytes() ([]byte, error) {
	switch p := k.Signer.(type) {
	case ed25519.PrivateKey:
		return p.Seed(), nil
	case *ecdsa.PrivateKey:
		return p.Bytes()
	}
	return nil, fmt.Errorf("dnssec: key %d: a %T is not a private key of algorithm 13 or 15", k.Tag(), k.Signer)
}

// FormatPrivate returns the private key file of k, as dnssec-keygen writes
// it (Private-key-format v1.3).
func FormatPrivate(k *Key) ([]byte, error) {
	if k.Signer == nil {
		return nil, errors.New("dnssec: a key without its private part")
	}
	return []byte(k.DNSKEY(".", 0).PrivateKeyString(k.Signer)), nil
}

// PublicKeyOf returns the public key of signer as a DNSKEY of algorithm
// alg holds it, in base64.
func PublicKeyOf(alg uint8, signer crypto.Signer) (string, error) {
	switch pub := signer.Public().(type) {
	case ed25519.PublicKey:
		if alg == ED25519 {
			return base64.StdEncoding.EncodeToString(pub), nil
		}
	case *ecdsa.PublicKey:
		if alg == ECDSAP256SHA256 && pub.Curve == elliptic.P256() {
			e, err := pub.ECDH()
			if err != nil {
				return "", fmt.Errorf("dnssec: %w", err)
			}
			// The uncompressed point without its 0x04: X and Y (RFC 6605).
			return base64.StdEncoding.EncodeToString(e.Bytes()[1:]), nil
		}
	}
	return "", fmt.Errorf("dnssec: a %T is not a key of algorithm %d", signer.Public(), alg)
}

// NewKey makes a key of algorithm alg (13 or 15), in state published and
// not yet dated.
func NewKey(alg uint8) (*Key, error) {
	var signer crypto.Signer
	var err error
	switch alg {
	case ECDSAP256SHA256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ED25519:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("dnssec: algorithm %d: want 13 (ECDSAP256SHA256) or 15 (ED25519)", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("dnssec: making a key: %w", err)
	}
	return keyOf(alg, signer)
}

// ReadKey returns the key of a private key file (ParsePrivate), published
// and not yet dated.
func ReadKey(data []byte, file string) (*Key, error) {
	alg, signer, err := ParsePrivate(data, file)
	if err != nil {
		return nil, err
	}
	return keyOf(alg, signer)
}

// keyOf is the key of signer, published and not yet dated.
func keyOf(alg uint8, signer crypto.Signer) (*Key, error) {
	pub, err := PublicKeyOf(alg, signer)
	if err != nil {
		return nil, err
	}
	return &Key{Algorithm: alg, Flags: FlagsCSK, PublicKey: pub, Signer: signer, State: StatePublished}, nil
}

// AlgorithmName is the mnemonic of a DNSSEC algorithm ("ECDSAP256SHA256").
func AlgorithmName(alg uint8) string {
	if s, ok := dns.AlgorithmToString[alg]; ok {
		return s
	}
	return strconv.Itoa(int(alg))
}

// cut shortens s for an error message.
func cut(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}
