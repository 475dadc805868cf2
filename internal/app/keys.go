package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"switchyard/internal/config"
	"switchyard/internal/errs"
	"switchyard/internal/keyring"
	"switchyard/internal/store"
)

// rotateBatch is how many rows per table one re-wrap transaction moves.
const rotateBatch = 500

const keysUsage = "usage: switchyard keys rotate [flags] | switchyard keys retire vN [flags]"

// keysCmd runs `switchyard keys rotate` and `switchyard keys retire vN` (spec §11).
func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &config.Error{Msg: keysUsage}
	}
	switch args[0] {
	case "rotate":
		return keysRotate(ctx, args[1:], getenv, stdout, stderr)
	case "retire":
		if len(args) < 2 {
			return &config.Error{Msg: keysUsage}
		}
		v, ok := parseVersion(args[1])
		if !ok {
			return &config.Error{Msg: fmt.Sprintf("keys retire: %q is not a master-key version (want vN, N >= 1)", args[1])}
		}
		return keysRetire(ctx, v, args[2:], getenv, stdout)
	}
	return &config.Error{Msg: keysUsage}
}

// parseVersion parses "vN" (N >= 1, no leading zero).
func parseVersion(s string) (int, bool) {
	if len(s) < 2 || s[0] != 'v' || s[1] == '0' {
		return 0, false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.Atoi(s[1:])
	if err != nil || v < 1 || v > keyring.MaxVersion {
		return 0, false
	}
	return v, true
}

// embeddedKeyFile reports whether the master keys come from the generated <data-dir>/master.key:
// the embedded store and no key configured.
func embeddedKeyFile(cfg config.Config) bool {
	return cfg.DatabaseURL == "" && cfg.MasterKeyFile == "" && cfg.MasterKey == ""
}

// rotateGrace is how long keys rotate waits after adding a version on the
// embedded default before re-wrapping: more than two reload intervals.
var rotateGrace = 5 * time.Second

// keysRotate re-wraps every sealed value under the newest master-key version, online, in batches.
// On the embedded default it first appends a fresh version to <data-dir>/master.key.
func keysRotate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e, _, err := open(ctx, "keys rotate", args, getenv, io.Discard, nil, nil)
	if err != nil {
		return err
	}
	defer e.Close()
	ring := e.ring
	if embeddedKeyFile(e.cfg) {
		path := filepath.Join(e.cfg.DataDir, "master.key")
		v, err := appendMasterKey(path)
		if err != nil {
			return err
		}
		if ring, err = reloadRing(e.cfg, ring); err != nil {
			return err
		}
		if ring.Primary() != v {
			return fmt.Errorf("%s: added v%d but the reloaded primary is v%d", path, v, ring.Primary())
		}
		// Servers on this data dir reload the file within keyWatchInterval;
		// give them time to take v before anything is re-wrapped under it.
		fmt.Fprintf(stderr, "switchyard: added v%d to %s; waiting for running servers to load it\n", v, path)
		select {
		case <-time.After(rotateGrace):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	total, short := 0, 0
	for {
		n, err := e.store.RewrapBatch(ctx, ring, rotateBatch)
		total += n
		if n > 0 {
			fmt.Fprintf(stdout, "rewrapped %d (total %d)\n", n, total)
		}
		if err != nil {
			return fmt.Errorf("keys rotate stopped after %d records: %w", total, err)
		}
		if n == 0 {
			break
		}
		// Two short batches in a row: the backlog is gone and what still turns up is being written
		// under an older version right now (a node without the new key); stop rather than chase it.
		if n < rotateBatch {
			if short++; short == 2 {
				break
			}
		} else {
			short = 0
		}
	}
	fmt.Fprintf(stdout, "rotated %d records to v%d\n", total, ring.Primary())
	inUse, err := e.store.KeyVersionsInUse(ctx)
	if err != nil {
		return err
	}
	left := 0
	for v, n := range inUse {
		if v < ring.Primary() {
			left += n
		}
	}
	if left > 0 {
		fmt.Fprintf(stderr, "switchyard: %d records are still under older versions: a node is still writing without v%d; give it the new key, restart it and run keys rotate again\n", left, ring.Primary())
	}
	return nil
}

// keysRetire marks version v retired; refused while any row uses it or when it is the primary.
func keysRetire(ctx context.Context, v int, args []string, getenv func(string) string, stdout io.Writer) error {
	e, _, err := open(ctx, "keys retire", args, getenv, io.Discard, nil, nil)
	if err != nil {
		return err
	}
	defer e.Close()
	if p := e.ring.Primary(); v == p {
		return fmt.Errorf("cannot retire v%d: it is the primary master-key version (add v%d, run keys rotate, then retire v%d)", v, v+1, v)
	} else if v > p {
		return fmt.Errorf("cannot retire v%d: the newest configured version is v%d", v, p)
	}
	if err := e.store.RetireKeyVersion(ctx, v); err != nil {
		var ee *errs.Error
		if errors.As(err, &ee) && ee.Kind == errs.Unfulfilled && len(ee.Messages) > 0 {
			return errors.New(ee.Messages[0])
		}
		return err
	}
	fmt.Fprintf(stdout, "retired v%d\n", v)
	return nil
}

// CheckKeys stops a start whose key set cannot open the existing data (spec §11): every master-key
// version that stored sealed values use must be configured, and must open a sample of them (a
// replaced key file with the same version numbers fails here too). It only reads.
func CheckKeys(ctx context.Context, st *store.Store, ring *keyring.Ring) error {
	return checkKeys(ctx, st, ring)
}

// StartKeys is CheckKeys at a start: once the keys open what is there, the store's key check value
// is made if it has none yet, and checked again, so nodes starting together on an empty store with
// different keys cannot both start (the second finds the first one's value and cannot open it).
// Nothing is written unless the keys open everything stored.
func StartKeys(ctx context.Context, st *store.Store, ring *keyring.Ring) error {
	if err := checkKeys(ctx, st, ring); err != nil {
		return err
	}
	if err := st.KeyCheck(ctx, ring); err != nil {
		return fmt.Errorf("check master keys: %w", err)
	}
	// Always again, even when KeyCheck found a value there: another node
	// may have stored it after the first check ran (measured: skipping it
	// then let two nodes with different keys start).
	return checkKeys(ctx, st, ring)
}

func checkKeys(ctx context.Context, st *store.Store, ring *keyring.Ring) error {
	versions, err := st.KeyVersionsPresent(ctx)
	if err != nil {
		return fmt.Errorf("check master keys: %w", err)
	}
	for _, v := range versions {
		if !ring.Has(v) {
			return fmt.Errorf("master keys cannot open existing data: version v%d is in use but not configured", v)
		}
	}
	for _, v := range versions {
		rows, err := st.SealedSamples(ctx, v, 3)
		if err != nil {
			return fmt.Errorf("check master keys: %w", err)
		}
		opened := len(rows) == 0 // the rows went away meanwhile: nothing to open
		for _, r := range rows {
			sealed, err := keyring.Unmarshal(r.Sealed)
			if err != nil {
				continue
			}
			if pt, err := ring.Open(sealed, r.AAD); err == nil {
				clear(pt)
				opened = true
				break
			}
		}
		if !opened {
			return fmt.Errorf("master keys cannot open existing data: the configured v%d does not open data stored under v%d (wrong key?)", v, v)
		}
	}
	return nil
}

// reloadRing reads the master keys again from where cfg says (the same precedence as at start).
// keys rotate calls it after appending a version; a running server calls it when its key file
// changes, to pick up a version added by keys rotate or to drop one retired and removed. It
// refuses a key set without the primary version old writes with: a write under way may still use
// it. Whether every version the data uses is configured is CheckKeys's to say, and the caller runs
// it: a version dropped after keys retire is used by nothing, and dropping it must not stop the
// server from ever reloading again (the next rotation would then re-wrap under a version the
// server does not hold).
func reloadRing(cfg config.Config, old *keyring.Ring) (*keyring.Ring, error) {
	r, _, err := loadRing(cfg)
	if err != nil {
		return nil, err
	}
	if p := old.Primary(); !r.Has(p) {
		return nil, fmt.Errorf("reloaded master keys lack v%d, the version this server writes with", p)
	}
	return r, nil
}

// appendMasterKey adds a fresh random version (one above the file's newest) to the key file at path
// and returns it. The new content is written to path+".new" (created exclusively, mode 0600, which
// also keeps two rotations from racing), synced, checked against an unchanged original and renamed
// over it, so a crash leaves either the old file or the new one, never a torn line.
func appendMasterKey(path string) (int, error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	r, err := keyring.ParseMaterial(string(old))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	v := r.Primary() + 1
	entry, err := keyring.NewEntry(v)
	if err != nil {
		return 0, err
	}
	content := bytes.Clone(old)
	if len(content) > 0 && content[len(content)-1] != '\n' {
		content = append(content, '\n')
	}
	content = append(content, entry+"\n"...)

	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return 0, fmt.Errorf("%s exists: another keys rotate is running, or one was interrupted (then check it and remove it)", tmp)
	}
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", tmp, err)
	}
	fail := func(err error) (int, error) {
		f.Close()
		os.Remove(tmp)
		return 0, err
	}
	if _, err := f.Write(content); err != nil {
		return fail(fmt.Errorf("write %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	now, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(now, old) {
		os.Remove(tmp)
		return 0, fmt.Errorf("%s changed while adding v%d; run keys rotate again", path, v)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("replace %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // best effort: make the rename durable
		d.Close()
	}
	return v, nil
}
