// Package config holds takedown's one configuration tree: the YAML file a
// user writes, decoded strictly (an unknown key is an error naming the file,
// line and key), filled with defaults that run unprivileged on loopback, and
// validated with errors that name the key at fault.
//
// Each capability package has its own Config; the composition code
// translates this file's sections into them.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Config is the whole configuration file.
type Config struct {
	// DataDir holds the database, the API token and later the spool and
	// certificates. Default: $XDG_DATA_HOME/takedown, else
	// ~/.local/share/takedown, else ./takedown-data.
	DataDir string `yaml:"data_dir"`
	// Sensor names this sinkhole node in every event. Default: the host name.
	Sensor string `yaml:"sensor"`
	// Operator names who runs the sinkhole, e.g. "Example CERT"; it appears
	// in DNS TXT records and reports.
	Operator string `yaml:"operator"`

	Log   Log   `yaml:"log"`
	API   API   `yaml:"api"`
	Store Store `yaml:"store"`
}

// Log configures the structured log.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// API configures the registry's JSON HTTP API that `takedown serve` offers
// and that the CLI uses while a server runs.
type API struct {
	// Listen is the host:port of the API. Default 127.0.0.1:8480.
	Listen string `yaml:"listen"`
	// TokenFile holds the local bearer token; serve creates it (mode 0600)
	// when missing and the CLI reads it. Default <data_dir>/api.token.
	TokenFile string `yaml:"token_file"`
}

// Store configures the embedded event store.
type Store struct {
	// Path of the database file. Default <data_dir>/takedown.duckdb.
	Path string `yaml:"path"`
	// RetentionDays is how long events are kept; 0 keeps them forever.
	// Default 180.
	RetentionDays int `yaml:"retention_days"`
}

// DefaultRetentionDays is how long events are kept unless configured.
const DefaultRetentionDays = 180

// Default returns the configuration used when there is no file.
func Default() Config {
	c := Config{Store: Store{RetentionDays: DefaultRetentionDays}}
	c.fill()
	return c
}

// DefaultDataDir returns the data directory used when none is configured.
func DefaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "takedown")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" && home != "/" {
		return filepath.Join(home, ".local", "share", "takedown")
	}
	return "takedown-data"
}

// fill sets the defaults of fields left empty.
func (c *Config) fill() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.Sensor == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "sensor-1"
		}
		c.Sensor = h
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.API.Listen == "" {
		c.API.Listen = "127.0.0.1:8480"
	}
	if c.API.TokenFile == "" {
		c.API.TokenFile = filepath.Join(c.DataDir, "api.token")
	}
	if c.Store.Path == "" {
		c.Store.Path = filepath.Join(c.DataDir, "takedown.duckdb")
	}
}

// Validate checks the values; every problem is reported with its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if err := checkHostPort(c.API.Listen); err != nil {
		bad("api.listen", "%q: %v", c.API.Listen, err)
	}
	if c.Store.RetentionDays < 0 {
		bad("store.retention_days", "%d is negative; use 0 to keep events forever", c.Store.RetentionDays)
	}
	if strings.ContainsAny(c.Sensor, " \t\n,\"") || len(c.Sensor) > 64 {
		bad("sensor", "%q must be at most 64 characters without spaces, commas or quotes", c.Sensor)
	}
	return errors.Join(errs...)
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Errorf("host %q is not an IP address", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// WithDataDir returns c moved to another data directory: the paths that
// derive from it follow unless the file set them.
func WithDataDir(c Config, dir string) (Config, error) {
	old := c.DataDir
	c.DataDir = dir
	if c.Store.Path == filepath.Join(old, "takedown.duckdb") {
		c.Store.Path = filepath.Join(dir, "takedown.duckdb")
	}
	if c.API.TokenFile == filepath.Join(old, "api.token") {
		c.API.TokenFile = filepath.Join(dir, "api.token")
	}
	return c, c.Validate()
}
