// Package natstest starts real nats-server clusters for tests: a thin
// testing.T wrapper around package natsrun (which the demo uses too), so
// that a test gets a temporary directory, processes killed when it ends
// even if it failed, the nodes' logs in its output when it failed, and
// t.Fatal instead of errors.
//
// Tests run against real servers, not the embedded server package: the
// sensors and the central talk to a cluster of separate processes in
// production, and a test that kills the stream leader with SIGKILL must
// kill a process. They run against both versions takedown supports:
// Debian 12's nats-server 2.9.10 (Binary) and the current release
// ($TAKEDOWN_NATS_SERVER_LATEST, which .ci/run builds), through Binaries:
//
//	for v, bin := range natstest.Binaries(t) {
//		t.Run("nats-"+v, func(t *testing.T) {
//			c := natstest.Start(t, natstest.Options{TLS: true, Sensors: []string{"s1", "s2"}, Binary: bin})
//			nc := c.Connect(t, "s1")
//			…
//		})
//	}
//
// Every cluster has the users and permissions of production
// (natsrun.RenderAccounts): a test that passes here passes against a
// deployment's configuration, and one that needs a permission the
// deployment lacks fails here first.
package natstest
