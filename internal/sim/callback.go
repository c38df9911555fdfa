package sim

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/event"
)

// What the Waledac bots send.
const (
	waledacUserAgent   = "Mozilla"
	waledacContentType = "application/x-www-form-urlencoded"
)

// exampleDomains are the fictional parents of spam senders and recipients
// (RFC 2606): never a seized name.
var exampleDomains = [...]string{"example.com", "example.net", "example.org"}

var spamSubjects = [...]string{
	"Your order has shipped", "Cheap meds, no prescription", "Re: invoice",
	"You have won a prize", "Limited offer inside", "Replica watches",
	"Your account needs attention", "Meet singles near you",
}

// call is one callback: everything a bot sends, drawn from the seed, the
// bot and the simulated time, so that Run sends and Backfill records the
// same thing.
type call struct {
	bot uint32
	at  int64 // simulated time, ns
	fam family
	src netip.Addr

	name string // the DNS name asked for (waledac, conficker)

	// waledac: the HTTP POST
	path  string
	id    string // bot id, the value of b
	body  []byte
	delay int64 // from the DNS answer to the request (waledac) or the end of the message (rustock), ns

	// rustock: the SMTP session
	helo, from string
	rcpts      []string
	msg        []byte

	ports [2]uint16 // source ports, for Backfill's events
}

// plan draws the callback of bot at simulated time at.
func (s *Sim) plan(bot uint32, at int64) *call {
	r := rand.New(rand.NewPCG(hash(s.cfg.Seed, saltCall, uint64(bot)), uint64(at)))
	c := &call{bot: bot, at: at, fam: s.pop.fam[bot], src: s.pop.ip(bot)}
	c.ports = [2]uint16{uint16(32768 + r.IntN(28232)), uint16(32768 + r.IntN(28232))}
	switch c.fam {
	case famWaledac:
		c.name = s.names[r.IntN(len(s.names))]
		ext := ".htm"
		if r.IntN(2) == 0 {
			ext = ".png"
		}
		c.path = "/" + word(r, 3, 12, lower+"0123456789") + ext
		c.id = s.botID(bot)
		payload := make([]byte, 48+r.IntN(192))
		for i := 0; i < len(payload); i += 8 {
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], r.Uint64())
			copy(payload[i:], w[:])
		}
		b := make([]byte, 0, 2+base64.StdEncoding.EncodedLen(len(payload))+3+len(c.id))
		b = append(b, "a="...)
		b = base64.StdEncoding.AppendEncode(b, payload)
		b = append(b, "&b="...)
		b = append(b, c.id...)
		c.body = b
		c.delay = int64(time.Millisecond) + r.Int64N(int64(40*time.Millisecond))
	case famConficker:
		names := s.dga.get(at)
		c.name = names[r.IntN(len(names))]
	case famRustock:
		c.helo = s.helo(bot)
		fromDomain := word(r, 3, 10, lower) + "." + exampleDomains[r.IntN(len(exampleDomains))]
		c.from = word(r, 4, 10, lower) + "@" + fromDomain
		for range 2 + r.IntN(5) {
			c.rcpts = append(c.rcpts, word(r, 3, 10, lower)+"@"+word(r, 3, 8, lower)+"."+exampleDomains[r.IntN(len(exampleDomains))])
		}
		var id [12]byte
		for i := range id {
			id[i] = byte(r.Uint32())
		}
		var m strings.Builder
		m.WriteString("From: <" + c.from + ">\r\n")
		m.WriteString("To: <" + c.rcpts[0] + ">\r\n")
		m.WriteString("Subject: " + spamSubjects[r.IntN(len(spamSubjects))] + "\r\n")
		m.WriteString("Date: " + time.Unix(0, at).UTC().Format(time.RFC1123Z) + "\r\n")
		m.WriteString("Message-ID: <" + hex.EncodeToString(id[:]) + "@" + fromDomain + ">\r\n")
		m.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
		for range 2 + r.IntN(6) {
			for k := range 4 + r.IntN(8) {
				if k > 0 {
					m.WriteByte(' ')
				}
				m.WriteString(word(r, 2, 9, lower))
			}
			m.WriteString("\r\n")
		}
		c.msg = []byte(m.String())
		c.delay = int64(time.Millisecond) + r.Int64N(int64(20*time.Millisecond))
	}
	return c
}

// messageID returns the Message-ID header of a rustock message.
func (c *call) messageID() string {
	_, rest, _ := strings.Cut(string(c.msg), "\r\nMessage-ID: ")
	v, _, _ := strings.Cut(rest, "\r\n")
	return v
}

func (c *call) subject() string {
	_, rest, _ := strings.Cut(string(c.msg), "\r\nSubject: ")
	v, _, _ := strings.Cut(rest, "\r\n")
	return v
}

// rcptDomains lists the distinct recipient domains in order.
func (c *call) rcptDomains() []string {
	var out []string
	for _, r := range c.rcpts {
		d := strings.ToLower(r[strings.LastIndexByte(r, '@')+1:])
		dup := false
		for _, have := range out {
			dup = dup || have == d
		}
		if !dup {
			out = append(out, d)
		}
	}
	return out
}

// headBytes is how much of a payload the sinks keep (their default).
const headBytes = 512

// dnsQuerySize is the size of the bots' A query: a 12-byte header, the
// name in wire form (a length byte per label and the root) and type and
// class; no EDNS.
func dnsQuerySize(name string) int64 { return int64(12 + len(name) + 2 + 4) }

// appendEvents appends the events the sinks would record for c, as
// Backfill sends them: what the listener fills from the wire, without
// sensor, zone, case, family, tag, bot id and enrichment, which the server
// adds. c must be a callback the sinkhole serves.
func (s *Sim) appendEvents(dst []event.Event, c *call) []event.Event {
	t := time.Unix(0, c.at).UTC()
	sk := s.sinkOf(c.bot)
	switch c.fam {
	case famWaledac, famConficker:
		dst = append(dst, event.Event{
			Time: t, Protocol: event.ProtoDNS, Transport: event.TransportUDP,
			SrcIP: c.src, SrcPort: c.ports[0], DstIP: sk.dns.ap.Addr(), DstPort: sk.dns.ap.Port(),
			Domain: c.name, DNSQType: "A", DNSRcode: "NOERROR", Bytes: dnsQuerySize(c.name),
		})
		if c.fam == famConficker {
			return dst
		}
		sum := sha256.Sum256(c.body)
		dst = append(dst, event.Event{
			Time: t.Add(time.Duration(c.delay)), Protocol: event.ProtoHTTP, Transport: event.TransportTCP,
			SrcIP: c.src, SrcPort: c.ports[1], DstIP: sk.http.ap.Addr(), DstPort: sk.http.ap.Port(),
			Domain: c.name, HTTPMethod: "POST", HTTPPath: c.path, HTTPUserAgent: waledacUserAgent,
			HTTPContentType: waledacContentType,
			Bytes:           int64(len(c.body)), PayloadSHA256: hex.EncodeToString(sum[:]),
			PayloadHead: c.body[:min(len(c.body), headBytes)],
		})
	case famRustock:
		sum := sha256.Sum256(c.msg)
		domains := c.rcptDomains()
		dst = append(dst, event.Event{
			Time: t.Add(time.Duration(c.delay)), Protocol: event.ProtoSMTP, Transport: event.TransportTCP,
			SrcIP: c.src, SrcPort: c.ports[1], DstIP: sk.smtp.ap.Addr(), DstPort: sk.smtp.ap.Port(),
			Domain: domains[0], SMTPHelo: c.helo, SMTPFrom: c.from,
			SMTPRcptDomains: strings.Join(domains, ","), SMTPRcptCount: uint32(len(c.rcpts)),
			SMTPSubject: c.subject(), SMTPMessageID: c.messageID(),
			Bytes: int64(len(c.msg)), PayloadSHA256: hex.EncodeToString(sum[:]),
			PayloadHead: c.msg[:min(len(c.msg), headBytes)],
		})
	}
	return dst
}
