package deliver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"slices"
	"strings"
	"time"
)

// class says what a failed attempt means for the delivery.
type class int

const (
	// transient: not delivered; try again (4xx, connection errors).
	transient class = iota
	// permanent: the relay refused the message (5xx to MAIL, RCPT, DATA
	// or the end of data); do not try again.
	permanent
	// stuck: the relay or the configuration is wrong (5xx before MAIL,
	// TLS or AUTH problems); trying again now does not help, but a later
	// run may.
	stuck
	// ambiguous: the end of data was sent and no answer read: the relay
	// may have accepted the message.
	ambiguous
)

func (c class) String() string {
	return [...]string{"transient", "permanent", "stuck", "ambiguous"}[c]
}

// stage names the step of the SMTP dialogue an error happened in.
type stage string

const (
	stageConnect  stage = "connect"
	stageGreeting stage = "greeting"
	stageHello    stage = "EHLO"
	stageTLS      stage = "STARTTLS"
	stageAuth     stage = "AUTH"
	stageMail     stage = "MAIL FROM"
	stageRcpt     stage = "RCPT TO"
	stageLog      stage = "delivery log"
	stageData     stage = "DATA"
	stageDataEnd  stage = "end of data"
)

// attemptError is an error of one SMTP transaction.
type attemptError struct {
	stage stage
	class class
	err   error
}

func (e *attemptError) Error() string { return fmt.Sprintf("%s: %v", e.stage, e.err) }
func (e *attemptError) Unwrap() error { return e.err }

var (
	errNoStartTLS = errors.New("the relay does not offer STARTTLS and the configuration requires it (tls: required)")
	errNoAuth     = errors.New("the relay offers no AUTH mechanism we know (PLAIN, LOGIN)")
)

// classify decides what err at stage st means.
func classify(ctx context.Context, st stage, err error) class {
	if st == stageDataEnd {
		var te *textproto.Error
		if errors.As(err, &te) {
			if te.Code >= 500 {
				return permanent
			}
			return transient
		}
		return ambiguous
	}
	if ctx.Err() != nil {
		return stuck
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		switch {
		case te.Code < 500:
			return transient
		case st == stageMail || st == stageRcpt || st == stageData:
			return permanent
		}
		return stuck
	}
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr x509.CertificateInvalidError
	switch {
	case st == stageLog, errors.Is(err, errNoStartTLS), errors.Is(err, errNoAuth), errors.Is(err, errPlaintextAuth),
		errors.As(err, &verr), errors.As(err, &uerr), errors.As(err, &herr), errors.As(err, &cerr):
		return stuck
	}
	return transient
}

// transact sends data to rcpts in one SMTP session. beforeData runs
// just before the DATA command: once it returned nil, an error at the
// end of data may mean the message was delivered. It returns the relay's
// reply to the end of data.
func (d *Deliverer) transact(ctx context.Context, from string, rcpts []string, data []byte, beforeData func() error) (string, error) {
	fail := func(st stage, err error) (string, error) {
		return "", &attemptError{stage: st, class: classify(ctx, st, err), err: err}
	}
	dialer := net.Dialer{Timeout: d.cfg.Timeout}
	conn, err := dialer.DialContext(ctx, "tcp", d.cfg.Relay)
	if err != nil {
		return fail(stageConnect, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(d.cfg.Timeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	loopback := isLoopbackAddr(conn.RemoteAddr())

	if d.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(stageTLS, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, d.host)
	if err != nil {
		return fail(stageGreeting, err)
	}
	if err := c.Hello(d.cfg.HelloName); err != nil {
		return fail(stageHello, err)
	}
	if d.cfg.TLS == TLSRequired || d.cfg.TLS == TLSOpportunistic {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(d.tls); err != nil {
				return fail(stageTLS, err)
			}
		} else if d.cfg.TLS == TLSRequired {
			c.Quit()
			return fail(stageTLS, errNoStartTLS)
		}
	}
	if d.cfg.Username != "" {
		_, mechs := c.Extension("AUTH")
		a := pickAuth(strings.Fields(strings.ToUpper(mechs)), d.cfg.Username, d.cfg.Password, loopback)
		if a == nil {
			c.Quit()
			return fail(stageAuth, errNoAuth)
		}
		if err := c.Auth(a); err != nil {
			return fail(stageAuth, err)
		}
	}
	// Not c.Mail: it declares SMTPUTF8 whenever the relay offers it, and
	// a next hop without it would bounce the (pure ASCII) message.
	mailCmd := "MAIL FROM:<%s>"
	args := []any{from}
	if ok, _ := c.Extension("SIZE"); ok {
		mailCmd += " SIZE=%d"
		args = append(args, len(data))
	}
	if _, _, err := cmd(c.Text, 250, mailCmd, args...); err != nil {
		c.Quit()
		return fail(stageMail, err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			c.Quit()
			return fail(stageRcpt, fmt.Errorf("<%s>: %w", r, err))
		}
	}
	if err := beforeData(); err != nil {
		c.Quit()
		return fail(stageLog, err)
	}
	if _, _, err := cmd(c.Text, 354, "DATA"); err != nil {
		c.Quit()
		return fail(stageData, err)
	}
	w := c.Text.DotWriter()
	if _, err := w.Write(data); err != nil {
		// The end of data was not sent: nothing was delivered.
		return fail(stageData, err)
	}
	if err := w.Close(); err != nil {
		return fail(stageDataEnd, err)
	}
	code, msg, err := c.Text.ReadResponse(250)
	if err != nil {
		return fail(stageDataEnd, err)
	}
	c.Quit() // the message is delivered; a failing QUIT changes nothing
	return fmt.Sprintf("%d %s", code, strings.ReplaceAll(msg, "\n", " ")), nil
}

// cmd sends one command and reads its reply, as net/smtp does.
func cmd(t *textproto.Conn, expect int, format string, args ...any) (int, string, error) {
	id, err := t.Cmd(format, args...)
	if err != nil {
		return 0, "", err
	}
	t.StartResponse(id)
	defer t.EndResponse(id)
	return t.ReadResponse(expect)
}

// errPlaintextAuth refuses to send credentials in the clear.
var errPlaintextAuth = errors.New("refusing to send the password over an unencrypted connection to a relay that is not on loopback (use tls: required or smtps)")

// pickAuth returns the first of PLAIN and LOGIN that the relay offers.
func pickAuth(offered []string, user, pass string, loopback bool) smtp.Auth {
	switch {
	case slices.Contains(offered, "PLAIN"):
		return &plainAuth{user: user, pass: pass, loopback: loopback}
	case slices.Contains(offered, "LOGIN"):
		return &loginAuth{user: user, pass: pass, loopback: loopback}
	}
	return nil
}

// plainAuth is AUTH PLAIN (RFC 4616) that sends the password only over
// TLS or to a relay on loopback.
type plainAuth struct {
	user, pass string
	loopback   bool
}

func (a *plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !a.loopback {
		return "", nil, errPlaintextAuth
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a *plainAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected challenge to AUTH PLAIN")
	}
	return nil, nil
}

// loginAuth is AUTH LOGIN, the undocumented but common mechanism, with
// the same rule.
type loginAuth struct {
	user, pass string
	loopback   bool
	step       int
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !a.loopback {
		return "", nil, errPlaintextAuth
	}
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	prompt := strings.ToLower(string(fromServer))
	switch {
	case strings.Contains(prompt, "user"):
		return []byte(a.user), nil
	case strings.Contains(prompt, "pass"):
		return []byte(a.pass), nil
	case a.step == 1:
		return []byte(a.user), nil
	case a.step == 2:
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected challenge %q to AUTH LOGIN", cut(string(fromServer)))
}

func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// isLoopbackHost reports whether host names this machine.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
