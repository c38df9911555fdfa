package deliver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
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

	"go.uber.org/goleak"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/testnet"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// exim is an Exim daemon that the test started, on loopback, with all its
// files in a temporary directory, delivering every message to one Maildir.
type exim struct {
	dir     string
	maildir string // its new/ holds the delivered messages
	flags   string // a file here named once makes RCPT once@… fail with 451, once
	caFile  string
	// port offers STARTTLS and AUTH; tlsPort speaks TLS at once (smtps);
	// plainPort offers AUTH but no STARTTLS.
	port, tlsPort, plainPort int
	out                      *testnet.Buffer
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

const eximConfig = `# Exim for the tests of internal/deliver: loopback only, no DNS.
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

// startExim starts an Exim daemon for the test and stops it at cleanup.
func startExim(t *testing.T) *exim {
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
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	e := &exim{dir: dir, maildir: filepath.Join(dir, "mail"), flags: filepath.Join(dir, "flags"), out: &testnet.Buffer{}}
	ca := newTestCA(t)
	e.caFile = filepath.Join(dir, "tls", "ca.pem")
	writeFile(t, e.caFile, ca.certPEM)
	certPEM, keyPEM := ca.issue(t, "localhost", nil)
	writeFile(t, filepath.Join(dir, "tls", "cert.pem"), certPEM)
	writeFile(t, filepath.Join(dir, "tls", "key.pem"), keyPEM)
	os.Chown(filepath.Join(dir, "tls", "key.pem"), uid, gid)

	e.port, e.tlsPort, e.plainPort = testnet.FreePort(t), testnet.FreePort(t), testnet.FreePort(t)
	for e.tlsPort == e.port || e.plainPort == e.port || e.plainPort == e.tlsPort {
		e.tlsPort, e.plainPort = testnet.FreePort(t), testnet.FreePort(t)
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{user}}", uname, "{{port}}", strconv.Itoa(e.port),
		"{{tlsport}}", strconv.Itoa(e.tlsPort), "{{plainport}}", strconv.Itoa(e.plainPort)).Replace(eximConfig)
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
	for _, p := range []int{e.port, e.tlsPort, e.plainPort} {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		testnet.WaitFor(t, "exim listening on "+addr, func() bool {
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

func (e *exim) addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// failOnce makes the next RCPT once@… get 451.
func (e *exim) failOnce(t *testing.T) {
	t.Helper()
	p := filepath.Join(e.flags, "once")
	writeFile(t, p, nil)
	uid, gid, _ := eximUser(t)
	os.Chown(p, uid, gid)
}

// delivered waits until the Maildir holds n messages and returns them,
// with CRLF line ends as they were sent, sorted by recipient.
func (e *exim) delivered(t *testing.T, n int) []delivered {
	t.Helper()
	var files []string
	testnet.WaitFor(t, fmt.Sprintf("%d messages in the Maildir", n), func() bool {
		files, _ = filepath.Glob(filepath.Join(e.maildir, "new", "*"))
		return len(files) >= n
	})
	if len(files) != n {
		t.Fatalf("%d messages in the Maildir, want %d", len(files), n)
	}
	var out []delivered
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
		out = append(out, delivered{raw: raw, msg: m, file: f})
	}
	slices.SortFunc(out, func(a, b delivered) int {
		return strings.Compare(a.msg.Header.Get("Envelope-to"), b.msg.Header.Get("Envelope-to"))
	})
	return out
}

// count returns the number of messages in the Maildir now.
func (e *exim) count() int {
	files, _ := filepath.Glob(filepath.Join(e.maildir, "new", "*"))
	return len(files)
}

type delivered struct {
	raw  []byte
	msg  *mail.Message
	file string
}

// testCA is a certificate authority for the relay's and the S/MIME
// signer's certificates.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newTestCA(t testing.TB) *testCA {
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
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key for a TLS server on loopback (name
// localhost and 127.0.0.1), or for the S/MIME signer of emails.
func (ca *testCA) issue(t testing.TB, name string, emails []string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
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

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// openDB opens a takedown database file in dir; "" is in memory.
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := dbfile.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if path == "" {
		db.SetMaxOpenConns(1)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
