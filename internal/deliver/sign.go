package deliver

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/smallstep/pkcs7"
)

// signer wraps a MIME entity in a multipart/signed entity.
type signer interface {
	sign(content entity) (entity, error)
}

// pgpSigner signs as PGP/MIME (RFC 3156).
type pgpSigner struct {
	key *openpgp.Entity
	now func() time.Time
}

// loadPGP reads an OpenPGP secret key, armored or binary, and unlocks it
// with passphrase when it is protected.
func loadPGP(path, passphrase string, now func() time.Time) (*pgpSigner, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ring openpgp.EntityList
	if bytes.Contains(raw, []byte("-----BEGIN PGP")) {
		ring, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(raw))
	} else {
		ring, err = openpgp.ReadKeyRing(bytes.NewReader(raw))
	}
	if err != nil {
		return nil, fmt.Errorf("reading OpenPGP key %s: %w", path, err)
	}
	var key *openpgp.Entity
	for _, e := range ring {
		if e.PrivateKey != nil {
			key = e
			break
		}
	}
	if key == nil {
		return nil, fmt.Errorf("OpenPGP key %s: no secret key in the file (export it with gpg --export-secret-keys --armor)", path)
	}
	if key.PrivateKey.Encrypted {
		if passphrase == "" {
			return nil, fmt.Errorf("OpenPGP key %s is protected by a passphrase and none is configured", path)
		}
		if err := key.DecryptPrivateKeys([]byte(passphrase)); err != nil {
			return nil, fmt.Errorf("OpenPGP key %s: unlocking: %w", path, err)
		}
	}
	s := &pgpSigner{key: key, now: now}
	// Sign once now, so that a key that cannot sign fails at start-up and
	// not at the first report.
	if _, _, err := s.detach([]byte("test")); err != nil {
		return nil, fmt.Errorf("OpenPGP key %s cannot sign: %w", path, err)
	}
	return s, nil
}

// detach returns the armored detached signature of data and the micalg
// parameter naming its hash.
func (s *pgpSigner) detach(data []byte) ([]byte, string, error) {
	var sig bytes.Buffer
	cfg := &packet.Config{DefaultHash: crypto.SHA256, Time: s.now}
	if err := openpgp.DetachSign(&sig, s.key, bytes.NewReader(data), cfg); err != nil {
		return nil, "", err
	}
	p, err := packet.Read(bytes.NewReader(sig.Bytes()))
	if err != nil {
		return nil, "", err
	}
	sp, ok := p.(*packet.Signature)
	if !ok {
		return nil, "", fmt.Errorf("signing gave a %T packet", p)
	}
	micalg := "pgp-" + strings.ToLower(strings.ReplaceAll(sp.Hash.String(), "-", ""))
	var armored bytes.Buffer
	w, err := armor.Encode(&armored, "PGP SIGNATURE", nil)
	if err != nil {
		return nil, "", err
	}
	w.Write(sig.Bytes())
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	armored.WriteByte('\n')
	return bytes.ReplaceAll(armored.Bytes(), []byte("\n"), []byte("\r\n")), micalg, nil
}

func (s *pgpSigner) sign(content entity) (entity, error) {
	sig, micalg, err := s.detach(content.bytes())
	if err != nil {
		return entity{}, err
	}
	sigPart := entity{
		header: []string{
			`Content-Type: application/pgp-signature; name="signature.asc"`,
			"Content-Description: OpenPGP digital signature",
			`Content-Disposition: attachment; filename="signature.asc"`,
		},
		body: sig,
	}
	return multipartEntity("signed", map[string]string{"micalg": micalg, "protocol": "application/pgp-signature"},
		[]entity{content, sigPart}), nil
}

// smimeSigner signs as S/MIME (RFC 8551, multipart/signed with a detached
// PKCS #7 signature).
type smimeSigner struct {
	cert  *x509.Certificate
	chain []*x509.Certificate
	key   crypto.PrivateKey
}

// loadSMIME reads a PEM certificate (with its chain after it) and its PEM
// private key (PKCS #1, PKCS #8 or SEC 1; RSA or ECDSA).
func loadSMIME(certPath, keyPath string) (*smimeSigner, error) {
	if keyPath == "" {
		return nil, errors.New("S/MIME certificate without a key file")
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("S/MIME certificate %s and key %s: %w", certPath, keyPath, err)
	}
	s := &smimeSigner{key: pair.PrivateKey}
	for i, der := range pair.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("S/MIME certificate %s: certificate %d: %w", certPath, i+1, err)
		}
		if i == 0 {
			s.cert = c
		} else {
			s.chain = append(s.chain, c)
		}
	}
	if _, err := s.detach([]byte("test")); err != nil {
		return nil, fmt.Errorf("S/MIME certificate %s cannot sign: %w", certPath, err)
	}
	return s, nil
}

func (s *smimeSigner) detach(data []byte) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(data)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(s.cert, s.key, s.chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	sd.Detach()
	return sd.Finish()
}

func (s *smimeSigner) sign(content entity) (entity, error) {
	der, err := s.detach(content.bytes())
	if err != nil {
		return entity{}, err
	}
	sigPart := entity{
		header: []string{
			`Content-Type: application/pkcs7-signature; name="smime.p7s"`,
			"Content-Transfer-Encoding: base64",
			`Content-Disposition: attachment; filename="smime.p7s"`,
			"Content-Description: S/MIME Cryptographic Signature",
		},
		body: encodeBase64(der),
	}
	return multipartEntity("signed", map[string]string{"micalg": "sha-256", "protocol": "application/pkcs7-signature"},
		[]entity{content, sigPart}), nil
}
