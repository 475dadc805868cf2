// Package pgtest runs a throwaway PostgreSQL cluster for tests, started
// from the Debian server binaries (/usr/lib/postgresql/N/bin): one cluster
// per test binary, a migrated template database, and a fresh database per
// test made with CREATE DATABASE … TEMPLATE. The cluster runs with fsync,
// synchronous_commit and full_page_writes off: for tests only.
//
// A test package that uses it calls Main from its TestMain so the cluster
// stops when the tests end; should the test binary die instead, the server
// gets SIGQUIT from the kernel (parent-death signal).
//
// Without the binaries the tests skip, saying how to enable them; with the
// environment variable CI set they fail instead, so CI never skips silently.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"switchyard/internal/store/postgres"
)

const template = "switchyard_template"

// Cluster is a running test server.
type Cluster struct {
	dir    string // owns data/, the socket and the log
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	admin  *pgxpool.Pool // on database postgres

	ctx          context.Context // ends at Stop
	cancel       context.CancelFunc
	prefetchOnce sync.Once
	spares       chan string // databases made from the template, ready
}

var (
	once     sync.Once
	cluster  *Cluster
	errStart error
	seq      atomic.Int64
	mu       sync.Mutex // guards stopped
	stopped  bool
)

// Main runs the tests of a package and stops the cluster (if one started)
// before exiting: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Binaries returns the directory of the newest installed PostgreSQL server
// binaries, or "" when there are none.
func Binaries() string {
	if d := os.Getenv("SWITCHYARD_PG_BIN"); d != "" { // another install's bin directory
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return ""
		}
		return d
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[0])
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// Require skips t (or fails it when CI is set) unless the PostgreSQL
// server binaries are installed, and returns the running cluster.
func Require(t testing.TB) *Cluster {
	t.Helper()
	if Binaries() == "" {
		msg := "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql to run the PostgreSQL tests"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set: not skipping)")
		}
		t.Skip(msg)
	}
	once.Do(func() { cluster, errStart = start() })
	if errStart != nil {
		t.Fatalf("pgtest: %v", errStart)
	}
	mu.Lock()
	defer mu.Unlock()
	if stopped {
		t.Fatal("pgtest: cluster already stopped")
	}
	return cluster
}

// NewDatabase returns the URL of a fresh, migrated database for t, copied
// from the template; it is dropped when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	c := Require(t)
	c.prefetchOnce.Do(func() { go c.prefetch() })
	var name string
	select {
	case name = <-c.spares:
	default: // none ready: make one here, in parallel with the prefetcher
		var err error
		if name, err = c.create(template); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	c.dropAtEnd(t, name)
	return c.URL(name)
}

// NewEmptyDatabase returns the URL of a fresh database without any schema
// (for migration tests); it is dropped when t ends.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	c := Require(t)
	name, err := c.create("template0")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c.dropAtEnd(t, name)
	return c.URL(name)
}

// Name returns the database name of a URL made by NewDatabase.
func Name(url string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(url, "postgres://postgres@/"), "?")
	return name
}

func (c *Cluster) create(from string) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), seq.Add(1))
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	if _, err := c.admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+from); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return name, nil
}

func (c *Cluster) dropAtEnd(t testing.TB, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		defer cancel()
		_, _ = c.admin.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	})
}

// prefetch keeps a few databases made from the template ready, each
// connected to once (the first backend of a database builds its relation
// cache file), so a test rarely waits for CREATE DATABASE.
func (c *Cluster) prefetch() {
	for {
		name, err := c.create(template)
		if err != nil {
			return // tests then make their own
		}
		if conn, err := pgx.Connect(c.ctx, c.URL(name)); err == nil {
			_ = conn.Close(c.ctx)
		}
		select {
		case c.spares <- name:
		case <-c.ctx.Done():
			return
		}
	}
}

// Admin is a pool on the cluster's postgres database, as superuser.
func (c *Cluster) Admin() *pgxpool.Pool { return c.admin }

// URL returns the URL of database db over the cluster's unix socket.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, c.dir, c.port)
}

// TCPURL returns the URL of database db over localhost TCP.
func (c *Cluster) TCPURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Stop stops the cluster and removes its files. Later calls do nothing.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if stopped {
		return
	}
	stopped = true
	if cluster != nil {
		cluster.stop()
	}
}

func (c *Cluster) stop() {
	c.cancel()
	if c.admin != nil {
		c.admin.Close()
	}
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-c.exited:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	_ = os.RemoveAll(c.dir)
}

// runAs is who runs initdb and postgres: the postgres user when we are
// root (initdb refuses root), else ourselves.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user to run initdb: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func start() (c *Cluster, err error) {
	bin := Binaries()
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	removeStale()
	dir, err := os.MkdirTemp("", "switchyard-pgtest-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{dir: dir, exited: make(chan struct{}), spares: make(chan string, 2)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	if err := c.launch(bin, data, logPath, cred); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.waitReady(ctx, logPath); err != nil {
		return nil, err
	}
	if _, err := c.admin.Exec(ctx, `CREATE DATABASE `+template); err != nil {
		return nil, fmt.Errorf("create template: %w", err)
	}
	eng, err := postgres.Open(ctx, c.URL(template), postgres.Options{MaxConns: 2})
	if err != nil {
		return nil, fmt.Errorf("migrate template: %w", err)
	}
	eng.Close()
	return c, nil
}

// launch starts postgres from a goroutine locked to its OS thread for the
// life of the process: the parent-death signal fires when the thread that
// started the child ends, so the server dies with the test binary even
// when Stop is never called.
func (c *Cluster) launch(bin, data, logPath string, cred *syscall.Credential) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
			"-p", strconv.Itoa(c.port), "-k", c.dir, "-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=400", "-c", "shared_buffers=64MB",
			"-c", "max_parallel_workers_per_gather=0", "-c", "log_min_messages=warning")
		c.cmd.Dir = c.dir
		c.cmd.Stdout, c.cmd.Stderr = logf, logf
		c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
		if err := c.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = c.cmd.Wait()
		logf.Close()
		close(c.exited)
		select {} // keep the thread
	}()
	if err := <-started; err != nil {
		logf.Close()
		close(c.exited)
		c.cmd = nil
		return fmt.Errorf("start postgres: %w", err)
	}
	return nil
}

func (c *Cluster) waitReady(ctx context.Context, logPath string) error {
	var last error
	for {
		select {
		case <-c.exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited at start:\n%s", b)
		default:
		}
		pool, err := pgxpool.New(ctx, c.URL("postgres"))
		if err == nil {
			if err = pool.Ping(ctx); err == nil {
				c.admin = pool
				return nil
			}
			pool.Close()
		}
		last = err
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres not ready: %v\n%s", errors.Join(last, ctx.Err()), b)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// removeStale removes the directories of clusters whose test binary died
// without Stop (a test timeout, a crash): the kernel stopped their server,
// but their files stay. A directory is stale when no live postmaster holds
// it and it is older than a minute (a cluster starting now has no pid file
// yet).
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "switchyard-pgtest-*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pid > 0 {
				if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
					continue // still running
				}
			}
		}
		_ = os.RemoveAll(d)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PoolSize is the pool size to open a NewDatabase with: many tests run in
// parallel on one cluster, so each gets a small pool.
const PoolSize = 8

// Log returns the server log so far (for failing tests).
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	return strings.TrimSpace(string(b))
}
