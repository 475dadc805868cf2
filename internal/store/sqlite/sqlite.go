// Package sqlite is the embedded engine: modernc SQLite in WAL mode with
// synchronous=FULL, a read-only pool, and one writer goroutine that batches
// concurrent write transactions into one commit (group commit): one fsync
// serves many requests, and each request runs in its own SAVEPOINT so one
// failure does not fail its neighbours.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"switchyard/internal/store"
	"switchyard/internal/store/sqlite/pagecache"
	"switchyard/internal/store/sqlite/walvfs"
)

//go:embed migrations/*.sql ledger_migrations/*.sql
var migrations embed.FS

// Options tune the engine.
type Options struct {
	// GroupCommit batches concurrent writes into one transaction. Off, every
	// write commits (and fsyncs) on its own: for benchmarks only.
	GroupCommit bool
	// MaxBatch caps the number of writes in one commit (default 256).
	MaxBatch int
	// OnCommit, when set, observes every commit: batch size and duration.
	OnCommit func(size int, d time.Duration)

	onLinger func() // tests: called in the writer as it starts a commit delay
}

// Engine is the SQLite store.Engine.
type Engine struct {
	write  *sql.DB
	conn   *sql.Conn
	wq     detached // the writer's connection, statements prepared once
	read   *sql.DB
	rq     cachedDB      // the read pool, statements prepared once
	cp     *sql.DB       // the checkpointing connection
	cpDone chan struct{} // closed when checkpointLoop has stopped
	opts   Options
	jobs   chan *job
	done   chan struct{}
	stop   context.CancelFunc
	ledger *Engine // the Simulator's ledger file (main engine only)
	path   string
	file   os.FileInfo // the database file as opened (Ping)
}

type job struct {
	ctx context.Context
	fn  func(store.Querier) error
	err chan error
	raw bool // run outside any transaction (checkpoints)
}

// Path returns the database file inside dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, "switchyard.db") }

// LedgerPath returns the Simulator ledger's file inside dataDir.
func LedgerPath(dataDir string) string { return filepath.Join(dataDir, "simulator.db") }

func dsn(path string, readOnly bool, sync string) string {
	q := []string{
		"_pragma=busy_timeout(10000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(" + sync + ")",
		"_pragma=foreign_keys(ON)",
		// Freed content is overwritten with zeros, so card data a sweeper
		// or a token's use destroys does not linger in free pages.
		"_pragma=secure_delete(ON)",
		// A larger page cache for big tables. (A memory map was tried and
		// measured slower: each commit that grows the file re-maps it.)
		"_pragma=cache_size(-32768)",
	}
	if readOnly {
		q = append(q, "_pragma=query_only(1)")
	} else {
		// A background connection copies the WAL into the database
		// (checkpointLoop) on the other core while the writer goes on
		// committing. The writer's own auto-checkpoint is only a backstop
		// for when that falls behind: customer creates append some 35,000
		// frames a second, so at 4,000 frames it fired several times
		// between two background checkpoints and did most of the copying
		// on the writer's time (at 20,000 flow 1 was 14 to 21 % faster,
		// charges 5 to 13 %). The WAL file grows to about 80 MiB under such
		// load, in chunks (walvfs); the vault sweeper still truncates it
		// (Engine.Checkpoint).
		q = append(q, "_txlock=immediate", "_pragma=wal_autocheckpoint(20000)")
	}
	return "file:" + path + "?" + strings.Join(q, "&")
}

// writerDSN is the writer connection's DSN. With synchronous=FULL its WAL
// writes go through walvfs, which gathers a commit's frames into one write
// (walvfs is only safe where every commit syncs).
func writerDSN(path, sync string) string {
	d := dsn(path, false, sync)
	if sync == "FULL" && walvfs.Register() == nil {
		d += "&vfs=" + walvfs.Name
	}
	return d
}

// checkpointEvery is how often the background connection checkpoints.
const checkpointEvery = 250 * time.Millisecond

// checkpointLoop runs PASSIVE checkpoints on its own connection until ctx
// ends: they never block the writer or readers, and keep the WAL short.
func checkpointLoop(ctx context.Context, db *sql.DB, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}

// Open opens (creating when needed) the database in dataDir and applies
// its migrations, and beside it the Simulator's ledger (LedgerEngine).
func Open(ctx context.Context, dataDir string, opts Options) (*Engine, error) {
	// Before SQLite's first connection in the process, or never: without
	// the layer commits are slower and nothing else changes, so a process
	// that opened SQLite before (a test binary) goes on without it.
	_ = pagecache.Install()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	for _, p := range []string{Path(dataDir), LedgerPath(dataDir)} {
		if err := ownerOnly(p); err != nil {
			return nil, err
		}
	}
	e, err := openFile(ctx, Path(dataDir), "migrations", "FULL", opts)
	if err != nil {
		return nil, err
	}
	// The ledger's commits are not Switchyard's: they stay out of its
	// commit metrics. And it is a simulated processor's state, not
	// merchant data: its commits survive a crash of the process (the page
	// cache keeps them) but skip the fsync, which would otherwise compete
	// with Switchyard's own on the same disk (measured: charges/s fell).
	lopts := opts
	lopts.OnCommit = nil
	lopts.onLinger = nil
	if e.ledger, err = openFile(ctx, LedgerPath(dataDir), "ledger_migrations", "NORMAL", lopts); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// PageCacheLayer reports whether the page-cache layer (package pagecache)
// is in place for this process: nil, or why not. Without it every commit
// that splits index pages is slower; nothing else changes.
func PageCacheLayer() error { return pagecache.Install() }

// ownerOnly makes the database file at path, and its WAL and shared-memory
// files if there, readable by this user only (0600), creating an empty one
// when missing: SQLite gives the files it creates the database file's
// mode, and its default (0644 under the usual umask) would let any local
// user read names, emails and key hashes out of a data dir that is not
// itself private (MkdirAll does not tighten an existing one).
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restrict %s: %w", p, err)
		}
	}
	return nil
}

// LedgerEngine is the engine of the Simulator's ledger: its own file and
// writer, so a charge's ledger entry commits beside Switchyard's commits
// instead of queueing behind them (store.New uses it).
func (e *Engine) LedgerEngine() store.Engine { return e.ledger }

// openFile opens one database file with its writer, read pool and
// checkpointer, and applies the migrations in dir.
func openFile(ctx context.Context, path, dir, sync string, opts Options) (*Engine, error) {
	w, err := sql.Open("sqlite", writerDSN(path, sync))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	conn, err := w.Conn(ctx)
	// Two processes switching a fresh file to WAL at once: SQLite refuses
	// one at once (SQLITE_BUSY, no busy wait, which could deadlock) rather
	// than wait; a moment later the file is in WAL mode and it opens.
	for try := 0; err != nil && isBusy(err) && try < 50; try++ {
		time.Sleep(20 * time.Millisecond)
		conn, err = w.Conn(ctx)
	}
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := migrate(ctx, conn, dir); err != nil {
		conn.Close()
		w.Close()
		return nil, err
	}
	file, err := os.Stat(path) // the file the writer opened, for Ping
	if err != nil {
		conn.Close()
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, true, sync))
	if err != nil {
		conn.Close()
		w.Close()
		return nil, err
	}
	n := 2 * runtime.GOMAXPROCS(0)
	if n < 4 {
		n = 4
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	cp, err := sql.Open("sqlite", dsn(path, false, sync))
	if err != nil {
		r.Close()
		conn.Close()
		w.Close()
		return nil, err
	}
	cp.SetMaxOpenConns(1)
	runCtx, cancel := context.WithCancel(context.Background())
	e := &Engine{write: w, conn: conn, wq: newDetached(conn), read: r, rq: newCachedDB(r), cp: cp, cpDone: make(chan struct{}),
		opts: opts, jobs: make(chan *job, 4096), done: make(chan struct{}), stop: cancel, path: path, file: file}
	go e.loop(runCtx)
	go checkpointLoop(runCtx, cp, e.cpDone)
	return e, nil
}

// Reader implements store.Engine.
func (e *Engine) Reader() store.Querier { return e.rq }

// sqliteMagic opens every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// Ping implements store.Engine (the health check): the database file at
// its path is still the one the server opened, and reading it works. A
// removed or replaced file, or one that no longer reads as a database,
// fails it; an open connection pool alone would answer for ever.
func (e *Engine) Ping(ctx context.Context) error {
	fi, err := os.Stat(e.path)
	if err != nil {
		return fmt.Errorf("database file: %w", err)
	}
	if !os.SameFile(fi, e.file) {
		return fmt.Errorf("database file %s was replaced after it was opened", e.path)
	}
	// The header, from the file itself: a connection's cached first page
	// would not show it overwritten.
	f, err := os.Open(e.path)
	if err != nil {
		return fmt.Errorf("database file: %w", err)
	}
	magic := make([]byte, len(sqliteMagic))
	_, err = f.ReadAt(magic, 0)
	f.Close()
	if err != nil || string(magic) != sqliteMagic {
		return fmt.Errorf("database file %s no longer starts with a SQLite header (%v)", e.path, err)
	}
	var n int
	return e.read.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n)
}

// Write implements store.Engine: the work joins the next commit batch.
func (e *Engine) Write(ctx context.Context, fn func(store.Querier) error) error {
	return e.submit(&job{ctx: ctx, fn: fn, err: make(chan error, 1)})
}

// submit queues j for the writer and waits for its outcome.
func (e *Engine) submit(j *job) error {
	select {
	case e.jobs <- j:
	case <-e.done:
		return errClosed
	case <-j.ctx.Done():
		return j.ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the work may
	// already be committed, and the caller must not guess.
	select {
	case err := <-j.err:
		return err
	case <-e.done:
		// The writer reports every job before it closes done: a result
		// may be waiting, and a committed write must not read as failed.
		select {
		case err := <-j.err:
			return err
		default:
			return errClosed
		}
	}
}

var errClosed = errors.New("store is closed")

// Checkpoint copies the WAL into the database and truncates it, through the
// writer and outside any transaction. After card data is destroyed, this
// bounds how long its old page images stay in the WAL file.
func (e *Engine) Checkpoint(ctx context.Context) error {
	return e.submit(&job{ctx: ctx, raw: true, err: make(chan error, 1), fn: func(q store.Querier) error {
		_, err := q.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		return err
	}})
}

func (e *Engine) loop(ctx context.Context) {
	defer close(e.done)
	batch := make([]*job, 0, e.opts.MaxBatch)
	var last, before int      // the sizes of the last two committed batches
	var lastDur time.Duration // how long the last one took
	var lastEnd time.Time     // when it ended
	for {
		var first *job
		select {
		case first = <-e.jobs:
		default:
			select {
			case first = <-e.jobs:
			case <-ctx.Done():
				// Drain what is queued, then stop.
				for {
					select {
					case j := <-e.jobs:
						e.runBatch([]*job{j}, nil)
					default:
						return
					}
				}
			}
			if time.Since(lastEnd) > lastDur {
				// Idle for longer than a commit: whoever wrote the last
				// batches is not on its way back.
				last, before = 0, 0
			}
		}
		batch = append(batch[:0], first)
		var raw []*job
		if e.opts.GroupCommit && !first.raw {
		fill:
			for len(batch) < e.opts.MaxBatch {
				select {
				case j := <-e.jobs:
					if j.raw {
						raw = append(raw, j) // after this batch's commit
						break fill
					}
					batch = append(batch, j)
				default:
					break fill
				}
			}
			if target, wait := lingerFor(last, before, lastDur); raw == nil && len(batch) < target {
				if e.opts.onLinger != nil {
					e.opts.onLinger()
				}
				batch, raw = linger(e.jobs, batch, min(target, e.opts.MaxBatch), wait)
			}
		}
		if d, ok := e.runBatch(batch, raw); ok {
			lastDur, lastEnd = d, time.Now()
			last, before = len(batch), last
		}
	}
}

// lingerFor is the writer's commit delay: how many writes a batch should
// hold before it commits, and how long the writer may wait for them.
//
// In a closed loop of many clients, batches fall into a lopsided rhythm: a
// big batch commits while one or two writes arrive, those commit alone at
// the full price of an fsync while the big batch's clients come back, and
// so on. The last two batches together show how many writers are cycling;
// while fewer than half of them are queued, the writer waits up to half its
// last batch's time (at most 1 ms) for the rest, so the batches even out and
// each fsync carries about half; the wait ends as soon as the batch is
// full. One to three clients give batches too small to wait for. When the
// writer has been idle for longer than its last commit, the loop forgets
// the batches before (nobody from them is on the way back), so the first
// write after a quiet spell never waits. (A lone client that follows a
// burst without a pause can wait twice, each time at most half the commit
// before, never over 1 ms.)
func lingerFor(last, before int, lastDur time.Duration) (target int, wait time.Duration) {
	target = (last + before) / 2
	if target < lingerMinBatch {
		return 0, 0
	}
	return target, min(lastDur/2, lingerMaxWait)
}

const (
	lingerMinBatch = 4
	lingerMaxWait  = time.Millisecond
)

// linger adds queued writes to batch until it holds target, wait passes, or
// a raw job arrives (returned to run after the batch).
func linger(jobs <-chan *job, batch []*job, target int, wait time.Duration) ([]*job, []*job) {
	if wait <= 0 {
		return batch, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for len(batch) < target {
		select {
		case j := <-jobs:
			if j.raw {
				return batch, []*job{j}
			}
			batch = append(batch, j)
		case <-t.C:
			return batch, nil
		}
	}
	return batch, nil
}

// runBatch commits batch (or runs it, when it is one raw job), then the raw
// jobs that were queued behind it. It reports how long the commit took,
// and false when there was none.
func (e *Engine) runBatch(batch, raw []*job) (time.Duration, bool) {
	if len(batch) == 1 && batch[0].raw {
		raw, batch = append([]*job{batch[0]}, raw...), nil
	}
	var took time.Duration
	if len(batch) > 0 {
		start := time.Now()
		e.commit(context.Background(), batch)
		took = time.Since(start)
	}
	for _, j := range raw {
		j.err <- j.run(e.wq)
	}
	return took, len(batch) > 0
}

// commit runs one batch and reports every job's outcome after its COMMIT.
// It is optimistic: the batch first runs in one IMMEDIATE transaction
// without savepoints (they would cost two statements a job). If a job
// fails, that transaction is rolled back, the job keeps its error, and the
// others run again, each in its own savepoint, so one failure never fails
// its neighbours. Jobs re-run safely: each reads what it needs inside its
// transaction, as a PostgreSQL serialization retry requires too.
func (e *Engine) commit(ctx context.Context, batch []*job) {
	start := time.Now()
	results := make([]error, len(batch))
	live := make([]int, 0, len(batch))
	for i, j := range batch {
		if err := j.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		live = append(live, i)
	}
	committed := 0
	if len(live) > 0 {
		failed, err := e.pass(ctx, batch, live, results, false)
		if err == nil && failed >= 0 {
			rest := make([]int, 0, len(live)-1)
			for _, i := range live {
				if i != failed {
					rest = append(rest, i)
				}
			}
			if len(rest) > 0 {
				_, err = e.pass(ctx, batch, rest, results, true)
			}
			live = rest
		}
		if err != nil {
			for _, i := range live {
				results[i] = err
			}
		} else {
			committed = len(live)
		}
	}
	// The batch size is every job that shared the commit, failed ones too.
	if committed > 0 && e.opts.OnCommit != nil {
		e.opts.OnCommit(len(batch), time.Since(start))
	}
	for i, j := range batch {
		j.err <- results[i]
	}
}

// pass runs the jobs idx of batch in one transaction. Without savepoints
// the first failing job rolls everything back and its index is returned
// (its error in results); with savepoints a failing job's work alone is
// undone. A non-nil error means the transaction itself failed.
func (e *Engine) pass(ctx context.Context, batch []*job, idx []int, results []error, savepoints bool) (int, error) {
	q := e.wq
	if _, err := q.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) {
		_, _ = q.ExecContext(ctx, "ROLLBACK")
		return -1, err
	}
	for _, i := range idx {
		j := batch[i]
		if !savepoints {
			if err := j.run(q); err != nil {
				results[i] = err
				_, _ = q.ExecContext(ctx, "ROLLBACK")
				return i, nil
			}
			continue
		}
		if _, err := q.ExecContext(ctx, "SAVEPOINT job"); err != nil {
			return fail(err)
		}
		if err := j.run(q); err != nil {
			results[i] = err
			if _, err := q.ExecContext(ctx, "ROLLBACK TO job"); err != nil {
				return fail(err)
			}
		}
		if _, err := q.ExecContext(ctx, "RELEASE job"); err != nil {
			return fail(err)
		}
	}
	if _, err := q.ExecContext(ctx, "COMMIT"); err != nil {
		return fail(err)
	}
	return -1, nil
}

// run calls the job's function, turning a panic into an error so one bad
// request cannot take the writer down.
func (j *job) run(q store.Querier) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in write transaction: %v", p)
		}
	}()
	return j.fn(q)
}

// Close stops the writer after the queued writes and closes the pools.
func (e *Engine) Close() error {
	e.stop()
	<-e.done
	<-e.cpDone
	_ = e.cp.Close()
	e.wq.cache.close()
	e.rq.cache.close()
	err := e.conn.Close()
	if cerr := e.write.Close(); err == nil {
		err = cerr
	}
	if cerr := e.read.Close(); err == nil {
		err = cerr
	}
	if e.ledger != nil {
		if cerr := e.ledger.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// isBusy reports SQLITE_BUSY (any extended code).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// IsUnique implements store.Engine.
func (e *Engine) IsUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// IsUnavailable implements store.Engine: an embedded file is unavailable
// only when it cannot be opened or the disk is full.
func (e *Engine) IsUnavailable(err error) bool {
	if errors.Is(err, errClosed) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR:
			return true
		}
	}
	return false
}

// migrate applies the embedded migrations not yet recorded, each in its own
// IMMEDIATE transaction (which also serialises concurrent processes).
func migrate(ctx context.Context, conn *sql.Conn, dir string) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrations table: %w", err)
	}
	ms, err := store.Migrations(migrations, dir)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := applyOne(ctx, conn, m.Version, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return nil
}

func applyOne(ctx context.Context, conn *sql.Conn, version int, body string) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		_, err = conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	if _, err := conn.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, version, time.Now().UnixMilli()); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}
