// Command switchyard-load drives a running switchyard (Paydock-compatible)
// server over HTTP for a bounded time and reports throughput and latency:
// requests, errors, req/s, p50, p90, p99 and max.
//
// The "fsync" scenario needs no server: it writes 4 KiB + fsync in a loop in
// a temp file under -dir and reports the disk's fsyncs/s.
//
// -seed N bulk-loads N customers straight into a stopped server's embedded
// store (-data-dir), for the million-customer list measurements (seed.go).
//
// The "bare" scenario starts an in-process HTTP server that only decodes the
// JSON body and answers a fixed-shape envelope, giving the bare-HTTP baseline
// the real scenarios are compared to on the same machine.
//
// Exit codes: 0 success (even if some requests failed), 1 server unreachable
// or setup failed, 2 bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"
)

const (
	maxDuration = 10 * time.Minute
	maxWarmup   = 1 * time.Minute
)

// config holds the parsed, validated flags.
type config struct {
	url      string   // the (first) server's base URL
	client   string   // wire or net/http
	urls     []string // every node -url names, url first
	key      string
	c        int
	d        time.Duration
	rate     float64
	warmup   time.Duration
	scenario string
	path     string
	gateway  string
	json     bool
	dir      string // -scenario fsync

	seed       int    // -seed N: bulk-load N customers instead of a load run
	dataDir    string // -seed: the stopped server's data dir
	vaultToken string // -seed: link every payment source to this vault record
	batch      int    // -seed: rows per transaction
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "switchyard-load:", err)
		}
		return 2
	}
	if cfg.seed > 0 {
		return runSeed(ctx, cfg, stdout, stderr)
	}

	res, code, err := execute(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "switchyard-load:", err)
		return code
	}

	if cfg.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, "switchyard-load:", err)
			return 1
		}
	} else {
		fmt.Fprintln(stdout, res.text())
	}
	for _, s := range res.ErrorSamples {
		fmt.Fprintf(stderr, "error sample: %s\n", s)
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("switchyard-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.url, "url", "", "base URL of the server, e.g. http://127.0.0.1:8080 (not needed for -scenario bare); "+
		"several nodes of one deployment, comma-separated: setup goes to the first, and the workers take them in turn")
	fs.StringVar(&cfg.key, "key", "", "value for header x-user-secret-key")
	fs.IntVar(&cfg.c, "c", 32, "concurrency (closed loop) or worker cap (open loop)")
	fs.DurationVar(&cfg.d, "d", 10*time.Second, "measured duration (max 10m)")
	fs.Float64Var(&cfg.rate, "rate", 0, "0 = closed loop at -c; >0 = open-loop arrivals per second, -c workers cap")
	fs.DurationVar(&cfg.warmup, "warmup", 1*time.Second, "warmup before measuring, not counted (max 1m)")
	fs.StringVar(&cfg.scenario, "scenario", "gateway-create", "one of: "+strings.Join(scenarioNames(), ", "))
	fs.StringVar(&cfg.path, "path", "", "request path for -scenario get, e.g. /v1/gateways; {rand:N} becomes a random integer in [0,N) per request")
	fs.StringVar(&cfg.gateway, "gateway", "", "gateway_id for -scenario customer-create-card")
	fs.StringVar(&cfg.client, "client", "wire", "HTTP client of the timed run: wire (lean keep-alive HTTP/1.1, the default) or net/http "+
		"(Go's client, as used for figures recorded before the wire client; it spends about twice the CPU per request)")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON result object instead of text")
	fs.StringVar(&cfg.dir, "dir", "", "directory for -scenario fsync's temp file (use the data dir's filesystem)")
	fs.IntVar(&cfg.seed, "seed", 0, "bulk-load N customers into the stopped server's store at -data-dir (needs -key), then exit")
	fs.StringVar(&cfg.dataDir, "data-dir", "", "-seed: the server's data directory (holding switchyard.db)")
	fs.StringVar(&cfg.vaultToken, "vault-token", "", "-seed: vault token every payment source links to (default: one made with -url, else the account's newest)")
	fs.IntVar(&cfg.batch, "batch", 10000, "-seed: customers per transaction")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.seed != 0 {
		return cfg, checkSeedFlags(&cfg)
	}

	switch {
	case cfg.c < 1:
		return cfg, fmt.Errorf("-c must be >= 1, got %d", cfg.c)
	case cfg.c > 10000:
		return cfg, fmt.Errorf("-c must be <= 10000, got %d", cfg.c)
	case cfg.d <= 0:
		return cfg, fmt.Errorf("-d must be > 0, got %s", cfg.d)
	case cfg.d > maxDuration:
		return cfg, fmt.Errorf("-d must be <= %s, got %s", maxDuration, cfg.d)
	case cfg.warmup < 0:
		return cfg, fmt.Errorf("-warmup must be >= 0, got %s", cfg.warmup)
	case cfg.warmup > maxWarmup:
		return cfg, fmt.Errorf("-warmup must be <= %s, got %s", maxWarmup, cfg.warmup)
	case cfg.rate < 0 || cfg.rate != cfg.rate || cfg.rate > 1e7:
		return cfg, fmt.Errorf("-rate must be in [0, 1e7], got %v", cfg.rate)
	}

	if cfg.client != "wire" && cfg.client != "net/http" {
		return cfg, fmt.Errorf("-client must be wire or net/http, got %q", cfg.client)
	}
	if _, ok := scenarios[cfg.scenario]; !ok {
		return cfg, fmt.Errorf("unknown -scenario %q (want one of: %s)", cfg.scenario, strings.Join(scenarioNames(), ", "))
	}
	if cfg.scenario == "fsync" {
		if cfg.dir == "" {
			return cfg, errors.New("-dir is required for -scenario fsync")
		}
		if st, err := os.Stat(cfg.dir); err != nil || !st.IsDir() {
			return cfg, fmt.Errorf("-dir %q is not a directory", cfg.dir)
		}
		return cfg, nil
	}
	if cfg.scenario != "bare" {
		if cfg.url == "" {
			return cfg, errors.New("-url is required for -scenario " + cfg.scenario)
		}
		cfg.urls = nil
		for _, one := range strings.Split(cfg.url, ",") {
			u, err := url.Parse(one)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
				return cfg, fmt.Errorf("-url must be an absolute http(s) URL, got %q", one)
			}
			if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
				return cfg, fmt.Errorf("-url must have no credentials, query or fragment, got %q", u.Redacted())
			}
			// url.Parse lower-cases the scheme; the wire client reads it as is.
			cfg.urls = append(cfg.urls, u.Scheme+"://"+u.Host+strings.TrimRight(u.EscapedPath(), "/"))
		}
		cfg.url = cfg.urls[0]
	}
	switch cfg.scenario {
	case "get":
		if cfg.path == "" {
			return cfg, errors.New("-path is required for -scenario get")
		}
		if !strings.HasPrefix(cfg.path, "/") {
			cfg.path = "/" + cfg.path
		}
		for i := 0; i < len(cfg.path); i++ {
			if c := cfg.path[i]; c <= ' ' || c >= 0x7f {
				return cfg, fmt.Errorf("-path must be URL-encoded (no spaces, control or non-ASCII bytes), got %q", cfg.path)
			}
		}
		if err := checkPathTemplate(cfg.path); err != nil {
			return cfg, err
		}
	case "customer-create-card":
		if cfg.gateway == "" {
			return cfg, errors.New("-gateway is required for -scenario customer-create-card")
		}
	}
	return cfg, nil
}
