package natsrun

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"
)

// WriteNKeyCredential generates an NKey user key pair, writes its seed
// (one line, SU…) to path with mode 0600, the credential file format that
// package bus reads, and returns the public key (U…) for the server's
// configuration (User.NKey).
func WriteNKeyCredential(path string) (public string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	public, err = kp.PublicKey()
	if err != nil {
		return "", err
	}
	if err := writeFile(path, append(seed, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("natsrun: writing the credential: %w", err)
	}
	return public, nil
}

// WritePasswordCredential generates a random password for user, writes
// user:password (one line) to path with mode 0600, the other credential
// file format of package bus, and returns the password's bcrypt hash for
// the server's configuration (User.Password), so that the server's file
// does not hold the password itself. cost is bcrypt's (bcrypt.MinCost
// when below it): every connection pays it on the server, so clusters
// made for a test or the demo use the minimum, a deployment 11 or more.
func WritePasswordCredential(path, user string, cost int) (hash string, err error) {
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	password := base64.RawURLEncoding.EncodeToString(raw[:])
	h, err := bcrypt.GenerateFromPassword([]byte(password), max(cost, bcrypt.MinCost))
	if err != nil {
		return "", err
	}
	if err := writeFile(path, []byte(user+":"+password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("natsrun: writing the credential: %w", err)
	}
	return string(h), nil
}
