package deliver

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/smallstep/pkcs7"

	"github.com/takedown-project/takedown/internal/testnet"
)

var day = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

const reportCSV = "ip,asn,family,first_seen,last_seen,count\r\n" +
	"192.0.2.10,64500,waledac,2026-11-26T00:03:11Z,2026-11-26T23:58:40Z,412\r\n" +
	"192.0.2.77,64500,waledac,2026-11-26T04:12:00Z,2026-11-26T09:40:02Z,37\r\n"

// reportBuild returns a build function for the CSV report, counting its
// calls in *calls.
func reportBuild(to []string, calls *int) func() (Message, error) {
	return func() (Message, error) {
		*calls++
		return ReportMessage(Report{
			To: to, Subscriber: "AS64500 Exämple Net", Day: day, Format: "csv",
			ContentType: "text/csv", Data: []byte(reportCSV), Rows: 2,
		})
	}
}

// baseConfig is a Config for e's STARTTLS port, trusting its CA, with
// short waits.
func baseConfig(e *testnet.Exim) Config {
	return Config{
		Relay:     e.Addr(e.Port),
		CAFile:    e.CAFile,
		HelloName: "takedown.test",
		From:      "Takedown Sinkhole <takedown@example.org>",
		ReplyTo:   "abuse-desk@example.org",
		Attempts:  3,
		Backoff:   10 * time.Millisecond,
		Timeout:   10 * time.Second,
	}
}

// pgpKey makes an Ed25519 OpenPGP key, writes its secret part (protected
// by passphrase when not empty) to dir, and returns the file and the
// public key in binary form.
func pgpKey(t *testing.T, dir, passphrase string) (secretFile string, public []byte, ring openpgp.EntityList) {
	t.Helper()
	e, err := openpgp.NewEntity("Takedown Test", "", "takedown@example.org",
		&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	if passphrase != "" {
		if err := e.EncryptPrivateKeys([]byte(passphrase), nil); err != nil {
			t.Fatal(err)
		}
	}
	var sec bytes.Buffer
	w, _ := armor.Encode(&sec, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	secretFile = filepath.Join(dir, "signing-key.asc")
	writeFile(t, secretFile, sec.Bytes())
	ring, err = openpgp.ReadKeyRing(bytes.NewReader(pub.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return secretFile, pub.Bytes(), ring
}

// signedParts splits the body of a multipart/signed message into the
// signed entity, exactly as signed, and the signature part's body.
func signedParts(t *testing.T, d testnet.Mail) (content []byte, sigPart *multipart.Part, params map[string]string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(d.Msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/signed" {
		t.Fatalf("Content-Type %q, want multipart/signed", d.Msg.Header.Get("Content-Type"))
	}
	body, _ := io.ReadAll(d.Msg.Body)
	delim := []byte("\r\n--" + params["boundary"])
	i := bytes.Index(body, delim)
	if i < 0 {
		t.Fatal("no first boundary")
	}
	rest := body[i+len(delim):]
	rest = bytes.TrimPrefix(rest, []byte("\r\n"))
	j := bytes.Index(rest, delim)
	if j < 0 {
		t.Fatal("no second boundary")
	}
	content = rest[:j]
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	if _, err := mr.NextPart(); err != nil {
		t.Fatal(err)
	}
	sigPart, err = mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	return content, sigPart, params
}

// checkReport checks the content entity of a report mail: text and the
// gzipped CSV.
func checkReport(t *testing.T, entity []byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(entity))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if mt != "multipart/mixed" {
		t.Fatalf("content type %q, want multipart/mixed", mt)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	text, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if ct := text.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("text part %q", ct)
	}
	body, _ := io.ReadAll(text) // multipart decodes quoted-printable
	if !strings.Contains(strings.ReplaceAll(string(body), "\r\n", "\n"), "    AS64500 Exämple Net\n\nIt lists 2 entries") {
		t.Errorf("text part:\n%s", body)
	}
	att, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if att.FileName() != "report-2026-11-26.csv.gz" || att.Header.Get("Content-Transfer-Encoding") != "base64" ||
		!strings.HasPrefix(att.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("attachment headers %v", att.Header)
	}
	zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, att))
	if err != nil {
		t.Fatal(err)
	}
	csv, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if string(csv) != reportCSV || zr.Name != "report-2026-11-26.csv" {
		t.Errorf("attachment %q (%q), want the report", csv, zr.Name)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("more parts: %v", err)
	}
}

// The main path: a PGP-signed report over STARTTLS to two recipients,
// parsed back from Exim's Maildir, signature checked by go-crypto and by
// GnuPG's gpgv.
func TestReportSignedPGPThroughExim(t *testing.T) {
	ctx := context.Background()
	e := testnet.StartExim(t)
	keyFile, pub, ring := pgpKey(t, t.TempDir(), "correct horse")
	cfg := baseConfig(e)
	cfg.DB = openDB(t, "")
	cfg.PGPKeyFile, cfg.PGPPassphrase = keyFile, "correct horse"
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	key := Key{Subscriber: "as64500", Day: day.Add(15 * time.Hour), Format: "csv"}
	calls := 0
	res, err := d.Deliver(ctx, key, reportBuild([]string{"Abuse Desk <abuse@isp.example>", "cert@isp.example"}, &calls))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Sent || res.Status != StatusSent || res.Attempts != 1 || !strings.HasPrefix(res.Response, "250 OK id=") {
		t.Fatalf("result %+v", res)
	}
	wantID, _ := d.MessageID(key)
	if res.MessageID != wantID || !strings.HasPrefix(wantID, "<takedown.20261126.csv.") || !strings.HasSuffix(wantID, "@example.org>") {
		t.Errorf("message ID %q, want %q", res.MessageID, wantID)
	}
	msgs := e.Delivered(t, 2)
	for i, rcpt := range []string{"abuse@isp.example", "cert@isp.example"} {
		h := msgs[i].Msg.Header
		if got := h.Get("Envelope-to"); got != rcpt {
			t.Errorf("message %d to %q, want %q", i, got, rcpt)
		}
		if h.Get("Return-path") != "<takedown@example.org>" {
			t.Errorf("Return-path %q", h.Get("Return-path"))
		}
		if h.Get("X-Test-TLS") != "yes" || !strings.Contains(h.Get("Received"), "esmtps") {
			t.Errorf("not received over TLS: %q", h.Get("Received"))
		}
		if strings.Contains(h.Get("Received"), "utf8") {
			t.Errorf("sent with SMTPUTF8, which a next hop may refuse: %q", h.Get("Received"))
		}
		if h.Get("X-Test-Auth") != "none" {
			t.Errorf("authenticated without credentials: %q", h.Get("X-Test-Auth"))
		}
		from, _ := h.AddressList("From")
		to, _ := h.AddressList("To")
		reply, _ := h.AddressList("Reply-To")
		if len(from) != 1 || from[0].Name != "Takedown Sinkhole" || from[0].Address != "takedown@example.org" ||
			len(to) != 2 || to[0].Name != "Abuse Desk" || to[1].Address != "cert@isp.example" ||
			len(reply) != 1 || reply[0].Address != "abuse-desk@example.org" {
			t.Errorf("addresses From %v To %v Reply-To %v", from, to, reply)
		}
		subj, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
		if err != nil || subj != "takedown report 2026-11-26 for AS64500 Exämple Net: 2" {
			t.Errorf("Subject %q (%q, %v)", subj, h.Get("Subject"), err)
		}
		if date, err := h.Date(); err != nil || time.Since(date).Abs() > time.Minute {
			t.Errorf("Date %q", h.Get("Date"))
		}
		if h.Get("Message-ID") != wantID || h.Get("Auto-Submitted") != "auto-generated" || h.Get("MIME-Version") != "1.0" {
			t.Errorf("headers %v", h)
		}

		content, sig, params := signedParts(t, msgs[i])
		if params["protocol"] != "application/pgp-signature" || params["micalg"] != "pgp-sha256" {
			t.Errorf("multipart/signed parameters %v", params)
		}
		if sig.Header.Get("Content-Type") != `application/pgp-signature; name="signature.asc"` {
			t.Errorf("signature part %v", sig.Header)
		}
		armored, _ := io.ReadAll(sig)
		if _, err := openpgp.CheckArmoredDetachedSignature(ring, bytes.NewReader(content), bytes.NewReader(armored), nil); err != nil {
			t.Errorf("go-crypto: signature does not verify: %v", err)
		}
		gpgVerify(t, pub, content, armored)
		tampered := bytes.Replace(content, []byte("AS64500"), []byte("AS64501"), 1)
		if bytes.Equal(tampered, content) {
			t.Fatal("nothing to tamper with")
		}
		if _, err := openpgp.CheckArmoredDetachedSignature(ring, bytes.NewReader(tampered), bytes.NewReader(armored), nil); err == nil {
			t.Error("signature verifies changed content")
		}
		checkReport(t, content)
	}

	// Sent once: a second Deliver neither builds nor sends.
	res, err = d.Deliver(ctx, key, reportBuild([]string{"abuse@isp.example"}, &calls))
	if err != nil || !res.Skipped || res.Status != StatusSent || calls != 1 {
		t.Fatalf("second Deliver: %+v, %v, %d builds", res, err, calls)
	}
	if n := e.Count(); n != 2 {
		t.Errorf("%d messages after the second Deliver, want 2", n)
	}
	atts, err := d.Attempts(ctx, key)
	if err != nil || len(atts) != 1 || atts[0].Outcome != "sent" || atts[0].Response != res.Response {
		t.Errorf("attempts %+v, %v", atts, err)
	}
}

// gpgVerify checks a detached signature with GnuPG's gpgv, a verifier
// that shares no code with the signer.
func gpgVerify(t *testing.T, pub, content, armored []byte) {
	t.Helper()
	gpgv, err := exec.LookPath("gpgv")
	if err != nil {
		t.Fatal("gpgv is not installed (Debian package gpgv; .ci/run installs it)")
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "key.gpg"), pub)
	writeFile(t, filepath.Join(dir, "content"), content)
	writeFile(t, filepath.Join(dir, "content.asc"), armored)
	out, err := exec.Command(gpgv, "--homedir", dir, "--keyring", filepath.Join(dir, "key.gpg"),
		filepath.Join(dir, "content.asc"), filepath.Join(dir, "content")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Good signature") {
		t.Errorf("gpgv: %v\n%s", err, out)
	}
}

// S/MIME over implicit TLS (smtps), verified by pkcs7 and by openssl.
func TestReportSignedSMIMEOverSMTPS(t *testing.T) {
	ctx := context.Background()
	e := testnet.StartExim(t)
	dir := t.TempDir()
	ca := testnet.NewCA(t)
	certPEM, keyPEM := ca.Issue(t, "Takedown Sinkhole", []string{"takedown@example.org"})
	writeFile(t, filepath.Join(dir, "smime.pem"), certPEM)
	writeFile(t, filepath.Join(dir, "smime.key"), keyPEM)
	writeFile(t, filepath.Join(dir, "smime-ca.pem"), ca.CertPEM)
	cfg := baseConfig(e)
	cfg.DB = openDB(t, "")
	cfg.Relay, cfg.TLS = e.Addr(e.TLSPort), TLSImplicit
	cfg.SMIMECertFile, cfg.SMIMEKeyFile = filepath.Join(dir, "smime.pem"), filepath.Join(dir, "smime.key")
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	if _, err := d.Deliver(ctx, Key{Subscriber: "as64500", Day: day, Format: "csv"}, reportBuild([]string{"abuse@isp.example"}, &calls)); err != nil {
		t.Fatal(err)
	}
	m := e.Delivered(t, 1)[0]
	if m.Msg.Header.Get("X-Test-TLS") != "yes" {
		t.Error("not received over TLS")
	}
	content, sig, params := signedParts(t, m)
	if params["protocol"] != "application/pkcs7-signature" || params["micalg"] != "sha-256" {
		t.Errorf("multipart/signed parameters %v", params)
	}
	b64, _ := io.ReadAll(sig)
	der, err := decodeBase64(b64)
	if err != nil {
		t.Fatal(err)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	p7.Content = content
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	if err := p7.VerifyWithChain(pool); err != nil {
		t.Errorf("pkcs7: signature does not verify: %v", err)
	}
	checkReport(t, content)

	// openssl reads the whole message as delivered.
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is not installed (.ci/run installs it)")
	}
	msgFile := filepath.Join(dir, "msg.eml")
	writeFile(t, msgFile, m.Raw)
	out, err := exec.Command(openssl, "smime", "-verify", "-in", msgFile, "-CAfile", filepath.Join(dir, "smime-ca.pem"),
		"-out", filepath.Join(dir, "verified")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verification successful") {
		t.Errorf("openssl smime -verify: %v\n%s", err, out)
	}
}

// AUTH PLAIN over STARTTLS, AUTH LOGIN when only LOGIN would do is
// covered by pickAuth; here Exim checks the password.
func TestAuthThroughExim(t *testing.T) {
	ctx := context.Background()
	e := testnet.StartExim(t)
	for _, tc := range []struct {
		name  string
		tls   TLSMode
		port  int
		pass  string
		sent  bool
		class string
	}{
		{"starttls", TLSRequired, e.Port, "s3cret pass", true, ""},
		{"smtps", TLSImplicit, e.TLSPort, "s3cret pass", true, ""},
		{"loopback-plaintext", TLSNone, e.PlainPort, "s3cret pass", true, ""},
		{"wrong-password", TLSRequired, e.Port, "wrong", false, "stuck"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(e)
			cfg.DB = openDB(t, "")
			cfg.Relay, cfg.TLS = e.Addr(tc.port), tc.tls
			cfg.Username, cfg.Password = "user", tc.pass
			d, err := New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			before := e.Count()
			calls := 0
			key := Key{Subscriber: "as64500-" + tc.name, Day: day, Format: "csv"}
			res, err := d.Deliver(ctx, key, reportBuild([]string{"needauth@isp.example"}, &calls))
			if tc.sent {
				if err != nil || !res.Sent {
					t.Fatalf("%+v, %v", res, err)
				}
				msgs := e.Delivered(t, before+1)
				found := false
				for _, m := range msgs {
					if m.Msg.Header.Get("Message-ID") == res.MessageID {
						found = true
						if m.Msg.Header.Get("X-Test-Auth") != "user" {
							t.Errorf("authenticated as %q", m.Msg.Header.Get("X-Test-Auth"))
						}
					}
				}
				if !found {
					t.Error("message not delivered")
				}
				return
			}
			// A wrong password is the configuration's fault: stop at
			// once, keep the report pending for a later run.
			if err == nil || !strings.Contains(err.Error(), "535") || res.Status != StatusPending || res.Attempts != 1 {
				t.Fatalf("%+v, %v", res, err)
			}
			atts, _ := d.Attempts(ctx, key)
			if len(atts) != 1 || atts[0].Outcome != tc.class {
				t.Errorf("attempts %+v", atts)
			}
		})
	}
}

// A relay that offers no STARTTLS: required refuses, opportunistic and
// none go on in plain text.
func TestTLSModesThroughExim(t *testing.T) {
	ctx := context.Background()
	e := testnet.StartExim(t)
	for i, tc := range []struct {
		mode TLSMode
		port int
		sent bool
		tls  string
	}{
		{TLSRequired, e.PlainPort, false, ""},
		{TLSOpportunistic, e.PlainPort, true, "no"},
		{TLSOpportunistic, e.Port, true, "yes"},
		{TLSNone, e.Port, true, "no"},
	} {
		cfg := baseConfig(e)
		cfg.DB = openDB(t, "")
		cfg.Relay, cfg.TLS = e.Addr(tc.port), tc.mode
		d, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		before := e.Count()
		calls := 0
		res, err := d.Deliver(ctx, Key{Subscriber: fmt.Sprint("s", i), Day: day, Format: "csv"}, reportBuild([]string{"abuse@isp.example"}, &calls))
		if !tc.sent {
			if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") || res.Status != StatusPending || res.Attempts != 1 {
				t.Errorf("case %d: %+v, %v", i, res, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		msgs := e.Delivered(t, before+1)
		for _, m := range msgs {
			if m.Msg.Header.Get("Message-ID") == res.MessageID && m.Msg.Header.Get("X-Test-TLS") != tc.tls {
				t.Errorf("case %d (%s, port %d): TLS %q, want %q", i, tc.mode, tc.port, m.Msg.Header.Get("X-Test-TLS"), tc.tls)
			}
		}
	}
}

// 451 at RCPT is tried again; 550 is failed at once and not tried again.
func TestRetryAndPermanentFailureThroughExim(t *testing.T) {
	ctx := context.Background()
	e := testnet.StartExim(t)
	cfg := baseConfig(e)
	cfg.DB = openDB(t, "")
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}

	e.FailOnce(t)
	calls := 0
	key := Key{Subscriber: "retry", Day: day, Format: "csv"}
	res, err := d.Deliver(ctx, key, reportBuild([]string{"once@isp.example"}, &calls))
	if err != nil || !res.Sent || res.Attempts != 2 || calls != 1 {
		t.Fatalf("451 then 250: %+v, %v, %d builds", res, err, calls)
	}
	atts, _ := d.Attempts(ctx, key)
	if len(atts) != 2 || atts[0].Outcome != "transient" || !strings.Contains(atts[0].Error, "451") || atts[1].Outcome != "sent" {
		t.Errorf("attempts %+v", atts)
	}
	e.Delivered(t, 1)

	key = Key{Subscriber: "refused", Day: day, Format: "csv"}
	res, err = d.Deliver(ctx, key, reportBuild([]string{"nobody@isp.example"}, &calls))
	if err == nil || res.Status != StatusFailed || res.Attempts != 1 || !strings.Contains(res.LastError, "550") {
		t.Fatalf("550: %+v, %v", res, err)
	}
	res, err = d.Deliver(ctx, key, reportBuild([]string{"nobody@isp.example"}, &calls))
	if err != nil || !res.Skipped || res.Status != StatusFailed || res.Attempts != 1 {
		t.Fatalf("Deliver after 550: %+v, %v", res, err)
	}

	// 451 every time: bounded by Attempts, left pending for a later run.
	key = Key{Subscriber: "deferred", Day: day, Format: "csv"}
	res, err = d.Deliver(ctx, key, reportBuild([]string{"later@isp.example"}, &calls))
	if err == nil || res.Status != StatusPending || res.Attempts != cfg.Attempts {
		t.Fatalf("451 always: %+v, %v", res, err)
	}
	pending, err := d.List(ctx, Filter{Status: []Status{StatusPending}})
	if err != nil || len(pending) != 1 || pending[0].Subscriber != "deferred" {
		t.Errorf("pending %+v, %v", pending, err)
	}
	if n := e.Count(); n != 1 {
		t.Errorf("%d messages delivered, want 1", n)
	}
}

// A restart finds the log in the database file: what was sent is not
// sent again, and a delivery interrupted while sending waits for an
// operator.
func TestIdempotentAcrossRestart(t *testing.T) {
	ctx := context.Background()
	e := testnet.StartExim(t)
	path := filepath.Join(t.TempDir(), "takedown.duckdb")
	start := func() (*Deliverer, func()) {
		db := openDB(t, path)
		cfg := baseConfig(e)
		cfg.DB = db
		d, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return d, func() { db.Close() }
	}
	d, stop := start()
	calls := 0
	sent := Key{Subscriber: "as64500", Day: day, Format: "csv"}
	if _, err := d.Deliver(ctx, sent, reportBuild([]string{"abuse@isp.example"}, &calls)); err != nil {
		t.Fatal(err)
	}
	e.Delivered(t, 1)
	// A process that stopped between DATA and the relay's answer left
	// this row in "sending".
	crashed := Key{Subscriber: "as64501", Day: day, Format: "csv"}
	if _, err := d.prepare(ctx, crashed, d.messageID(crashed), []string{"abuse@other.example"}, 100); err != nil {
		t.Fatal(err)
	}
	if err := d.markSending(ctx, crashed); err != nil {
		t.Fatal(err)
	}
	stop()

	d, stop = start()
	defer stop()
	res, err := d.Deliver(ctx, sent, reportBuild([]string{"abuse@isp.example"}, &calls))
	if err != nil || !res.Skipped || res.Status != StatusSent || calls != 1 {
		t.Fatalf("after restart: %+v, %v, %d builds", res, err, calls)
	}
	res, err = d.Deliver(ctx, crashed, reportBuild([]string{"abuse@other.example"}, &calls))
	if err != nil || !res.Skipped || res.Status != StatusUnknown || !strings.Contains(res.LastError, "may have accepted") || calls != 1 {
		t.Fatalf("interrupted delivery after restart: %+v, %v", res, err)
	}
	if n := e.Count(); n != 1 {
		t.Fatalf("%d messages after restart, want 1", n)
	}
	unknown, _ := d.List(ctx, Filter{Status: []Status{StatusUnknown}})
	if len(unknown) != 1 || unknown[0].Key != crashed {
		t.Errorf("unknown rows %+v", unknown)
	}
	// The operator resends: same Message-ID, so the copy is recognisable.
	res, err = d.Resend(ctx, crashed, reportBuild([]string{"abuse@other.example"}, &calls))
	if err != nil || !res.Sent || res.MessageID != d.messageID(crashed) {
		t.Fatalf("resend: %+v, %v", res, err)
	}
	msgs := e.Delivered(t, 2)
	ids := []string{msgs[0].Msg.Header.Get("Message-ID"), msgs[1].Msg.Header.Get("Message-ID")}
	if ids[1] != d.messageID(crashed) || ids[0] != d.messageID(sent) {
		t.Errorf("message IDs %q", ids)
	}
	all, _ := d.List(ctx, Filter{From: day, To: day})
	if len(all) != 2 || all[0].Status != StatusSent || all[1].Status != StatusSent {
		t.Errorf("log %+v", all)
	}
}

// An X-ARF mail is a Message with the caller's parts and header.
func TestXARFMessageThroughExim(t *testing.T) {
	ctx := context.Background()
	e := testnet.StartExim(t)
	cfg := baseConfig(e)
	cfg.DB = openDB(t, "")
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	yaml := "---\nReported-From: takedown@example.org\nCategory: abuse\nReport-Type: malware-infection\nSource: 192.0.2.10\nSource-Type: ip-address\n"
	evidence := "2026-11-26T00:03:11Z 192.0.2.10:49152 -> sinkhole:80 GET /gate.php\n"
	build := func() (Message, error) {
		return Message{
			To:      []string{"abuse@isp.example"},
			Subject: "abuse report about 192.0.2.10 – 2026-11-26",
			Headers: map[string]string{"X-ARF": "YES"},
			Parts: []Part{
				{ContentType: "text/plain", Data: []byte("This is an abuse report about 192.0.2.10.\n"), Inline: true},
				{ContentType: "text/plain", Filename: "report.txt", Data: []byte(yaml), Inline: true},
				{ContentType: "text/plain", Filename: "logfile.log", Data: []byte(evidence), Inline: true},
			},
		}, nil
	}
	res, err := d.Deliver(ctx, Key{Subscriber: "as64500", Day: day, Format: "xarf"}, build)
	if err != nil {
		t.Fatal(err)
	}
	m := e.Delivered(t, 1)[0]
	h := m.Msg.Header
	if h.Get("X-ARF") != "YES" || h.Get("Message-ID") != res.MessageID || !strings.Contains(res.MessageID, ".xarf.") {
		t.Errorf("headers %v", h)
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if subj != "abuse report about 192.0.2.10 – 2026-11-26" {
		t.Errorf("subject %q", subj)
	}
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "multipart/mixed" {
		t.Fatalf("content type %q", mt)
	}
	mr := multipart.NewReader(m.Msg.Body, params["boundary"])
	want := []struct{ name, data string }{{"", "This is an abuse report about 192.0.2.10.\r\n"}, {"report.txt", yaml}, {"logfile.log", evidence}}
	for i, w := range want {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(p)
		// Lines travel as CRLF; X-ARF parsers read either.
		if got := strings.ReplaceAll(string(data), "\r\n", "\n"); got != strings.ReplaceAll(w.data, "\r\n", "\n") || p.FileName() != w.name ||
			!strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain; charset=utf-8") {
			t.Errorf("part %d: %q %q %v", i, p.FileName(), data, p.Header)
		}
	}
}

// Nothing to report: nothing sent, nothing recorded, so late data of that
// day can still be sent.
func TestNoDataSendsNothing(t *testing.T) {
	ctx := context.Background()
	e := testnet.StartExim(t)
	cfg := baseConfig(e)
	cfg.DB = openDB(t, "")
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	key := Key{Subscriber: "quiet", Day: day, Format: "csv"}
	res, err := d.Deliver(ctx, key, func() (Message, error) {
		return ReportMessage(Report{To: []string{"abuse@isp.example"}, Day: day, Format: "csv"})
	})
	if err != nil || !res.NoData || res.Sent {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, found, _ := d.Get(ctx, key); found {
		t.Error("an empty report was recorded")
	}
	calls := 0
	if res, err := d.Deliver(ctx, key, reportBuild([]string{"abuse@isp.example"}, &calls)); err != nil || !res.Sent {
		t.Fatalf("late data: %+v, %v", res, err)
	}
	e.Delivered(t, 1)
}

// A build error is returned and nothing is recorded.
func TestBuildErrorRecordsNothing(t *testing.T) {
	ctx := context.Background()
	cfg := Config{DB: openDB(t, ""), Relay: "127.0.0.1:1", From: "t@example.org"}
	d, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("report query failed")
	key := Key{Subscriber: "x", Day: day, Format: "csv"}
	if _, err := d.Deliver(ctx, key, func() (Message, error) { return Message{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if _, found, _ := d.Get(ctx, key); found {
		t.Error("recorded")
	}
}

func decodeBase64(b []byte) ([]byte, error) {
	return io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(b)))
}
