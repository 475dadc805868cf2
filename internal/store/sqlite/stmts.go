package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"

	"switchyard/internal/store"
)

// maxStmts bounds each cache: list queries vary with their filters and IN
// lists, and a statement beyond the bound simply runs unprepared.
const maxStmts = 1024

// stmtCache keeps one prepared statement per SQL text. Without it the
// driver parses every query anew, which cost about a third of the CPU of a
// GET; SQLite keeps a prepared statement per connection, and database/sql
// re-prepares a DB-level statement on each pool connection it meets.
type stmtCache struct {
	prepare func(ctx context.Context, query string) (*sql.Stmt, error)
	m       sync.Map // query → *sql.Stmt
	n       atomic.Int64
}

func (c *stmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	if s, ok := c.m.Load(query); ok {
		return s.(*sql.Stmt)
	}
	if c.n.Load() >= maxStmts {
		return nil
	}
	s, err := c.prepare(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil // the unprepared path reports the error
	}
	if prev, loaded := c.m.LoadOrStore(query, s); loaded {
		s.Close()
		return prev.(*sql.Stmt)
	}
	c.n.Add(1)
	return s
}

func (c *stmtCache) close() {
	c.m.Range(func(_, s any) bool {
		s.(*sql.Stmt).Close()
		return true
	})
}

// cachedDB is the read pool with prepared statements.
type cachedDB struct {
	db    *sql.DB
	cache *stmtCache
}

func newCachedDB(db *sql.DB) cachedDB {
	return cachedDB{db: db, cache: &stmtCache{prepare: db.PrepareContext}}
}

func (c cachedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := c.cache.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return c.db.ExecContext(ctx, query, args...)
}

// pointRead drops the cancellation of a lookup by key (store.Keyed).
func pointRead(ctx context.Context) context.Context {
	if store.Keyed(ctx) {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (c cachedDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = pointRead(ctx)
	if s := c.cache.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return c.db.QueryContext(ctx, query, args...)
}

func (c cachedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = pointRead(ctx)
	if s := c.cache.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

// detached runs the writer's statements on its one connection, prepared
// once, and detached from the request's cancellation: once a job has
// started it runs to the end, since an interrupted statement would roll
// back the whole group-commit batch, its neighbours included.
type detached struct {
	c     *sql.Conn
	cache *stmtCache
}

func newDetached(c *sql.Conn) detached {
	return detached{c: c, cache: &stmtCache{prepare: c.PrepareContext}}
}

func (d detached) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = context.WithoutCancel(ctx)
	if s := d.cache.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return d.c.ExecContext(ctx, query, args...)
}

func (d detached) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = context.WithoutCancel(ctx)
	if s := d.cache.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return d.c.QueryContext(ctx, query, args...)
}

func (d detached) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = context.WithoutCancel(ctx)
	if s := d.cache.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return d.c.QueryRowContext(ctx, query, args...)
}

var (
	_ store.Querier = cachedDB{}
	_ store.Querier = detached{}
)
