package ja4

import (
	"fmt"
	"net"
	"sync"
)

// MaxHello bounds the bytes a Conn records while it waits for a
// ClientHello: four full TLS records, far above any real hello (a browser's
// with post-quantum key shares is under 2 KiB).
const MaxHello = 4 * (5 + 1<<14)

// HandshakeFromRecords returns the first handshake message carried by the
// TLS records at the start of stream, which must be a ClientHello.
// complete is false, with a nil error, while stream ends before the
// message does. When the message sits in one record the result aliases
// stream; when it spans records it is a new slice.
func HandshakeFromRecords(stream []byte) (msg []byte, complete bool, err error) {
	var joined []byte // set once the message spans records
	need := -1        // handshake message length, once the header is read
	have := 0
	for len(stream) > 0 {
		if len(stream) < 5 {
			return nil, false, nil
		}
		if stream[0] != 22 { // handshake
			if have == 0 {
				return nil, false, fmt.Errorf("%w: record type %d, first bytes %q", ErrNotClientHello, stream[0], head(stream))
			}
			return nil, false, fmt.Errorf("%w: record type %d inside the ClientHello", ErrMalformed, stream[0])
		}
		if stream[1] != 3 {
			return nil, false, fmt.Errorf("%w: record version %d.%d", ErrNotClientHello, stream[1], stream[2])
		}
		n := int(stream[3])<<8 | int(stream[4])
		if n == 0 || n > 1<<14+2048 {
			return nil, false, fmt.Errorf("%w: record length %d", ErrMalformed, n)
		}
		if len(stream) < 5+n {
			return nil, false, nil
		}
		frag := stream[5 : 5+n]
		stream = stream[5+n:]
		if have == 0 && joined == nil && len(frag) >= 4 {
			if frag[0] != 1 {
				return nil, false, fmt.Errorf("%w: handshake type %d", ErrNotClientHello, frag[0])
			}
			need = 4 + (int(frag[1])<<16 | int(frag[2])<<8 | int(frag[3]))
			if len(frag) >= need {
				return frag[:need:need], true, nil
			}
		}
		joined = append(joined, frag...)
		have = len(joined)
		if need < 0 && have >= 4 {
			if joined[0] != 1 {
				return nil, false, fmt.Errorf("%w: handshake type %d", ErrNotClientHello, joined[0])
			}
			need = 4 + (int(joined[1])<<16 | int(joined[2])<<8 | int(joined[3]))
		}
		if need >= 0 && have >= need {
			if need > MaxHello {
				return nil, false, fmt.Errorf("%w: ClientHello of %d bytes", ErrMalformed, need)
			}
			return joined[:need:need], true, nil
		}
	}
	return nil, false, nil
}

func head(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

// Conn is a server-side net.Conn that records the bytes it reads until they
// hold a whole ClientHello, so that the JA4 of the client can be computed.
// Hand it to tls.Server, or accept it from a Listener; crypto/tls hands it
// back as tls.ClientHelloInfo.Conn in GetConfigForClient and
// GetCertificate, where the ClientHello has been read in full:
//
//	GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
//		if c, ok := hi.Conn.(*ja4.Conn); ok {
//			fp, err := c.JA4() // "t13d1516h2_8daaf6152771_e5627efa2ab1"
//			…
//		}
//		return nil, nil
//	}
//
// Recording stops once the hello is complete, or at MaxHello bytes, or at
// the first bytes that are not a TLS handshake; reading then costs nothing
// more than the wrapped Read.
type Conn struct {
	net.Conn

	mu    sync.Mutex
	buf   []byte // bytes read so far, while recording
	done  bool
	hello []byte // the ClientHello message, once complete
	err   error  // why recording stopped without a hello
	fp    string // cached JA4
}

// NewConn wraps c.
func NewConn(c net.Conn) *Conn { return &Conn{Conn: c} }

// Read reads from the wrapped connection and records what it read until
// the ClientHello is complete.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if !c.done {
			c.record(p[:n])
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *Conn) record(p []byte) {
	c.buf = append(c.buf, p...)
	msg, complete, err := HandshakeFromRecords(c.buf)
	switch {
	case err != nil:
		c.done, c.err, c.buf = true, err, nil
	case complete:
		// Keep a copy of the message alone; drop the record buffer.
		c.done, c.hello, c.buf = true, append([]byte(nil), msg...), nil
	case len(c.buf) >= MaxHello:
		c.done, c.err, c.buf = true, fmt.Errorf("%w: no complete ClientHello in the first %d bytes", ErrMalformed, MaxHello), nil
	}
}

// ClientHello returns the recorded ClientHello handshake message (header
// included), or nil while it is incomplete or when the client sent none.
// The caller must not modify it.
func (c *Conn) ClientHello() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello
}

// JA4 returns the JA4 of the recorded ClientHello, computed once.
func (c *Conn) JA4() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.fp != "":
		return c.fp, nil
	case c.hello != nil:
		fp, err := Fingerprint(c.hello)
		if err != nil {
			return "", err
		}
		c.fp = fp
		return fp, nil
	case c.err != nil:
		return "", c.err
	}
	return "", fmt.Errorf("%w: the ClientHello has not been read yet", ErrTruncated)
}

// Listener wraps every accepted connection in a Conn.
type Listener struct {
	net.Listener
}

// NewListener returns l with its connections wrapped in Conn; pass it to
// tls.NewListener.
func NewListener(l net.Listener) *Listener { return &Listener{Listener: l} }

// Accept waits for the next connection and wraps it.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewConn(c), nil
}

var (
	_ net.Conn     = (*Conn)(nil)
	_ net.Listener = (*Listener)(nil)
)
