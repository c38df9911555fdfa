package config

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Evidence configures the transparency log (internal/evidence): every
// stored batch of events and every audit entry is a leaf of a Merkle tree
// kept in the database file, and serve signs a checkpoint of the tree
// every interval and at shutdown, and publishes it.
type Evidence struct {
	// Enabled turns the log on. Default: on for the single and the
	// central role; a sensor keeps no events, and a collector's events
	// are not in the central's log (it has no database file), so both
	// refuse enabled: true.
	Enabled *bool `yaml:"enabled"`
	// Origin is the first line of every checkpoint: the log's name, which
	// witnesses and verifiers know it by. Default "takedown/" followed by
	// central.name, else the host name.
	Origin string `yaml:"origin"`
	// KeyFile is the note signer key (PRIVATE+KEY+…, `takedown evidence
	// keygen`), in a file only its owner reads (mode 0600). Default
	// <data_dir>/evidence.key, made at the first start when missing, with
	// its verifier key written beside it (evidence.pub) and logged.
	KeyFile string `yaml:"key_file"`
	// SignerCommand signs instead of a key file: it reads the message on
	// its stdin and writes the 64-byte Ed25519 signature (raw or base64)
	// on its stdout; PublicKey is then its note verifier key
	// (NAME+HASH+BASE64). Not with key_file.
	SignerCommand []string `yaml:"signer_command"`
	PublicKey     string   `yaml:"public_key"`
	// Interval is how often serve signs a checkpoint when the tree grew
	// (and once at shutdown), from 1s to 24h. Default 1m.
	Interval time.Duration `yaml:"interval"`
	// PublishDir receives every checkpoint: checkpoint (the latest) and
	// checkpoints/SIZE.note, each written whole (temp file, fsync,
	// rename), for others to mirror. Default <data_dir>/evidence/published.
	PublishDir string `yaml:"publish_dir"`
}

// DefaultEvidenceInterval is evidence.interval unless configured.
const DefaultEvidenceInterval = time.Minute

// On tells whether role keeps the log: evidence.enabled, else on for
// the single and the central role.
func (e Evidence) On(role string) bool {
	if e.Enabled != nil {
		return *e.Enabled
	}
	return role == RoleSingle || role == RoleCentral
}

// fillEvidence sets evidence's defaults.
func (c *Config) fillEvidence() {
	e := &c.Evidence
	if e.Origin == "" {
		name := c.Central.Name
		if name == "" {
			name, _ = os.Hostname()
		}
		if name == "" {
			name = c.Sensor
		}
		e.Origin = "takedown/" + name
	}
	if e.KeyFile == "" && len(e.SignerCommand) == 0 {
		e.KeyFile = filepath.Join(c.DataDir, "evidence.key")
	}
	if e.Interval == 0 {
		e.Interval = DefaultEvidenceInterval
	}
	if e.PublishDir == "" {
		e.PublishDir = filepath.Join(c.DataDir, "evidence", "published")
	}
}

// checkEvidence checks the evidence section.
func (c *Config) checkEvidence(bad func(key, format string, args ...any)) {
	e := c.Evidence
	if e.Enabled != nil && *e.Enabled {
		switch c.Role {
		case RoleSensor:
			bad("evidence.enabled", "a sensor keeps no events: the central's log holds them (leave evidence out of a sensor's config)")
		case RoleCollector:
			bad("evidence.enabled", "a collector's events are not in the central's log, and a collector has no database file to keep a log of its own: run the log on the single or central role (set evidence.enabled: false or leave it out)")
		}
	}
	if !e.On(c.Role) {
		return
	}
	if strings.TrimSpace(e.Origin) != e.Origin || e.Origin == "" || strings.ContainsAny(e.Origin, "\n\r") {
		bad("evidence.origin", "%q must be one line of text without leading or trailing spaces", e.Origin)
	}
	if len(e.SignerCommand) > 0 {
		if e.KeyFile != "" {
			bad("evidence", "sign with key_file or signer_command, not both")
		}
		if strings.TrimSpace(e.SignerCommand[0]) == "" {
			bad("evidence.signer_command[0]", "empty program name")
		}
		if e.PublicKey == "" {
			bad("evidence.public_key", "a signer_command needs its note verifier key (NAME+HASH+BASE64, from `takedown evidence keygen`)")
		}
	} else if e.PublicKey != "" {
		bad("evidence.public_key", "only with signer_command: a key_file holds its own")
	}
	if e.PublicKey != "" {
		if _, err := note.NewVerifier(e.PublicKey); err != nil {
			bad("evidence.public_key", "%q is not a note verifier key (NAME+HASH+BASE64): %v", e.PublicKey, err)
		}
	}
	if e.Interval < time.Second || e.Interval > 24*time.Hour {
		bad("evidence.interval", "%v is not from 1s to 24h", e.Interval)
	}
	if strings.TrimSpace(e.PublishDir) == "" {
		bad("evidence.publish_dir", "empty path")
	}
}
