package ja4

import "testing"

// BenchmarkJA4 fingerprints Chrome's ClientHello of tls-handshake.pcapng.
func BenchmarkJA4(b *testing.B) {
	var msg []byte
	for _, v := range loadVectors(b) {
		if v.ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1" {
			msg = v.msg
		}
	}
	b.Run("hello=chrome/fingerprint", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if _, err := Fingerprint(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hello=chrome/reuse", func(b *testing.B) {
		b.ReportAllocs()
		var h ClientHello
		for b.Loop() {
			if err := h.Unmarshal(msg); err != nil {
				b.Fatal(err)
			}
			_ = h.JA4(TCP)
		}
	})
	stream := records(msg, 1<<14)
	b.Run("hello=chrome/records", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, _, err := HandshakeFromRecords(stream)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Fingerprint(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
