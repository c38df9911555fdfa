package ja4

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
)

type vector struct {
	name                   string
	ja4, ja4r, ja4o, ja4ro string
	msg                    []byte
}

// loadVectors reads testdata/foxio-vectors.txt; see its header.
func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	f, err := os.Open("testdata/foxio-vectors.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	var vs []vector
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "# ") || !strings.Contains(lines[i], ":") || i+2 >= len(lines) || strings.HasPrefix(lines[i+1], "#") {
			continue
		}
		fp := strings.Fields(lines[i+1])
		msg, err := hex.DecodeString(lines[i+2])
		if len(fp) != 4 || err != nil {
			tb.Fatalf("testdata/foxio-vectors.txt:%d: bad vector", i+2)
		}
		vs = append(vs, vector{name: strings.Fields(lines[i])[1] + " " + strings.Fields(lines[i])[2], ja4: fp[0], ja4r: fp[1], ja4o: fp[2], ja4ro: fp[3], msg: msg})
		i += 2
	}
	if len(vs) < 5 {
		tb.Fatalf("only %d vectors", len(vs))
	}
	return vs
}

func TestFoxIOVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			h, err := Parse(v.msg)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ kind, got, want string }{
				{"JA4", h.JA4(TCP), v.ja4},
				{"JA4_r", h.JA4R(TCP), v.ja4r},
				{"JA4_o", h.JA4O(TCP), v.ja4o},
				{"JA4_ro", h.JA4RO(TCP), v.ja4ro},
			} {
				if c.got != c.want {
					t.Errorf("%s\n got %s\nwant %s", c.kind, c.got, c.want)
				}
			}
			fp, err := Fingerprint(v.msg)
			if err != nil || fp != v.ja4 {
				t.Errorf("Fingerprint = %q, %v; want %q", fp, err, v.ja4)
			}
		})
	}
}

// records splits msg into TLS handshake records of at most size bytes.
func records(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, 22, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func TestHandshakeFromRecords(t *testing.T) {
	v := loadVectors(t)[0]
	for _, size := range []int{1, 3, 4, 5, 100, 1 << 14} {
		stream := records(v.msg, size)
		stream = append(stream, 23, 3, 3, 0, 1, 0) // whatever follows
		for cut := 0; cut < len(stream); cut += max(1, len(stream)/50) {
			msg, complete, err := HandshakeFromRecords(stream[:cut])
			if err != nil {
				t.Fatalf("size %d cut %d: %v", size, cut, err)
			}
			if complete && !bytes.Equal(msg, v.msg) {
				t.Fatalf("size %d cut %d: wrong message", size, cut)
			}
		}
		msg, complete, err := HandshakeFromRecords(stream)
		if err != nil || !complete || !bytes.Equal(msg, v.msg) {
			t.Fatalf("size %d: complete=%v err=%v", size, complete, err)
		}
	}
	for _, bad := range []string{"GET / HTTP/1.1\r\n\r\n", "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "\x80\x2e\x01\x00\x02", "\x16\x03\x01\x00\x00"} {
		if _, _, err := HandshakeFromRecords([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseTruncated(t *testing.T) {
	v := loadVectors(t)[0]
	for n := 0; n < len(v.msg); n++ {
		msg := append([]byte(nil), v.msg[:n]...)
		if _, err := Parse(msg); err == nil {
			t.Fatalf("%d of %d bytes: no error", n, len(v.msg))
		} else if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("%d bytes: %v is not ErrTruncated or ErrMalformed", n, err)
		}
	}
	if _, err := Parse([]byte{2, 0, 0, 0}); !errors.Is(err, ErrNotClientHello) {
		t.Errorf("server hello: %v", err)
	}
}

func TestALPNCode(t *testing.T) {
	// The examples of technical_details/JA4.md.
	for _, c := range []struct {
		alpn string
		want string
	}{
		{"", "00"}, {"h2", "h2"}, {"http/1.1", "h1"}, {"h", "hh"},
		{"\xab", "ab"}, {"\x20", "20"}, {"\xab\xcd", "ad"}, {"\x20\x61", "21"},
		{"\x30\xab", "3b"}, {"\x61\x20", "60"}, {"\x30\x31\xab\xcd", "3d"}, {"\x30\xab\xcd\x31", "01"},
	} {
		a, b := alpnCode([]byte(c.alpn))
		if got := string([]byte{a, b}); got != c.want {
			t.Errorf("alpn %q: %q, want %q", c.alpn, got, c.want)
		}
	}
}

func TestGREASE(t *testing.T) {
	n := 0
	for v := 0; v <= 0xffff; v++ {
		if IsGREASE(uint16(v)) {
			n++
			if v&0xff != 0x0a|(v&0xf0) {
				t.Errorf("%#04x", v)
			}
		}
	}
	if n != 16 || !IsGREASE(0x0a0a) || !IsGREASE(0xfafa) || IsGREASE(0x0a1a) {
		t.Errorf("%d GREASE values", n)
	}
}

// TestEmptyLists covers the "000000000000" and no-underscore rules.
func TestEmptyLists(t *testing.T) {
	h := &ClientHello{LegacyVersion: 0x0301, HasSNI: true, Extensions: []uint16{0x0000, 0x0a0a}}
	if got, want := h.JA4(TCP), "t10d000100_000000000000_000000000000"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// No signature algorithms: the extension list alone, no underscore.
	// technical_details/JA4.md: "…,4469,ff01 = 6d807ffa2a79".
	h = &ClientHello{
		LegacyVersion: 0x0303, SupportedVersions: []uint16{0x2a2a, 0x0304, 0x0303}, HasSNI: true, ALPN: []byte("h2"),
		CipherSuites: []uint16{0x1301},
		Extensions:   []uint16{0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015},
	}
	if got := h.JA4(TCP); !strings.HasPrefix(got, "t13d0116h2_") || !strings.HasSuffix(got, "_6d807ffa2a79") {
		t.Errorf("got %s, want t13d0116h2_…_6d807ffa2a79", got)
	}
	h.SignatureAlgorithms = []uint16{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601}
	if got := h.JA4(QUIC); !strings.HasPrefix(got, "q13d0116h2_") || !strings.HasSuffix(got, "_e5627efa2ab1") {
		t.Errorf("got %s, want q13d0116h2_…_e5627efa2ab1", got)
	}
}
