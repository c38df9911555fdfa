package testnet

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Exim is an Exim daemon that a test started on 127.0.0.1, with all its
// files in a temporary directory, delivering every message it accepts to
// one Maildir: the relay that takedown's reports go through.
//
// Its ports accept mail for any address, with these exceptions: RCPT
// nobody@… is refused (550), later@… deferred (451) always, once@… deferred
// once after FailOnce, and needauth@… refused unless the client
// authenticated. AUTH PLAIN and LOGIN accept the user "user" with the
// password "s3cret pass". Every delivered message gets the headers
// X-Test-Auth (the authenticated user, or "none") and X-Test-TLS ("yes" or
// "no").
type Exim struct {
	// Dir holds the configuration, spool, logs and TLS files.
	Dir string
	// Maildir is where messages are delivered: its new/ holds them.
	Maildir string
	// CA signed the daemon's certificate (for localhost and 127.0.0.1);
	// CAFile is its certificate in PEM, for a client's trust store.
	CA     *CA
	CAFile string
	// Port offers STARTTLS and AUTH; TLSPort speaks TLS at once (smtps);
	// PlainPort offers AUTH but no STARTTLS.
	Port, TLSPort, PlainPort int

	flags string // a file here named "once" makes RCPT once@… fail with 451, once
	out   *Buffer
}

// eximUser is the account Exim's deliveries run as (exim refuses root).
func eximUser(t testing.TB) (uid, gid int, name string) {
	t.Helper()
	for _, n := range []string{"Debian-exim", "exim", "mail"} {
		u, err := user.Lookup(n)
		if err != nil {
			continue
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		return uid, gid, n
	}
	t.Fatal("no Debian-exim user: install exim4-daemon-light (.ci/run does)")
	return 0, 0, ""
}

// eximBinary finds exim, which Debian puts in /usr/sbin.
func eximBinary(t testing.TB) string {
	t.Helper()
	for _, n := range []string{"exim4", "exim", "/usr/sbin/exim4", "/usr/sbin/exim"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatal("exim is not installed (Debian package exim4-daemon-light; .ci/run installs it)")
	return ""
}

const eximConfig = `# Exim for takedown's tests: loopback only, no DNS.
primary_hostname = relay.test
qualify_domain = relay.test
exim_user = {{user}}
exim_group = {{user}}
spool_directory = {{dir}}/spool
log_file_path = {{dir}}/log/%slog
pid_file_path = {{dir}}/exim.pid
keep_environment =
local_interfaces = 127.0.0.1
daemon_smtp_ports = {{port}} : {{tlsport}} : {{plainport}}
tls_on_connect_ports = {{tlsport}}
tls_certificate = {{dir}}/tls/cert.pem
tls_privatekey = {{dir}}/tls/key.pem
tls_advertise_hosts = ${if eq{$received_port}{{{plainport}}}{}{*}}
host_lookup =
rfc1413_hosts =
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data

begin acl
acl_rcpt:
  deny    local_parts = nobody
          message = no such user here
  defer   local_parts = later
  defer   local_parts = once
          condition = ${run{/bin/rm {{dir}}/flags/once}{yes}{no}}
  deny    local_parts = needauth
          !authenticated = *
          message = authentication required
  accept
acl_data:
  warn    add_header = X-Test-Auth: ${if def:authenticated_id{$authenticated_id}{none}}
  warn    add_header = X-Test-TLS: ${if def:tls_in_cipher{yes}{no}}
  accept

begin routers
all:
  driver = accept
  transport = maildir

begin transports
maildir:
  driver = appendfile
  directory = {{dir}}/mail
  maildir_format
  create_directory
  envelope_to_add
  return_path_add
  user = {{user}}

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{user}}{eq{$auth3}{s3cret pass}}}}
  server_set_id = $auth2
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and {{eq{$auth1}{user}}{eq{$auth2}{s3cret pass}}}}
  server_set_id = $auth1
`

// StartExim starts an Exim daemon for the test and stops it (and the
// delivery processes it forked) at cleanup; when the test failed, the
// cleanup logs Exim's log files. It needs the Debian package
// exim4-daemon-light and root: Exim switches to its own user to deliver.
func StartExim(t *testing.T) *Exim {
	t.Helper()
	bin := eximBinary(t)
	if os.Geteuid() != 0 {
		t.Fatal("the Exim tests start exim as root (it needs to switch to its own user for deliveries)")
	}
	uid, gid, uname := eximUser(t)
	dir := t.TempDir()
	// Exim's processes run as its own user: open the path to it.
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"spool", "log", "mail", "flags", "tls"} {
		p := filepath.Join(dir, sub)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755); err != nil { // whatever the umask
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	e := &Exim{Dir: dir, Maildir: filepath.Join(dir, "mail"), flags: filepath.Join(dir, "flags"), out: &Buffer{}}
	e.CA = NewCA(t)
	e.CAFile = filepath.Join(dir, "tls", "ca.pem")
	writeFile(t, e.CAFile, e.CA.CertPEM)
	certPEM, keyPEM := e.CA.Issue(t, "localhost", nil)
	writeFile(t, filepath.Join(dir, "tls", "cert.pem"), certPEM)
	writeFile(t, filepath.Join(dir, "tls", "key.pem"), keyPEM)
	if err := os.Chown(filepath.Join(dir, "tls", "key.pem"), uid, gid); err != nil {
		t.Fatal(err)
	}

	e.Port, e.TLSPort, e.PlainPort = FreePort(t), FreePort(t), FreePort(t)
	for e.TLSPort == e.Port || e.PlainPort == e.Port || e.PlainPort == e.TLSPort {
		e.TLSPort, e.PlainPort = FreePort(t), FreePort(t)
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{user}}", uname, "{{port}}", strconv.Itoa(e.Port),
		"{{tlsport}}", strconv.Itoa(e.TLSPort), "{{plainport}}", strconv.Itoa(e.PlainPort)).Replace(eximConfig)
	confFile := filepath.Join(dir, "exim.conf")
	writeFile(t, confFile, []byte(conf))

	cmd := exec.Command(bin, "-C", confFile, "-bdf")
	cmd.Stdout, cmd.Stderr = e.out, e.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting exim: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// exim and the delivery processes it forked share its group.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "log", "*"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", filepath.Base(l), b)
			}
			t.Logf("exim output:\n%s", e.out.String())
		}
	})
	for _, p := range []int{e.Port, e.TLSPort, e.PlainPort} {
		addr := e.Addr(p)
		WaitFor(t, "exim listening on "+addr, func() bool {
			select {
			case <-done:
				t.Fatalf("exim exited: %s", e.out.String())
			default:
			}
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return e
}

// Addr is 127.0.0.1:port, for one of the daemon's ports.
func (e *Exim) Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// FailOnce makes the next RCPT once@… get 451.
func (e *Exim) FailOnce(t testing.TB) {
	t.Helper()
	p := filepath.Join(e.flags, "once")
	writeFile(t, p, nil)
	uid, gid, _ := eximUser(t)
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// Mail is a message Exim delivered.
type Mail struct {
	// Raw is the message with CRLF line ends, as it was sent (plus the
	// headers Exim added in front: Return-path, Envelope-to, Delivery-date,
	// Received, and the X-Test-* ones).
	Raw []byte
	// Msg is Raw parsed; Msg.Body reads the body once.
	Msg *mail.Message
	// File is the message's file in the Maildir.
	File string
}

// Delivered waits (ten seconds at most) until the Maildir holds n
// messages, fails the test if it holds more, and returns them sorted by
// their Envelope-to header, then by file name.
func (e *Exim) Delivered(t testing.TB, n int) []Mail {
	t.Helper()
	var files []string
	WaitFor(t, fmt.Sprintf("%d messages in the Maildir", n), func() bool {
		files, _ = filepath.Glob(filepath.Join(e.Maildir, "new", "*"))
		return len(files) >= n
	})
	if len(files) != n {
		t.Fatalf("%d messages in the Maildir, want %d", len(files), n)
	}
	out := make([]Mail, 0, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw = bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("delivered message %s: %v", f, err)
		}
		out = append(out, Mail{Raw: raw, Msg: m, File: f})
	}
	slices.SortStableFunc(out, func(a, b Mail) int {
		if c := strings.Compare(a.Msg.Header.Get("Envelope-to"), b.Msg.Header.Get("Envelope-to")); c != 0 {
			return c
		}
		return strings.Compare(a.File, b.File)
	})
	return out
}

// Count returns the number of messages in the Maildir now.
func (e *Exim) Count() int {
	files, _ := filepath.Glob(filepath.Join(e.Maildir, "new", "*"))
	return len(files)
}

// CA is a certificate authority for tests: it signs a relay's TLS
// certificate or a signer's S/MIME certificate. It is valid for a day.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA makes a certificate authority with a new P-256 key.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "takedown test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Issue returns a certificate and its PKCS #8 key, both PEM: without
// emails for a TLS server on loopback (names name, and 127.0.0.1), with
// them for the S/MIME signer of those addresses.
func (ca *CA) Issue(t testing.TB, name string, emails []string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if emails != nil {
		tmpl.EmailAddresses = emails
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	} else {
		tmpl.DNSNames = []string{name}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// writeFile writes a file that Exim's own user reads: mode 0644 whatever
// the umask (a test process that opened a database file has 077, package
// dbfile).
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
}
