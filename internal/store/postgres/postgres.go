// Package postgres is the scale-out engine: PostgreSQL (or a compatible
// distributed engine) through pgx's pool, exposed as database/sql so the
// shared SQL of package store runs unchanged. A write transaction is
// SERIALIZABLE unless the store asks for less (blind writes, store.Batcher,
// and row-lock transactions, store.LockingWriter, say why they need no
// more), and every one runs through one retry loop that re-runs it on
// serialization failures and deadlocks, so any number of nodes can share one
// database without coordinating in memory.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jackc/puddle/v2"

	"switchyard/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune the engine.
type Options struct {
	// MaxConns is the pool size (default 32: commits wait on the server's
	// fsync, so a node needs many connections in flight, not pgx's 4).
	MaxConns int
	// ConnectTimeout bounds every connection attempt when the URL sets no
	// connect_timeout (default 5s).
	ConnectTimeout time.Duration
	// MaxAttempts bounds how often RunTx runs a transaction that fails with
	// a serialization failure or deadlock (default 10).
	MaxAttempts int
	// OnCommit, when set, observes every commit (size is always 1 here).
	OnCommit func(size int, d time.Duration)
}

// Engine is the PostgreSQL store.Engine.
type Engine struct {
	pool *pgxpool.Pool
	db   *sql.DB
	opts Options
	conn *pgx.ConnConfig // for connections of its own (Exclusive)
}

// migrationLock is the pg_advisory_lock key that serialises migrations
// across nodes starting together ("swyd-mig").
const migrationLock int64 = 0x737779642d6d6967

// ErrURL marks a database URL that does not parse: a bad value, not a
// database that cannot be reached.
var ErrURL = errors.New("database url")

// Open connects to the database at url, checks that it answers and applies
// the migrations not yet recorded. A database that cannot be reached fails
// within the connect timeout.
func Open(ctx context.Context, url string, opts Options) (*Engine, error) {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 32
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrURL, err)
	}
	cfg.MaxConns = int32(opts.MaxConns)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	if err := migrate(ctx, cfg.ConnConfig); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	return &Engine{pool: pool, db: stdlib.OpenDBFromPool(pool), opts: opts, conn: cfg.ConnConfig}, nil
}

// Reader implements store.Engine. Reads outside a write transaction see
// committed data (READ COMMITTED, one statement at a time).
func (e *Engine) Reader() store.Querier { return e.db }

// Pool returns the pgx pool (for tests and benchmarks).
func (e *Engine) Pool() *pgxpool.Pool { return e.pool }

// Ping implements store.Engine.
func (e *Engine) Ping(ctx context.Context) error { return e.pool.Ping(ctx) }

// Close implements store.Engine.
func (e *Engine) Close() error {
	err := e.db.Close()
	e.pool.Close()
	return err
}

// Write implements store.Engine through RunTx.
func (e *Engine) Write(ctx context.Context, fn func(store.Querier) error) error {
	return e.RunTx(ctx, fn)
}

// RunTx runs fn in a SERIALIZABLE transaction and commits it. A
// serialization failure (40001), a deadlock (40P01) or a connection lost
// before anything was sent runs the whole transaction again, up to
// MaxAttempts times with jittered backoff: fn must compute everything it
// reports from what it reads inside the transaction, resetting whatever it
// captures at its start.
func (e *Engine) RunTx(ctx context.Context, fn func(store.Querier) error) error {
	return e.retry(ctx, func() error { return e.once(ctx, sql.LevelSerializable, fn) })
}

// WriteLocking implements store.LockingWriter: fn runs as RunTx runs it,
// at READ COMMITTED.
func (e *Engine) WriteLocking(ctx context.Context, fn func(store.Querier) error) error {
	return e.retry(ctx, func() error { return e.once(ctx, sql.LevelReadCommitted, fn) })
}

// WriteBatch implements store.Batcher: the statements go to the server in
// one pipeline and run as its implicit transaction, committed at the
// pipeline's Sync (durably: the answer waits for the commit's WAL flush),
// or rolled back whole by the first statement that fails. A blind write
// costs one round trip instead of one per statement.
//
// The transaction runs at the database's default isolation (READ
// COMMITTED unless configured otherwise), not SERIALIZABLE: it reads
// nothing, so no anomaly can come from what it saw, and what it writes
// (rows under fresh random keys, commutative counter increments) does not
// depend on the order it commits in. At READ COMMITTED a counter increment
// waits for a concurrent one instead of failing with a serialization
// failure. Failures RunTx retries are retried here too.
func (e *Engine) WriteBatch(ctx context.Context, stmts []store.Stmt) ([]int64, error) {
	var n []int64
	err := e.retry(ctx, func() (err error) {
		n, err = e.batchOnce(ctx, stmts)
		return err
	})
	return n, err
}

// retry runs attempt until it succeeds, fails for good, or MaxAttempts.
func (e *Engine) retry(ctx context.Context, attempt func() error) error {
	backoff := 2 * time.Millisecond
	for i := 1; ; i++ {
		err := attempt()
		if err != nil && ctx.Err() != nil && (retryable(err) || errors.Is(err, sql.ErrTxDone)) {
			// The caller went away mid-transaction: database/sql rolled it
			// back (ErrTxDone at commit), or it lost a conflict that is no
			// longer worth retrying. The cause is the cancellation, not the
			// store (503, as on SQLite), and never a 500.
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		if err == nil || i >= e.opts.MaxAttempts || !retryable(err) {
			return err
		}
		d := backoff/2 + rand.N(backoff)
		if backoff < 200*time.Millisecond {
			backoff *= 2
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// batchOnce sends one blind write as one batch.
func (e *Engine) batchOnce(ctx context.Context, stmts []store.Stmt) ([]int64, error) {
	start := time.Now()
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(stmts))}
	for _, st := range stmts {
		b.Queue(st.SQL, st.Args...)
	}
	n := make([]int64, len(stmts))
	br := e.pool.SendBatch(ctx, b)
	var err error
	for i := 0; err == nil && i < len(stmts); i++ {
		var tag pgconn.CommandTag
		tag, err = br.Exec()
		n[i] = tag.RowsAffected()
	}
	// Close reads up to the Sync's ReadyForQuery: the commit, or its error.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if e.opts.OnCommit != nil {
		e.opts.OnCommit(1, time.Since(start))
	}
	return n, nil
}

func (e *Engine) once(ctx context.Context, iso sql.IsolationLevel, fn func(store.Querier) error) (err error) {
	start := time.Now()
	tx, err := e.db.BeginTx(ctx, &sql.TxOptions{Isolation: iso})
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			err = fmt.Errorf("panic in write transaction: %v", p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if e.opts.OnCommit != nil {
		e.opts.OnCommit(1, time.Since(start))
	}
	return nil
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// retryable: the transaction lost a conflict, or never reached the server.
func retryable(err error) bool {
	switch sqlState(err) {
	case "40001", "40P01":
		return true
	}
	return pgconn.SafeToRetry(err)
}

// IsUnique implements store.Engine.
func (e *Engine) IsUnique(err error) bool { return sqlState(err) == "23505" }

// IsUnavailable implements store.Engine: the server cannot be reached, is
// shutting down or starting up, refuses more connections, or the
// connection broke; the store turns these into 503 ServiceUnavailable.
func (e *Engine) IsUnavailable(err error) bool { return IsUnavailable(err) }

// IsUnavailable is the engine's test for "the database is not there".
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if code := sqlState(err); code != "" {
		switch {
		case strings.HasPrefix(code, "08"), // connection exception
			code == "57P01", // admin_shutdown
			code == "57P02", // crash_shutdown
			code == "57P03", // cannot_connect_now
			code == "53300": // too_many_connections
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce),
		errors.As(err, &ne),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, puddle.ErrClosedPool),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		pgconn.SafeToRetry(err):
		return true
	}
	return false
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, on one dedicated session holding pg_advisory_lock, so
// nodes starting together apply each migration exactly once. Closing the
// session releases the lock whatever happened.
// Exclusive implements store.Serializer: fn runs while this process holds
// the advisory lock named by name, on a connection of its own, so fn's
// work on the pool cannot wait for the lock's connection.
func (e *Engine) Exclusive(ctx context.Context, name string, fn func() error) error {
	conn, err := pgx.ConnectConfig(ctx, e.conn)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background()) // ends the session: the lock goes with it
	h := fnv.New64a()
	h.Write([]byte("switchyard:" + name))
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(h.Sum64())); err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	return fn()
}

func migrate(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrations table: %w", err)
	}
	ms, err := store.Migrations(migrations, "migrations")
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := applyOne(ctx, conn, m.Version, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	_, err = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrationLock)
	return err
}

func applyOne(ctx context.Context, conn *pgx.Conn, version int, body string) error {
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, body); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, version, time.Now().UnixMilli())
		return err
	})
}
