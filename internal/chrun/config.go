package chrun

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"text/template"
)

// NodeConfig is what one server's configuration says: where it keeps its
// data and logs, its ports, its users and the cluster it is a shard of.
type NodeConfig struct {
	// Dir is the node's directory: config.xml, users.xml, the logs and
	// data/ (DataDir) and tmp/ below it.
	Dir string
	// Host is the address the server listens on (127.0.0.1).
	Host string
	// TCPPort is the native protocol's port, the one clients use;
	// HTTPPort and InterserverPort are required by the server, and unused.
	TCPPort, HTTPPort, InterserverPort int
	// User and Password are the account takedown connects with; the
	// server's users.xml keeps only the password's SHA-256.
	User, Password string
	// Cluster names the cluster of <remote_servers>; Shards lists the
	// native address (host:port) of every node, one shard each.
	Cluster string
	Shards  []string
}

// DataDir is where the server keeps its tables (<path>): a test may mount
// a small file system there before Start to fill the disk.
func (n NodeConfig) DataDir() string { return n.Dir + "/data/" }

// Render returns config.xml. The root element is <yandex>, which every
// release reads (18.16 knows no other; current ones also take
// <clickhouse>).
func (n NodeConfig) Render() string {
	var b bytes.Buffer
	if err := configTmpl.Execute(&b, n); err != nil {
		panic(err) // the template and its data are ours
	}
	return b.String()
}

// RenderUsers returns users.xml: the default user without a password,
// from loopback only (the server's own use), and n.User with the
// SHA-256 of n.Password, from loopback only.
func (n NodeConfig) RenderUsers() string {
	sum := sha256.Sum256([]byte(n.Password))
	var b bytes.Buffer
	if err := usersTmpl.Execute(&b, struct {
		User, Hash string
	}{n.User, hex.EncodeToString(sum[:])}); err != nil {
		panic(err)
	}
	return b.String()
}

// splitHostPort is net.SplitHostPort for the template, which takes the
// host and the port apart.
func splitHostPort(addr string) (host string, port int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

var funcs = template.FuncMap{
	"host": func(a string) string { h, _ := splitHostPort(a); return h },
	"port": func(a string) int { _, p := splitHostPort(a); return p },
	"xml":  xmlEscape,
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

var configTmpl = template.Must(template.New("config.xml").Funcs(funcs).Parse(`<?xml version="1.0"?>
<!-- Written by takedown (internal/chrun): one clickhouse-server of a test or demo cluster. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>{{xml .Dir}}/server.log</log>
        <errorlog>{{xml .Dir}}/err.log</errorlog>
        <console>0</console>
    </logger>
    <listen_host>{{.Host}}</listen_host>
    <tcp_port>{{.TCPPort}}</tcp_port>
    <http_port>{{.HTTPPort}}</http_port>
    <interserver_http_port>{{.InterserverPort}}</interserver_http_port>
    <interserver_http_host>{{.Host}}</interserver_http_host>
    <path>{{xml .Dir}}/data/</path>
    <tmp_path>{{xml .Dir}}/tmp/</tmp_path>
    <user_files_path>{{xml .Dir}}/user_files/</user_files_path>
    <format_schema_path>{{xml .Dir}}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <timezone>UTC</timezone>
    <remote_servers>
        <{{.Cluster}}>{{range .Shards}}
            <shard>
                <replica>
                    <host>{{host .}}</host>
                    <port>{{port .}}</port>
                    <user>{{xml $.User}}</user>
                    <password>{{xml $.Password}}</password>
                </replica>
            </shard>{{end}}
        </{{.Cluster}}>
    </remote_servers>
</yandex>
`))

var usersTmpl = template.Must(template.New("users.xml").Parse(`<?xml version="1.0"?>
<!-- Written by takedown (internal/chrun). -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <{{.User}}>
            <password_sha256_hex>{{.Hash}}</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </{{.User}}>
    </users>
    <quotas>
        <default></default>
    </quotas>
</yandex>
`))

// validName reports whether s can be an XML element name of ours (a user
// or a cluster): letters, digits and _, not starting with a digit.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func checkNames(user, cluster string) error {
	if !validName(user) {
		return fmt.Errorf("chrun: user %q: want letters, digits and _", user)
	}
	if !validName(cluster) {
		return fmt.Errorf("chrun: cluster %q: want letters, digits and _", cluster)
	}
	return nil
}
