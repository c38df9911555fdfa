// Package chrun runs clickhouse-server processes on one machine: one node,
// or several each a shard of one cluster, for the tests of the ClickHouse
// engine (internal/chstore, through internal/chtest) and for `takedown
// demo --store clickhouse`.
//
// # Why real processes
//
// The central talks to a ClickHouse server over the network in
// production; the tests and the demo do too, so that a SIGKILL kills a
// process, a restart reads its parts from disk, and a full disk is the
// server's own. The binary is the operator's: $TAKEDOWN_CLICKHOUSE_SERVER,
// clickhouse-server on the PATH, or Debian's /usr/sbin/clickhouse-server
// (Binary, with how to install it when missing). A binary named
// clickhouse (the single binary of current releases) is run as
// `clickhouse server`. $TAKEDOWN_CLICKHOUSE_SERVER_LATEST names a second,
// newer one that tests run against too.
//
// # What Start writes
//
// Each node gets a directory of its own under Config.Dir (n0/, n1/, …):
// config.xml (root element <yandex>, which 18.16 needs and current
// releases still read), users.xml, its data in data/ (a test may mount a
// small tmpfs there before Start to fill the disk), tmp/, and its logs:
// server.log and err.log (level warning) and stdout.log (the process's
// output, one "--- chrun: starting" line per run). Ports (native, HTTP,
// interserver) are drawn from internal/freeport on 127.0.0.1; the HTTP
// port is unused (18.16's HTTP interface disagrees with clickhouse-go v2,
// so takedown speaks the native protocol only).
//
// users.xml has two accounts, both from loopback only: default, without a
// password, and Config.User (takedown), whose password is kept as its
// SHA-256 (password_sha256_hex). Every node's <remote_servers> names the
// cluster (Config.Cluster, "takedown") with one shard per node, each
// reached as Config.User, so that a Distributed table over it works from
// any node without ZooKeeper.
//
// # Waiting
//
// Start and Restart return when every node they started answers SELECT 1
// on its native port (clickhouse-go), or fail when a node exits or
// Config.ReadyTimeout (60 s) passes. Measured on the 2-CPU test VM with
// 18.16.1: two shards ready 1.2 s after Start. Each server runs in a
// process group of its own and, on Linux, dies with the process that
// started it.
package chrun
