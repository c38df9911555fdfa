package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/event"
)

// checkRole checks the role and what it needs: the NATS servers, the
// credential and TLS for servers beyond this machine, a sensor id that
// can be a NATS subject token, the central's list of sensors.
func (c *Config) checkRole(bad func(key, format string, args ...any)) {
	switch c.Role {
	case RoleSingle:
		return
	case RoleSensor, RoleCentral, RoleCollector:
	default:
		bad("role", "%q is not one of sensor, central, collector (or empty: everything in one process)", c.Role)
		return
	}
	n := c.NATS
	if len(n.Servers) == 0 {
		bad("nats.servers", "the %s role needs at least one NATS server (nats://host:4222)", c.Role)
	}
	remote := false
	for i, s := range n.Servers {
		host, err := natsHost(s)
		if err != nil {
			bad(fmt.Sprintf("nats.servers[%d]", i), "%q: %v", s, err)
			continue
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			remote = true
		}
	}
	if n.Credentials != "" {
		if err := bus.CheckCredentials(n.Credentials); err != nil {
			bad("nats.credentials", "%v", err)
		}
	} else if remote {
		bad("nats.credentials", "a server beyond this machine needs a credential: an NKey user seed or user:password in a file only its owner reads")
	}
	if n.TLS.CAFile == "" && remote {
		bad("nats.tls.ca_file", "a server beyond this machine is reached over TLS: name the CA that signs its certificate")
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		bad("nats.tls", "cert_file and key_file go together")
	}
	if n.Replicas != 1 && n.Replicas != 3 && n.Replicas != 5 {
		bad("nats.replicas", "%d is not 1, 3 or 5", n.Replicas)
	}
	if n.MaxStreamMB < 1 {
		bad("nats.max_stream_mb", "%d is not at least 1", n.MaxStreamMB)
	}
	switch c.Role {
	case RoleSensor:
		if !event.ValidSensorID(c.Sensor) {
			bad("sensor", "%q cannot name a sensor: it must be %s", c.Sensor, event.SensorIDRule)
		}
	case RoleCentral, RoleCollector:
		if len(c.Central.Sensors) == 0 {
			bad("central.sensors", "name the sensors whose events the %s stores", c.Role)
		}
		seen := map[string]bool{}
		for i, s := range c.Central.Sensors {
			if !event.ValidSensorID(s) {
				bad(fmt.Sprintf("central.sensors[%d]", i), "%q cannot name a sensor: it must be %s", s, event.SensorIDRule)
			} else if seen[s] {
				bad(fmt.Sprintf("central.sensors[%d]", i), "%q is named twice", s)
			}
			seen[s] = true
		}
		if n := c.Central.Name; n != "" && !event.ValidSensorID(n) {
			bad("central.name", "%q cannot name a %s: it must be %s", n, c.Role, event.SensorIDRule)
		}
	}
	if c.Role == RoleCollector {
		c.checkCollector(bad)
	}
}

// checkCollector checks what a collector needs beyond a central's: it
// writes beside other writers into one ClickHouse store, so it needs the
// ClickHouse engine and a name of its own (its consumer and its mark).
func (c *Config) checkCollector(bad func(key, format string, args ...any)) {
	if c.Store.Engine != EngineClickHouse {
		bad("store.engine", "a collector stores into ClickHouse beside the central: set store.engine: clickhouse and store.clickhouse (it is %q)", c.Store.Engine)
	}
	if c.Central.Name == "" {
		bad("central.name", "a collector needs a name of its own (its consumer of the events stream and its mark in the store), other than the central's and other collectors'")
	}
}

// natsHost returns the host of a NATS server URL.
func natsHost(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "nats", "tls":
	default:
		return "", fmt.Errorf("scheme %q is not nats or tls", u.Scheme)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("port %q", p)
		}
	}
	return u.Hostname(), nil
}
