package app

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
)

// APIBase is the URL of cfg's admin API: https when api.tls names a
// certificate.
func APIBase(cfg config.Config) string {
	if cfg.API.TLS.CertFile != "" {
		return "https://" + cfg.API.Listen
	}
	return "http://" + cfg.API.Listen
}

// APIHTTPClient is an HTTP client for cfg's admin API. With api.tls it
// accepts only the certificate in api.tls.cert_file, read at each
// connection, whatever names that certificate holds: the CLI reaches the
// API by its address (loopback, usually), which a certificate for a
// name would not match, and it reads the same config as the server.
func APIHTTPClient(cfg config.Config, timeout time.Duration) *http.Client {
	if cfg.API.TLS.CertFile == "" {
		return &http.Client{Timeout: timeout}
	}
	file := cfg.API.TLS.CertFile
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain and the name are not checked, the certificate is
		// pinned: VerifyConnection compares it with the file's.
		InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("the server at %s presents no certificate", cfg.API.Listen)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("api.tls.cert_file: %w", err)
			}
			for b, rest := pem.Decode(data); b != nil; b, rest = pem.Decode(rest) {
				if b.Type == "CERTIFICATE" && bytes.Equal(b.Bytes, cs.PeerCertificates[0].Raw) {
					return nil
				}
			}
			return fmt.Errorf("the server at %s presents another certificate than api.tls.cert_file %s", cfg.API.Listen, file)
		},
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Timeout: timeout, Transport: tr}
}

// NewAPIClient is a client of cfg's admin API, over TLS when api.tls is
// set (APIHTTPClient).
func NewAPIClient(cfg config.Config, token, actor string) *api.Client {
	return api.NewClient(APIBase(cfg), token, actor).WithHTTPClient(APIHTTPClient(cfg, 5*time.Minute))
}
