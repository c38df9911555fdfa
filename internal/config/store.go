package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// checkStore checks store.engine and, for ClickHouse, where its servers
// are and how takedown proves who it is to them.
func (c *Config) checkStore(bad func(key, format string, args ...any)) {
	switch c.Store.Engine {
	case EngineDuckDB:
		return
	case EngineClickHouse:
	default:
		bad("store.engine", "%q is not one of duckdb, clickhouse", c.Store.Engine)
		return
	}
	ch := c.Store.ClickHouse
	const key = "store.clickhouse"
	if len(ch.Addrs) == 0 {
		bad(key+".addrs", "store.engine clickhouse needs at least one server address (host:9000)")
	}
	remote := false
	checkList := func(list string, addrs []string) {
		seen := map[string]bool{}
		for i, a := range addrs {
			k := fmt.Sprintf("%s.%s[%d]", key, list, i)
			host, err := serverAddr(a)
			switch {
			case err != nil:
				bad(k, "%q: %v", a, err)
			case seen[a]:
				bad(k, "%q is named twice", a)
			default:
				remote = remote || !isLoopback(host)
			}
			seen[a] = true
		}
	}
	checkList("addrs", ch.Addrs)
	checkList("shards", ch.Shards)
	if ch.Database != "" && !isIdentifier(ch.Database) {
		bad(key+".database", "%q is not a ClickHouse name: letters, digits and _, not starting with a digit, at most 64", ch.Database)
	}
	if ch.Cluster != "" && !isIdentifier(ch.Cluster) {
		bad(key+".cluster", "%q is not a ClickHouse name: letters, digits and _, not starting with a digit, at most 64", ch.Cluster)
	}
	switch {
	case ch.Cluster != "" && len(ch.Shards) == 0:
		bad(key+".shards", "cluster %q needs the native address of each of its shards, where the tables are created", ch.Cluster)
	case ch.Cluster == "" && len(ch.Shards) > 0:
		bad(key+".shards", "shards are those of a cluster: set store.clickhouse.cluster too, or remove them for one node")
	}
	if ch.Username != "" && strings.ContainsAny(ch.Username, " \t\r\n'\"\\") {
		bad(key+".username", "%q has spaces, quotes or backslashes", ch.Username)
	}
	if ch.PasswordFile != "" {
		if _, err := ReadSecretFile(ch.PasswordFile); err != nil {
			bad(key+".password_file", "%v", err)
		}
		if ch.Username == "" {
			bad(key+".username", "a password_file is the password of a user: name it")
		}
	} else if remote {
		bad(key+".password_file", "a server beyond this machine needs a user and its password, in a file only its owner reads (mode 0600)")
	}
	if ch.TLS.CAFile == "" && remote {
		bad(key+".tls.ca_file", "a server beyond this machine is reached over TLS: name the CA that signs its certificate")
	}
	if (ch.TLS.CertFile == "") != (ch.TLS.KeyFile == "") {
		bad(key+".tls", "cert_file and key_file go together")
	}
	for _, f := range []struct{ name, path string }{{"ca_file", ch.TLS.CAFile}, {"cert_file", ch.TLS.CertFile}, {"key_file", ch.TLS.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad(key+".tls."+f.name, "%v", err)
		}
	}
	if ch.DialTimeoutMS < 0 || ch.DialTimeoutMS > 600_000 {
		bad(key+".dial_timeout_ms", "%d is not from 1 to 600000 (0: the default)", ch.DialTimeoutMS)
	}
}

// serverAddr checks a host:port of a server, by name or address, and
// returns its host.
func serverAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", errors.New("not host:port")
	}
	if net.ParseIP(host) == nil && !isDomain(host) {
		return "", fmt.Errorf("host %q is neither an IP address nor a host name", host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return host, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isIdentifier reports whether s can name a ClickHouse database or
// cluster without quoting.
func isIdentifier(s string) bool {
	if s == "" || len(s) > 64 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ReadSecretFile reads a secret kept in a file of its own, such as
// store.clickhouse.password_file: its first line that is not empty or a
// # comment. The file must be readable by its owner alone (mode 0600 or
// stricter): a secret others can read is no secret.
func ReadSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by others (mode %04o): chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	return "", fmt.Errorf("%s is empty", path)
}
