// Package app wires Switchyard together: config → store → keyring →
// services → HTTP, and implements the command line (spec §11).
package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"switchyard/internal/config"
	"switchyard/internal/errs"
	"switchyard/internal/keyring"
	"switchyard/internal/store"
	"switchyard/internal/store/postgres"
	"switchyard/internal/store/sqlite"
)

// Version is set at build time with -ldflags "-X switchyard/internal/app.Version=…".
var Version = "dev"

const usage = `usage: switchyard [command] [flags]

commands:
  serve                          run the server (default)
  account create --name NAME [--json]
                                 create an account with fresh keys
  keys rotate                    re-wrap every data key under the newest master-key version
  keys retire vN                 mark master-key version N retired (refused while in use)
  migrate                        apply schema migrations and exit
  version                        print the version
`

// Run runs the command in args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	// Flags may come before, between or after the command's words
	// (`switchyard --data-dir D migrate`, `keys retire --data-dir D v2`):
	// the words go first, then every flag with its value.
	flags, words := splitArgs(args)
	args = append(words, flags...)
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, getenv, stdout, stderr)
	case "account":
		if len(args) == 0 || args[0] != "create" {
			err = &config.Error{Msg: "usage: switchyard account create --name NAME [--json]"}
		} else {
			err = accountCreate(ctx, args[1:], getenv, stdout)
		}
	case "keys":
		err = keysCmd(ctx, args, getenv, stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args, getenv, stdout)
	case "version":
		err = version(args, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = &config.Error{Msg: fmt.Sprintf("unknown command %q (commands: serve, account create, keys rotate, keys retire, migrate, version, help)", cmd)}
	}
	return exitCode(err, stdout, stderr)
}

// splitArgs separates the flags of args (each with its value) from the
// other words, knowing every command's flags: a flag that takes a value
// takes the next argument unless written --flag=value. Anything after "--"
// is a word.
func splitArgs(args []string) (flags, words []string) {
	var cfg config.Config
	fs := config.FlagSet("switchyard", &cfg)
	fs.String("name", "", "")
	fs.Bool("json", false, "")
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(words, args[i+1:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			words = append(words, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil { // unknown: the command's parser reports it
			continue
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, words
}

// version prints the version; it takes no flags and no arguments.
func version(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &config.HelpError{Usage: "  (none)\n"}
		}
		return &config.Error{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return &config.Error{Msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	fmt.Fprintln(stdout, "switchyard", Version)
	return nil
}

func exitCode(err error, stdout, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var he *config.HelpError
	if errors.As(err, &he) {
		// Asked for, so not an error: on stdout, exit 0, as flag's own
		// ExitOnError does for -h.
		fmt.Fprint(stdout, usage+"\nflags:\n"+he.Usage)
		return 0
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, "switchyard:", ce.Msg)
		return 2
	}
	fmt.Fprintln(stderr, "switchyard:", err)
	return 1
}

// env is what every store-opening command builds from its flags.
type env struct {
	cfg   config.Config
	log   *slog.Logger
	eng   store.Engine
	store *store.Store
	ring  *keyring.Ring
	now   func() time.Time
}

func (e *env) Close() error { return e.eng.Close() }

// open parses the common flags, opens the store (migrating it) and loads
// the keyring. extra registers command-specific flags.
func open(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet), onCommit func(int, time.Duration)) (*env, []string, error) {
	var cfg config.Config
	fs := config.FlagSet(name, &cfg)
	if extra != nil {
		extra(fs)
	}
	rest, err := config.Parse(fs, &cfg, args, getenv)
	if err != nil {
		return nil, nil, err
	}
	if len(rest) > 0 {
		return nil, nil, &config.Error{Msg: fmt.Sprintf("unexpected argument %q", rest[0])}
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return nil, nil, err
	}
	ring, devKey, err := loadRing(cfg)
	if err != nil {
		return nil, nil, err
	}
	var eng store.Engine
	if cfg.DatabaseURL != "" {
		eng, err = postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{MaxConns: cfg.DBMaxConns, OnCommit: onCommit})
		if errors.Is(err, postgres.ErrURL) { // a bad value, not a store that cannot be opened
			return nil, nil, &config.Error{Msg: "invalid --database-url: " + oneLine(err)}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("open PostgreSQL store: %s", oneLine(err))
		}
	} else {
		eng, err = sqlite.Open(ctx, cfg.DataDir, sqlite.Options{GroupCommit: cfg.GroupCommit, OnCommit: onCommit})
		if err != nil {
			return nil, nil, fmt.Errorf("open store in %s: %w", cfg.DataDir, err)
		}
		if err := sqlite.PageCacheLayer(); err != nil {
			log.Warn("the SQLite page-cache layer is not in place: commits are slower", "err", err)
		}
		if _, kept := sqlite.Unmutexed(); kept > 0 {
			log.Warn("SQLite connections kept their own mutex (the driver's layout changed): reads are slower", "connections", kept)
		}
	}
	st := store.New(eng)
	if err := StartKeys(ctx, st, ring); err != nil {
		eng.Close()
		return nil, nil, err
	}
	if devKey != nil {
		// Saved only once it is known to open the data: a start refused
		// for its keys leaves nothing behind (spec §11).
		if ring, err = devKey.save(); err == nil {
			err = CheckKeys(ctx, st, ring) // another process saved its key first
		}
		if err != nil {
			eng.Close()
			return nil, nil, err
		}
		log.Warn("using the development master key beside the data; set --master-key-file or SWITCHYARD_MASTER_KEY in production", "path", devKey.path)
	}
	return &env{cfg: cfg, log: log, eng: eng, store: st, ring: ring, now: time.Now}, rest, nil
}

// oneLine folds a multi-line driver error (pgx lists every address it
// tried on its own line) into the one line spec §11 asks for.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, &config.Error{Msg: "invalid --log-level"}
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// loadRing finds the master keys by the precedence of spec §11. On the
// embedded default it also returns the development key file's handle: its
// key is generated in memory when the file is missing, and written only by
// save, once the caller has checked it against the data.
func loadRing(cfg config.Config) (*keyring.Ring, *devKeyFile, error) {
	switch {
	case cfg.MasterKeyFile != "":
		b, err := os.ReadFile(cfg.MasterKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read master key file: %w", err)
		}
		r, err := keyring.ParseMaterial(string(b))
		if err != nil {
			return nil, nil, &config.Error{Msg: fmt.Sprintf("invalid master key file %s: %v", cfg.MasterKeyFile, err)}
		}
		return r, nil, nil
	case cfg.MasterKey != "":
		r, err := keyring.ParseMaterial(cfg.MasterKey)
		if err != nil {
			return nil, nil, &config.Error{Msg: fmt.Sprintf("invalid SWITCHYARD_MASTER_KEY: %v", err)}
		}
		return r, nil, nil
	case cfg.DatabaseURL != "":
		return nil, nil, errors.New("no master key configured: with --database-url set --master-key-file or SWITCHYARD_MASTER_KEY")
	}
	k := &devKeyFile{path: filepath.Join(cfg.DataDir, "master.key")}
	b, err := os.ReadFile(k.path)
	if errors.Is(err, os.ErrNotExist) {
		if k.entry, err = keyring.NewEntry(1); err != nil {
			return nil, nil, err
		}
		b = []byte(k.entry)
	} else if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", k.path, err)
	} else if err := os.Chmod(k.path, 0o600); err != nil {
		// A copied or restored key file must not stay readable by others.
		return nil, nil, fmt.Errorf("restrict %s: %w", k.path, err)
	}
	r, err := keyring.ParseMaterial(string(b))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", k.path, err)
	}
	return r, k, nil
}

// devKeyFile is <data-dir>/master.key, the embedded default's generated
// master key. entry is set when the file is still to be written.
type devKeyFile struct {
	path  string
	entry string
}

// save writes a newly generated key (owner-only, never over an existing
// file) and returns the keys now in force: the file's own when another
// process created it first.
func (k *devKeyFile) save() (*keyring.Ring, error) {
	if k.entry != "" {
		err := writeNew(k.path, k.entry+"\n")
		if err == nil {
			return keyring.ParseMaterial(k.entry)
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
	}
	b, err := os.ReadFile(k.path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", k.path, err)
	}
	r, err := keyring.ParseMaterial(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.path, err)
	}
	return r, nil
}

// writeNew creates path with data, readable by this user only; it fails
// with os.ErrExist when the file is already there.
func writeNew(path, data string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return err
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func accountCreate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var name string
	var asJSON bool
	e, _, err := open(ctx, "account create", args, getenv, io.Discard, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "account name")
		fs.BoolVar(&asJSON, "json", false, "print one JSON object")
	}, nil)
	if err != nil {
		return err
	}
	defer e.Close()
	if strings.TrimSpace(name) == "" {
		return &config.Error{Msg: "account create needs --name NAME"}
	}
	a, keys, err := NewServices(e.store, e.ring, e.now, Options{}).Auth.Create(ctx, name)
	if err != nil {
		var ee *errs.Error
		if errors.As(err, &ee) && ee.Kind == errs.Invalid && len(ee.Messages) > 0 {
			return &config.Error{Msg: "invalid --" + ee.Messages[0]} // a bad value: exit 2
		}
		return err
	}
	if asJSON {
		// The spec's key order (a map would sort them).
		return json.NewEncoder(stdout).Encode(struct {
			AccountID string `json:"account_id"`
			Name      string `json:"name"`
			SecretKey string `json:"secret_key"`
			PublicKey string `json:"public_key"`
		}{a.ID, a.Name, keys.Secret, keys.Public})
	}
	fmt.Fprintf(stdout, "account id: %s\nname: %s\nsecret key: %s\npublic key: %s\n", a.ID, a.Name, keys.Secret, keys.Public)
	return nil
}

func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	e, _, err := open(ctx, "migrate", args, getenv, io.Discard, nil, nil)
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}
