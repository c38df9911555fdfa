package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"time"

	"github.com/miekg/dns"
)

// dnsTries is how often a bot sends a query that gets no answer.
const dnsTries = 3

// srcKey carries a bot's source address to the HTTP dialer.
type srcKey struct{}

// clients are the network clients of a live run, shared by the workers.
type clients struct {
	http *http.Client
	tr   *http.Transport
}

func (s *Sim) newClients() *clients {
	timeout := s.cfg.Timeout
	tr := &http.Transport{
		Proxy: nil, // bots talk to the sinkhole, never through a proxy
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			if ip, ok := ctx.Value(srcKey{}).(netip.Addr); ok {
				d.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
			}
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives:      true, // one connection per callback, as bots do
		DisableCompression:     true,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &clients{
		tr: tr,
		http: &http.Client{
			Transport:     tr,
			Timeout:       timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// outcome is what the sinkhole demonstrably got of a callback.
type outcome struct {
	events  int  // events it recorded
	withID  bool // one carried the bot id
	refused bool // the name is not served
	err     error
}

// execute sends callback c to the sinkhole.
func (s *Sim) execute(ctx context.Context, cl *clients, c *call) (o outcome) {
	switch c.fam {
	case famWaledac, famConficker:
		rcode, err := s.lookup(ctx, c)
		switch {
		case err != nil:
			o.err = err
			return o
		case rcode == dns.RcodeRefused:
			o.refused = true
			return o
		}
		o.events++ // every query for a served name is recorded
		if c.fam == famConficker {
			return o
		}
		if rcode != dns.RcodeSuccess {
			o.err = fmt.Errorf("dns: %s answered %s", c.name, dns.RcodeToString[rcode])
			return o
		}
		if o.err = s.post(ctx, cl, c); o.err == nil {
			o.events++
			o.withID = true
		}
	case famRustock:
		recorded, err := s.mail(ctx, c)
		if recorded {
			o.events++
		}
		o.err = err
	}
	return o
}

// lookup asks the sinkhole for c.name's A record from the bot's address
// and returns the rcode; a query without an answer is sent again, up to
// dnsTries times.
func (s *Sim) lookup(ctx context.Context, c *call) (int, error) {
	sk := s.sinkOf(c.bot)
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(c.name), dns.TypeA)
	cl := dns.Client{Net: "udp", Timeout: s.cfg.Timeout, Dialer: &net.Dialer{}}
	if sk.dns.bind {
		cl.Dialer.LocalAddr = &net.UDPAddr{IP: c.src.AsSlice()}
	}
	var err error
	for range dnsTries {
		var r *dns.Msg
		r, _, err = cl.ExchangeContext(ctx, m, sk.dns.ap.String())
		if err == nil {
			return r.Rcode, nil
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			break
		}
	}
	return -1, fmt.Errorf("dns: %s: %w", c.name, err)
}

// post sends Waledac's HTTP POST on a new connection from the bot's
// address.
func (s *Sim) post(ctx context.Context, cl *clients, c *call) error {
	sk := s.sinkOf(c.bot)
	if sk.http.bind {
		ctx = context.WithValue(ctx, srcKey{}, c.src)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+sk.http.ap.String()+c.path, bytes.NewReader(c.body))
	if err != nil {
		return err
	}
	req.Host = c.name
	req.Header.Set("User-Agent", waledacUserAgent)
	req.Header.Set("Content-Type", waledacContentType)
	resp, err := cl.http.Do(req)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // the status is what counts
	resp.Body.Close()
	return nil
}

// mail runs Rustock's SMTP session from the bot's address. recorded
// reports that the sinkhole answered the end of the message, after which
// it has recorded it; the rule's 550 there is such an answer.
func (s *Sim) mail(ctx context.Context, c *call) (recorded bool, err error) {
	sk := s.sinkOf(c.bot)
	d := net.Dialer{Timeout: s.cfg.Timeout}
	if sk.smtp.bind {
		d.LocalAddr = &net.TCPAddr{IP: c.src.AsSlice()}
	}
	conn, err := d.DialContext(ctx, "tcp", sk.smtp.ap.String())
	if err != nil {
		return false, fmt.Errorf("smtp: %w", err)
	}
	conn.SetDeadline(time.Now().Add(s.cfg.Timeout)) //nolint:errcheck // seen at the first read
	cl, err := smtp.NewClient(conn, sk.smtp.ap.Addr().String())
	if err != nil {
		conn.Close()
		return false, fmt.Errorf("smtp: greeting: %w", err)
	}
	defer cl.Close()
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("smtp: %s: %w", what, err)
		}
		return nil
	}
	if err := step("EHLO", cl.Hello(c.helo)); err != nil {
		return false, err
	}
	if err := step("MAIL", cl.Mail(c.from)); err != nil {
		return false, err
	}
	for _, r := range c.rcpts {
		if err := step("RCPT", cl.Rcpt(r)); err != nil {
			return false, err
		}
	}
	w, err := cl.Data()
	if err := step("DATA", err); err != nil {
		return false, err
	}
	if _, err := w.Write(c.msg); err != nil {
		return false, step("message", err)
	}
	err = w.Close() // sends the final dot and reads the reply
	var te *textproto.Error
	switch {
	case err == nil:
	case errors.As(err, &te):
		// A refusal (the shipped rule answers 550) is an answer too: the
		// sinkhole recorded the message before it.
		if te.Code == 421 { // the server closes the session
			return true, nil
		}
	default:
		return false, step("end of message", err)
	}
	cl.Quit() //nolint:errcheck // recorded already; the session ends either way
	return true, nil
}
