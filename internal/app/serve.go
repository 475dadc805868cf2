package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"switchyard/internal/httpapi"
)

// shutdownGrace is how long in-flight requests may finish (spec §11).
const shutdownGrace = 30 * time.Second

// gcPercent is the server's GOGC unless the environment sets one. Its live
// Go heap is small (SQLite's page caches are C memory) and every request
// allocates: collecting at 5× the live heap instead of 2× cost about 20 MB
// of resident memory and gave customer creates about 4 % more throughput
// (docs/benchmarks.md).
const gcPercent = 400

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if os.Getenv("GOGC") == "" { // the runtime's own setting, so the process's environment
		debug.SetGCPercent(gcPercent)
	}
	metrics := httpapi.NewMetrics()
	e, _, err := open(ctx, "serve", args, getenv, stderr, nil, metrics.ObserveCommit)
	if err != nil {
		return err
	}
	defer func() {
		if err := e.Close(); err != nil {
			e.log.Error("closing the store", "err", err)
		}
	}()
	svc := NewServices(e.store, e.ring, e.now, Options{SimulatorLatency: e.cfg.SimulatorLatency, ReconcileInterval: e.cfg.ReconcileInterval, ObserveGateway: metrics.ObserveGateway,
		StripeAPIBase: e.cfg.StripeAPIBase})
	// Bind first: a start that cannot listen must not make (and print)
	// the sandbox, whose keys a later start would not print again.
	ln, err := net.Listen("tcp", e.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", e.cfg.Listen, err)
	}
	defer ln.Close()
	var mln net.Listener
	if e.cfg.MetricsListen != "" {
		if mln, err = net.Listen("tcp", e.cfg.MetricsListen); err != nil {
			return fmt.Errorf("listen on %s: %w", e.cfg.MetricsListen, err)
		}
		defer mln.Close()
	}
	lines, err := Sandbox(ctx, svc)
	if err != nil {
		return fmt.Errorf("create sandbox account: %w", err)
	}
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	metrics.InProgress(func() (int, error) { return e.store.CountChargesInProgress(context.Background()) })
	deps := svc.Deps(e.log)
	deps.Metrics, deps.CORSOrigins = metrics, e.cfg.CORSOrigins
	if e.cfg.DatabaseURL != "" {
		// A database that stops answering gives 503, not a hang: above a
		// gateway call's 30 s and the 35 s wait behind another operation.
		deps.RequestTimeout = 90 * time.Second
	}
	if e.cfg.MetricsListen == "" {
		deps.MetricsHandler = metrics.Handler()
	}
	handler := httpapi.New(deps)

	// The handler bounds how long a body may take to arrive (Deps.ReadTimeout;
	// http.Server's ReadTimeout would also cancel long handlers' contexts).
	// WriteTimeout bounds a whole request, gateway calls (30 s at most) and
	// the wait behind another operation on a charge (35 s) included.
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(e.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var msrv *http.Server
	if mln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler())
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute}
		go func() { errc <- msrv.Serve(mln) }()
		e.log.Info("metrics listening", "addr", mln.Addr().String())
	}
	bg, stopBG := context.WithCancel(context.Background())
	go sweep(bg, e, svc)
	go watchKeys(bg, e, svc)
	go reconcile(bg, e, svc)
	e.log.Info("serving", "addr", ln.Addr().String(), "version", Version)
	fmt.Fprintf(stdout, "switchyard listening on http://%s\n", ln.Addr().String())

	select {
	case <-ctx.Done():
	case err := <-errc:
		stopBG()
		return fmt.Errorf("serve: %w", err)
	}
	e.log.Info("shutting down")
	stopBG()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if msrv != nil {
		_ = msrv.Shutdown(sctx)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		e.log.Warn("shutdown", "err", err)
	}
	return nil
}

// sweep runs the periodic housekeeping of this node until ctx ends. Every
// step is a conditional statement in the store, safe on many nodes at once.
func sweep(ctx context.Context, e *env, svc *Services) {
	// Every 20 s, so expired one-time and session card data is destroyed
	// well within a minute of expiry (spec §5).
	t := time.NewTicker(20 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := svc.Vault.Sweep(ctx); err != nil {
			e.log.Warn("sweeping the vault", "err", err)
		} else if n > 0 {
			e.log.Debug("swept vault records", "count", n)
		}
		// Destroyed card data (swept, or nulled when a token was used) must
		// not outlive its page images in the embedded store's WAL.
		if cp, ok := e.eng.(interface{ Checkpoint(context.Context) error }); ok {
			if err := cp.Checkpoint(ctx); err != nil {
				e.log.Warn("checkpointing the store", "err", err)
			}
		}
		if n, err := e.store.SweepIdempotencyKeys(ctx, e.now()); err != nil {
			e.log.Warn("sweeping idempotency keys", "err", err)
		} else if n > 0 {
			e.log.Debug("swept idempotency keys", "count", n)
		}
	}
}

// reconcile settles charges whose gateway outcome is unknown (spec §8.8).
// Each pass claims due transactions in the store, so nodes share the work.
func reconcile(ctx context.Context, e *env, svc *Services) {
	interval := e.cfg.ReconcileInterval
	tick := interval / 4
	if tick > 5*time.Second {
		tick = 5 * time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := svc.Charges.ReconcileOnce(ctx, 100)
			if err != nil {
				e.log.Warn("reconciling charges", "err", err)
				break
			}
			if n < 100 {
				break
			}
		}
	}
}

// keyWatchInterval is how often serve looks for changed key material.
const keyWatchInterval = 2 * time.Second

// watchKeys reloads the master keys when their file changes (keys rotate
// appends a version to <data-dir>/master.key on the embedded default), so a
// running server opens data re-wrapped under the new version and writes
// with it, without a restart. A reload that would drop a version in use, or
// cannot open existing data, is refused and logged; the old set stays.
func watchKeys(ctx context.Context, e *env, svc *Services) {
	path := e.cfg.MasterKeyFile
	if path == "" && embeddedKeyFile(e.cfg) {
		path = filepath.Join(e.cfg.DataDir, "master.key")
	}
	if path == "" {
		return // keys from the environment change only with a restart
	}
	stamp := func() string {
		fi, err := os.Stat(path)
		if err != nil {
			return ""
		}
		return fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
	}
	last := stamp()
	t := time.NewTicker(keyWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := stamp()
		if now == last || now == "" {
			continue
		}
		last = now
		r, err := reloadRing(e.cfg, svc.Keys.Ring())
		if err == nil {
			err = CheckKeys(ctx, e.store, r)
		}
		if err != nil {
			e.log.Error("master keys changed but were not reloaded", "path", path, "err", err)
			continue
		}
		svc.Keys.Store(r)
		e.log.Info("master keys reloaded", "path", path, "primary", fmt.Sprintf("v%d", r.Primary()))
	}
}
