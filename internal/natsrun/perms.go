package natsrun

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/takedown-project/takedown/internal/bus"
)

// Account is the NATS account every takedown user belongs to, with
// JetStream; SystemAccount is the server's own (monitoring, server events).
const (
	Account       = "TAKEDOWN"
	SystemAccount = "SYS"
)

// The object store's stream: the object store names its stream OBJ_<bucket>.
const servedObjectStream = "OBJ_" + bus.ServedBucket

// Permissions are the subjects a user may publish to and subscribe to.
// Everything else is denied: the server's permissions are allow lists.
type Permissions struct {
	Publish   []string
	Subscribe []string
}

// SensorPermissions are those of sensor id. The sensor writes its own
// subjects and nothing else; it reads the served set and nothing else.
//
// Publish:
//
//	takedown.events.<id>        its batches of events (stream TAKEDOWN_EVENTS, acked by JetStream)
//	takedown.sensors.<id>       its heartbeat (core NATS)
//	$JS.API.INFO                account info (a client asks it to see that JetStream is there)
//
// and, for each of the two streams of the served set, TAKEDOWN_SERVED (the
// deltas) and OBJ_takedown_served (the object store of the full form and the
// rules), what a reader needs (readStream):
//
//	$JS.API.STREAM.INFO.<s>            the stream's state (the object store opens its bucket with it)
//	$JS.API.STREAM.MSG.GET.<s>         one message, by sequence or last by subject
//	$JS.API.DIRECT.GET.<s>, ….<s>.>    the same, answered by any replica (object info, delta by sequence)
//	$JS.API.CONSUMER.CREATE.<s>        an ephemeral consumer, as clients older than server 2.9 ask
//	$JS.API.CONSUMER.CREATE.<s>.>      an ordered consumer (name, and filter subject, in the subject)
//	$JS.API.CONSUMER.MSG.NEXT.<s>.>    pulling from it (the jetstream package's ordered consumer pulls)
//	$JS.API.CONSUMER.INFO.<s>.>        its state
//	$JS.API.CONSUMER.DELETE.<s>.>      removing it when done
//	$JS.FC.<s>.>                       flow-control replies of a push consumer (the object store's chunks)
//
// Subscribe: _INBOX_<id>.> only, where the replies to all of the above
// arrive (the connection's inbox prefix, bus.InboxPrefix).
//
// Nothing on TAKEDOWN_EVENTS beyond publishing (no consumer, no message
// get), nothing of another sensor, no stream or consumer it could create
// that outlives it: the CREATE subjects above cannot make a durable
// consumer (that is $JS.API.CONSUMER.DURABLE.CREATE); an ordered consumer
// is ephemeral and goes with the connection.
//
// To let sensors read one more stream, add a readStream line; to let them
// publish one more subject of their own, add it next to takedown.events.
func SensorPermissions(id string) Permissions {
	pub := []string{
		bus.EventsSubject(id),
		bus.HeartbeatSubject(id),
		"$JS.API.INFO",
	}
	pub = append(pub, readStream(bus.ServedStream)...)
	pub = append(pub, readStream(servedObjectStream)...)
	return Permissions{
		Publish:   pub,
		Subscribe: []string{bus.InboxPrefix(id) + ".>"},
	}
}

// readStream is what a client needs to read stream s with ordered
// consumers and message gets, and nothing that writes to it.
func readStream(s string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + s,
		"$JS.API.STREAM.MSG.GET." + s,
		"$JS.API.DIRECT.GET." + s,
		"$JS.API.DIRECT.GET." + s + ".>",
		"$JS.API.CONSUMER.CREATE." + s,
		"$JS.API.CONSUMER.CREATE." + s + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + s + ".>",
		"$JS.API.CONSUMER.INFO." + s + ".>",
		"$JS.API.CONSUMER.DELETE." + s + ".>",
		"$JS.FC." + s + ".>",
	}
}

// CentralPermissions are those of the central, which manages the streams
// and consumers and publishes the served set.
//
// Publish:
//
//	takedown.>    the served set's deltas (takedown.served.delta), and room for what comes
//	$JS.API.>     creating and updating the streams, the object store and the consumers, pulling
//	$JS.ACK.>     acknowledging what its durable consumer stored
//	$JS.FC.>      flow-control replies of push consumers
//	$O.>          writing the object store (takedown_served: full, rules)
//	$KV.>         a key-value bucket, should the central keep one
//
// Subscribe: takedown.> (the sensors' heartbeats, core NATS) and its inbox
// _INBOX_central.>, where pulled messages and API replies arrive. It does
// not subscribe to $JS.API.> and the like: a subscriber there would see
// every other client's requests, which no takedown process needs.
func CentralPermissions() Permissions {
	return Permissions{
		Publish:   []string{"takedown.>", "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$O.>", "$KV.>"},
		Subscribe: []string{"takedown.>", bus.InboxPrefix(bus.CentralUser) + ".>"},
	}
}

// PermissionsOf returns the permissions of user: CentralPermissions for
// bus.CentralUser, SensorPermissions otherwise. It fails for a name that is
// neither (not a sensor id).
func PermissionsOf(user string) (Permissions, error) {
	if user == bus.CentralUser {
		return CentralPermissions(), nil
	}
	if !bus.ValidSensorID(user) {
		return Permissions{}, fmt.Errorf("natsrun: %q is neither %q nor a sensor id (a DNS label in lower case)", user, bus.CentralUser)
	}
	return SensorPermissions(user), nil
}

// User is one user of the TAKEDOWN account in the server's configuration.
// Exactly one of NKey and Password is set.
//
// A value that starts with '$' and a letter is written as a reference to a
// configuration variable (which nats-server takes from the config files,
// else from the environment), so that a configuration can name secrets it
// does not hold: deploy/nats/accounts.conf uses $TAKEDOWN_NKEY_SENSOR_1 and
// the like. Anything else is written as a quoted string (a bcrypt hash
// starts with "$2", a digit, and stays a string).
type User struct {
	// Name is bus.CentralUser or a sensor id; it chooses the permissions.
	Name string
	// NKey is the user's public NKey (U…): the user proves it holds the
	// seed by signing the server's nonce; the server holds no secret.
	NKey string
	// Password is the user's password, plain or bcrypt-hashed ($2a$…, as
	// nats-server's "passwd" tool or htpasswd -nbB make it). The user name
	// is Name.
	Password string
}

var configVariable = regexp.MustCompile(`^\$[A-Za-z_][A-Za-z0-9_]*$`)

// VariableName returns the configuration variable that RenderAccounts
// refers to for the secret of user with variables: TAKEDOWN_NKEY_ and the
// name in upper case with '-' as '_' (sensor-1: TAKEDOWN_NKEY_SENSOR_1),
// or TAKEDOWN_PASSWORD_… for a password.
func VariableName(kind, user string) string {
	return "TAKEDOWN_" + strings.ToUpper(kind) + "_" + strings.ToUpper(strings.ReplaceAll(user, "-", "_"))
}

// RenderAccounts renders the accounts block of a nats-server configuration:
// the account TAKEDOWN with JetStream and users, each with its permissions
// (PermissionsOf), and the system account SYS with the user system, for
// an operator's tools (server reports; nil: no user, the monitoring port
// still works; takedown itself never connects as it; its Name is only
// checked with a password). The output is deterministic: the same
// users give the same bytes, in the order given.
func RenderAccounts(users []User, system *User) (string, error) {
	if len(users) == 0 {
		return "", errors.New("natsrun: no users")
	}
	var b strings.Builder
	b.WriteString("# The accounts, users and permissions of takedown (internal/natsrun.RenderAccounts).\n")
	b.WriteString("# A sensor publishes its own subjects and reads the served set; the central manages\n")
	b.WriteString("# the streams. Every subject is explained in natsrun.SensorPermissions and\n")
	b.WriteString("# natsrun.CentralPermissions.\n")
	b.WriteString("accounts {\n")
	b.WriteString("  " + Account + " {\n")
	b.WriteString("    jetstream: enabled\n")
	b.WriteString("    users: [\n")
	seen := map[string]bool{}
	for _, u := range users {
		if seen[u.Name] {
			return "", fmt.Errorf("natsrun: user %q twice", u.Name)
		}
		seen[u.Name] = true
		perms, err := PermissionsOf(u.Name)
		if err != nil {
			return "", err
		}
		id, err := identity(u)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "      # %s\n", u.Name)
		fmt.Fprintf(&b, "      {\n        %s\n        permissions: {\n", id)
		writeList(&b, "publish", perms.Publish)
		writeList(&b, "subscribe", perms.Subscribe)
		b.WriteString("        }\n      }\n")
	}
	b.WriteString("    ]\n  }\n")
	b.WriteString("  " + SystemAccount + " {\n")
	if system != nil {
		id, err := identity(*system)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "    users: [\n      { %s }\n    ]\n", id)
	}
	b.WriteString("  }\n}\n")
	b.WriteString("system_account: " + SystemAccount + "\n")
	return b.String(), nil
}

// identity renders how the server recognises u.
func identity(u User) (string, error) {
	switch {
	case u.NKey != "" && u.Password != "":
		return "", fmt.Errorf("natsrun: user %q has both an NKey and a password", u.Name)
	case u.NKey != "":
		if !configVariable.MatchString(u.NKey) && !nkeys.IsValidPublicUserKey(u.NKey) {
			return "", fmt.Errorf("natsrun: user %q: %q is not a public user NKey (U…)", u.Name, u.NKey)
		}
		return "nkey: " + value(u.NKey), nil
	case u.Password != "":
		if u.Name == "" {
			return "", errors.New("natsrun: a password user without a name")
		}
		return "user: " + strconv.Quote(u.Name) + ", password: " + value(u.Password), nil
	}
	return "", fmt.Errorf("natsrun: user %q has neither an NKey nor a password", u.Name)
}

// value writes a variable reference bare and anything else quoted.
func value(s string) string {
	if configVariable.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}

func writeList(b *strings.Builder, name string, subjects []string) {
	fmt.Fprintf(b, "          %s: { allow: [\n", name)
	for _, s := range subjects {
		fmt.Fprintf(b, "            %s\n", strconv.Quote(s))
	}
	b.WriteString("          ] }\n")
}

// DeployUsers are the users of a deployment whose keys the configuration
// does not hold: the central and each sensor with an NKey given by a
// variable (VariableName("nkey", user)).
func DeployUsers(sensors ...string) []User {
	users := []User{{Name: bus.CentralUser, NKey: "$" + VariableName("nkey", bus.CentralUser)}}
	for _, s := range sensors {
		users = append(users, User{Name: s, NKey: "$" + VariableName("nkey", s)})
	}
	return users
}

// DeployKeysFile is the file, beside accounts.conf, that defines the
// variables of DeployUsers: one line NAME: "U…" a user.
const DeployKeysFile = "nkeys.conf"

// RenderDeployAccounts renders deploy/nats/accounts.conf for sensors: it
// includes DeployKeysFile first (nats-server parses an included file on
// its own, so the variables must be defined in the file that uses them,
// or in the environment), then RenderAccounts(DeployUsers(sensors...))
// with the system account's user TAKEDOWN_NKEY_SYS.
func RenderDeployAccounts(sensors ...string) (string, error) {
	s, err := RenderAccounts(DeployUsers(sensors...), &User{Name: "sys", NKey: "$" + VariableName("nkey", "sys")})
	if err != nil {
		return "", err
	}
	return "# The public NKeys: " + DeployKeysFile + " (deploy/README.md, \"Many machines\").\ninclude \"" + DeployKeysFile + "\"\n\n" + s, nil
}
