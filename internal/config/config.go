// Package config reads flags with SWITCHYARD_* environment fallbacks
// (spec §11), validated once. A flag wins over its environment variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is every setting of a command that opens the store.
type Config struct {
	Listen            string
	DataDir           string
	DatabaseURL       string
	DBMaxConns        int
	MasterKeyFile     string
	MasterKey         string // SWITCHYARD_MASTER_KEY content
	StripeAPIBase     string
	SimulatorLatency  time.Duration
	ReconcileInterval time.Duration
	CORSOrigins       []string
	MetricsListen     string
	LogFormat         string
	LogLevel          string
	// GroupCommit batches concurrent SQLite writes into one commit. Only
	// benchmarks turn it off (to measure what it buys).
	GroupCommit bool
}

// HelpError asks for the flags' description (-h, --help): printed on
// stdout with exit code 0, as flag's own ExitOnError does.
type HelpError struct{ Usage string }

func (e *HelpError) Error() string { return e.Usage }

// Usage describes fs's flags with their environment variables.
func Usage(fs *flag.FlagSet) string {
	env := map[string]string{}
	for _, b := range bindings {
		env[b.flag] = b.env
	}
	var sb strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(&sb, "  --%s", f.Name)
		if e := env[f.Name]; e != "" {
			fmt.Fprintf(&sb, " (%s)", e)
		}
		fmt.Fprintf(&sb, "\n      %s", f.Usage)
		if f.DefValue != "" {
			fmt.Fprintf(&sb, " (default %q)", f.DefValue)
		}
		sb.WriteString("\n")
	})
	return sb.String()
}

// Error is a bad flag or value: one line naming it (exit code 2).
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

type binding struct {
	flag, env string
}

var bindings = []binding{
	{"listen", "SWITCHYARD_LISTEN"},
	{"data-dir", "SWITCHYARD_DATA_DIR"},
	{"database-url", "SWITCHYARD_DATABASE_URL"},
	{"db-max-conns", "SWITCHYARD_DB_MAX_CONNS"},
	{"master-key-file", "SWITCHYARD_MASTER_KEY_FILE"},
	{"stripe-api-base", "SWITCHYARD_STRIPE_API_BASE"},
	{"simulator-latency", "SWITCHYARD_SIMULATOR_LATENCY"},
	{"reconcile-interval", "SWITCHYARD_RECONCILE_INTERVAL"},
	{"cors-origins", "SWITCHYARD_CORS_ORIGINS"},
	{"metrics-listen", "SWITCHYARD_METRICS_LISTEN"},
	{"log-format", "SWITCHYARD_LOG_FORMAT"},
	{"log-level", "SWITCHYARD_LOG_LEVEL"},
	{"group-commit", "SWITCHYARD_GROUP_COMMIT"},
}

// FlagSet returns a flag set bound to c with the spec's defaults; extra
// lets a command add its own flags.
func FlagSet(name string, c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address to serve on (:0 picks a free port)")
	fs.StringVar(&c.DataDir, "data-dir", "./switchyard-data", "directory of the embedded store and its development key file")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "postgres://… selects PostgreSQL (empty: embedded SQLite)")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", 32, "PostgreSQL pool size per node")
	fs.StringVar(&c.MasterKeyFile, "master-key-file", "", "file holding the master keys (vN:<base64> lines)")
	fs.StringVar(&c.StripeAPIBase, "stripe-api-base", "https://api.stripe.com", "where the Stripe connector sends its calls")
	fs.DurationVar(&c.SimulatorLatency, "simulator-latency", 0, "fixed delay the Simulator adds to every call")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", 30*time.Second, "reconciler pass interval")
	fs.Func("cors-origins", "comma-separated origins allowed CORS on every /v1 endpoint", func(v string) error {
		c.CORSOrigins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.CORSOrigins = append(c.CORSOrigins, o)
			}
		}
		return nil
	})
	fs.StringVar(&c.MetricsListen, "metrics-listen", "", "separate address for /metrics (empty: main listener)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.GroupCommit, "group-commit", true, "batch concurrent SQLite writes into one commit (benchmarks only turn it off)")
	return fs
}

// Parse parses args into c, then fills unset flags from the environment,
// then validates. Positional arguments left over are returned.
func Parse(fs *flag.FlagSet, c *Config, args []string, getenv func(string) string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, &HelpError{Usage: Usage(fs)}
		}
		return nil, &Error{Msg: err.Error()}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, b := range bindings {
		if set[b.flag] || fs.Lookup(b.flag) == nil {
			continue
		}
		if v := getenv(b.env); v != "" {
			if err := fs.Set(b.flag, v); err != nil {
				return nil, &Error{Msg: fmt.Sprintf("invalid value %q for %s: %v", v, b.env, err)}
			}
		}
	}
	c.MasterKey = getenv("SWITCHYARD_MASTER_KEY")
	return fs.Args(), c.validate()
}

func (c *Config) validate() error {
	bad := func(name, format string, args ...any) error {
		return &Error{Msg: fmt.Sprintf("invalid --%s: %s", name, fmt.Sprintf(format, args...))}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "%v", err)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return bad("metrics-listen", "%v", err)
		}
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return bad("database-url", "must be a postgres:// URL")
		}
	}
	if c.DataDir == "" {
		return bad("data-dir", "must not be empty")
	}
	if c.DBMaxConns < 1 {
		return bad("db-max-conns", "must be at least 1")
	}
	if u, err := url.Parse(c.StripeAPIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("stripe-api-base", "must be an http(s) URL")
	}
	if c.SimulatorLatency < 0 {
		return bad("simulator-latency", "must not be negative")
	}
	if c.ReconcileInterval <= 0 {
		return bad("reconcile-interval", "must be positive")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return bad("log-format", "must be text or json")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log-level", "must be debug, info, warn or error")
	}
	return nil
}
