package spool

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// idFile names the file that holds a spool's identity.
const idFile = "spool.id"

// ID identifies one numbering of a spool's segments: a directory gets a new
// one whenever Open finds it without segments (a new spool, or one whose
// segments were deleted, so that numbering starts again at 1). A position
// saved together with the ID it came from can then tell a spool that was
// deleted or replaced from the one it was read from, where the numbers
// alone would point into the new segments and skip their first records.
type ID [16]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ID returns the spool's identity.
func (s *Spool) ID() ID { return s.id }

// loadID reads the directory's identity, or writes a new one when fresh is
// set (no segment survived) or none was kept (a spool of an older
// version). It is called before the first segment of the run is created.
func loadID(dir string, fresh bool) (ID, error) {
	path := filepath.Join(dir, idFile)
	var id ID
	if !fresh {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			n, derr := hex.Decode(id[:], []byte(strings.TrimSpace(string(b))))
			if derr == nil && n == len(id) {
				return id, nil
			}
			// A damaged file: the segments stay readable, and a
			// saved position is compared with a new identity (and so
			// read from the start of what is here).
		case !errors.Is(err, fs.ErrNotExist):
			return id, fmt.Errorf("spool: %w", err)
		}
	}
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("spool: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return id, fmt.Errorf("spool: %w", err)
	}
	_, err = f.WriteString(id.String() + "\n")
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return id, fmt.Errorf("spool: writing %s: %w", path, err)
	}
	return id, nil
}
