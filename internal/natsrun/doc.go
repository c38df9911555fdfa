// Package natsrun runs nats-server clusters on one machine and writes what
// a NATS deployment of takedown needs: the accounts, users and permissions
// (RenderAccounts), the credential files package bus reads
// (WriteNKeyCredential, WritePasswordCredential) and TLS files (WriteTLS).
// `takedown demo --sensors 2` starts its three local servers with it, and
// package natstest wraps it for tests.
//
// # Why real processes
//
// The sensors and the central talk to separate nats-server processes in
// production; the demo and the tests do too, so that a SIGKILL kills a
// process, a restart reads its store from disk, and the configuration the
// servers load is the one RenderAccounts writes for deploy/nats. The
// binary is the operator's: $TAKEDOWN_NATS_SERVER, the PATH, or Debian's
// /usr/sbin/nats-server (Binary, with how to install it when missing).
// Everything natsrun writes works with nats-server 2.9.10 (Debian 12) and
// the current release: no option newer than 2.9.
//
// # One cluster
//
// Start draws each node's three ports (client, routes, monitoring) from
// internal/freeport on 127.0.0.1, writes one configuration file, store
// directory and log per node under Config.Dir, and starts the processes.
// It returns when every node answers /healthz (which on a JetStream
// server means: up, current with the meta group and with the streams it
// holds) and names a running node as the meta leader (/jsz), so that the
// first stream created after Start does not race the election. Restart
// waits the same way for one node, so that a test that kills a stream
// leader and restarts it knows the node has caught up. Every wait is
// bounded (Config.ReadyTimeout, 60 s). Measured on the 2-CPU test VM, on
// 2.9.10 and 2.15.3 alike: three nodes ready 0.2 to 0.6 s after Start; a
// new stream leader 4 to 9 s after the old one is killed (the servers'
// election timeout, not natsrun's polling: a publisher retries for that
// long); a restarted node ready and caught up 2 to 3 s after Restart. Each server runs in a process
// group of its own and, on Linux, dies with the process that started it.
//
// # Users
//
// One account, TAKEDOWN, with JetStream, holds the central (a password:
// the server's file keeps its bcrypt hash) and one user per sensor (an
// NKey: the server keeps only the public key); a system account lets an
// operator's tools read server events. The permissions are allow lists
// (SensorPermissions, CentralPermissions): a sensor publishes its own
// events and heartbeat and reads the served set; it cannot read or
// consume another sensor's events, or anything besides replies on its own
// inbox, _INBOX_<sensor>.
//
// # What permissions cannot stop
//
// A client allowed to create a consumer on a stream chooses its deliver
// subject in the request's body, which subject permissions do not see, and
// nats-server (2.9.10 and 2.15.3 alike) checks it against neither the
// creator's permissions nor other streams' subjects. Measured: sensor s1
// created push consumers on TAKEDOWN_SERVED delivering to
// takedown.events.s2; they stay idle until something subscribes to that
// exact subject, then deliver the whole stream, and TAKEDOWN_EVENTS
// stored the three deltas of the test. Nothing is read that way (the
// messages are the served set, which every sensor may read), but a sensor
// can put messages that are not batches into the events stream, or onto
// another sensor's heartbeat subject. The central drops what is not a
// batch from a configured sensor (issue 19, bad input), and the stream's
// limits bound the room it takes. Removing the CREATE subjects from
// SensorPermissions closes it, at the price of reading the served set by
// message gets only (DIRECT.GET by sequence; the object store's Get uses
// a consumer).
package natsrun

//go:generate go run ./internal/natsgen accounts -o ../../deploy/nats/accounts.conf
