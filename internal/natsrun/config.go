package natsrun

import (
	"fmt"
	"strconv"
	"strings"
)

// ClusterName is the name of the NATS cluster natsrun starts.
const ClusterName = "takedown"

// NodeConfig is what one node's configuration file says.
type NodeConfig struct {
	// Name is the server's name (unique in the cluster; JetStream's
	// replicas are placed by it).
	Name string
	// Host is the address every port binds (127.0.0.1).
	Host string
	// Port is the client port, ClusterPort the port of the routes between
	// servers (unused with one node), MonitorPort the HTTP monitoring port.
	Port, ClusterPort, MonitorPort int
	// Routes are the other nodes' route addresses (host:port).
	Routes []string
	// StoreDir is JetStream's directory.
	StoreDir string
	// TLS, if CertFile is set, makes the client port speak TLS only.
	TLS TLSFiles
	// Accounts is the accounts block (RenderAccounts).
	Accounts string
}

// Render returns the node's configuration file. The routes between the
// nodes stay plain: they are loopback in the clusters natsrun starts (a
// deployment across machines protects them too: deploy/nats).
func (n NodeConfig) Render() string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "# nats-server node %s, written by takedown (internal/natsrun).\n", n.Name)
	fmt.Fprintf(&b, "server_name: %s\n", q(n.Name))
	fmt.Fprintf(&b, "listen: %s\n", q(hostPort(n.Host, n.Port)))
	fmt.Fprintf(&b, "http: %s\n", q(hostPort(n.Host, n.MonitorPort)))
	// A client whose server went away reconnects to another one; the
	// default two-minute ping would leave a half-open connection for long.
	b.WriteString("ping_interval: \"5s\"\n")
	b.WriteString("jetstream {\n")
	fmt.Fprintf(&b, "  store_dir: %s\n", q(n.StoreDir))
	b.WriteString("  max_memory_store: 256MB\n")
	b.WriteString("  max_file_store: 4GB\n")
	b.WriteString("}\n")
	if len(n.Routes) > 0 {
		b.WriteString("cluster {\n")
		fmt.Fprintf(&b, "  name: %s\n", q(ClusterName))
		fmt.Fprintf(&b, "  listen: %s\n", q(hostPort(n.Host, n.ClusterPort)))
		b.WriteString("  routes: [\n")
		for _, r := range n.Routes {
			fmt.Fprintf(&b, "    %s\n", q("nats-route://"+r))
		}
		b.WriteString("  ]\n}\n")
	}
	if n.TLS.CertFile != "" {
		b.WriteString("tls {\n")
		fmt.Fprintf(&b, "  cert_file: %s\n", q(n.TLS.CertFile))
		fmt.Fprintf(&b, "  key_file: %s\n", q(n.TLS.KeyFile))
		b.WriteString("  timeout: 2\n")
		b.WriteString("}\n")
	}
	b.WriteString(n.Accounts)
	return b.String()
}

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}
