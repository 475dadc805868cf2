// Package store implements the domain packages' store interfaces once, in
// SQL that both engines accept ($1 placeholders, RETURNING, ON CONFLICT).
// The engines (store/sqlite, store/postgres) only open connections, run
// migrations and translate driver errors.
package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"switchyard/internal/errs"
)

// Querier is what shared SQL runs on: a read pool, or a write transaction.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Engine is one database backend.
type Engine interface {
	// Write runs fn in a write transaction. When Write returns nil the
	// work is durably committed; when fn fails nothing it did remains.
	Write(ctx context.Context, fn func(q Querier) error) error
	// Reader is the read-only pool.
	Reader() Querier
	// IsUnique reports whether err is a unique-constraint violation.
	IsUnique(err error) bool
	// IsUnavailable reports whether err means the database cannot be reached.
	IsUnavailable(err error) bool
	Ping(ctx context.Context) error
	Close() error
}

// Stmt is one statement of a blind write: its arguments are known before
// the transaction starts, whatever the statements before it return.
type Stmt struct {
	SQL  string
	Args []any
}

// Serializer is an engine shared by several processes that can run a
// piece of work in one of them at a time (PostgreSQL: an advisory lock).
type Serializer interface {
	Exclusive(ctx context.Context, name string, fn func() error) error
}

// exclusive serialises Exclusive within this process, for engines that are
// not Serializers (the embedded file belongs to one server process).
var exclusive sync.Mutex

// Exclusive runs fn while no other caller runs one under the same name:
// across nodes where the engine is a Serializer, else within the process.
// Work that must happen once however many nodes start together (making
// the first account) checks and acts inside it.
func (s *Store) Exclusive(ctx context.Context, name string, fn func() error) error {
	if x, ok := s.eng.(Serializer); ok {
		return x.Exclusive(ctx, name, fn)
	}
	exclusive.Lock()
	defer exclusive.Unlock()
	return fn()
}

// Batcher is an engine that can run a blind write, a transaction of Stmts
// and nothing else, without a round trip per statement (PostgreSQL sends
// them in one pipeline). It reports each statement's rows affected.
type Batcher interface {
	WriteBatch(ctx context.Context, stmts []Stmt) ([]int64, error)
}

// LockingWriter is an engine that can run a write transaction on row locks
// alone (READ COMMITTED on PostgreSQL) rather than Write's isolation. It is
// for transactions whose every decision is a conditional UPDATE of the row
// it writes (re-checked on the row's latest version once its lock is
// held), or rests on rows read after locking the row every writer of them
// also writes (a no-op UPDATE first); whose other writes are overwrites
// with values the caller computed before the transaction, or commutative
// increments. Such a transaction gains nothing from SERIALIZABLE, which
// would fail concurrent writers of one row (a customer's statistics, a
// customer updated twice at once) and retry them, up to giving up.
type LockingWriter interface {
	WriteLocking(ctx context.Context, fn func(q Querier) error) error
}

// writeLocking runs fn through eng's WriteLocking, else its Write.
func writeLocking(ctx context.Context, eng Engine, fn func(q Querier) error) error {
	if l, ok := eng.(LockingWriter); ok {
		return l.WriteLocking(ctx, fn)
	}
	return eng.Write(ctx, fn)
}

// writeStmts runs stmts as one write transaction on eng: in one round trip
// where eng is a Batcher, else one statement at a time through Write.
func writeStmts(ctx context.Context, eng Engine, stmts ...Stmt) ([]int64, error) {
	if b, ok := eng.(Batcher); ok {
		return b.WriteBatch(ctx, stmts)
	}
	n := make([]int64, len(stmts))
	err := eng.Write(ctx, func(q Querier) error {
		return execStmts(ctx, q, n, stmts)
	})
	return n, err
}

// execStmts runs stmts on q in order, keeping each one's rows affected in
// n (which may be nil).
func execStmts(ctx context.Context, q Querier, n []int64, stmts []Stmt) error {
	for i, st := range stmts {
		res, err := q.ExecContext(ctx, st.SQL, st.Args...)
		if err != nil {
			return err
		}
		if n != nil {
			if n[i], err = res.RowsAffected(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Store implements the domain store interfaces on an Engine.
type Store struct {
	eng    Engine
	ledger Engine // the Simulator's ledger: eng, or its own (LedgerEngine)
}

// New returns a Store over eng. An engine that keeps the Simulator's
// ledger apart (interface{ LedgerEngine() Engine }) has it used for that.
func New(eng Engine) *Store {
	s := &Store{eng: eng, ledger: eng}
	if l, ok := eng.(interface{ LedgerEngine() Engine }); ok {
		s.ledger = l.LedgerEngine()
	}
	return s
}

// keyed marks the context of a lookup by key, which reads a handful of
// pages, for the engine (see Keyed). Scans and lists keep the request's
// context unmarked.
func keyed(ctx context.Context) context.Context { return context.WithValue(ctx, keyedLookup{}, true) }

type keyedLookup struct{}

// Keyed reports whether ctx is that of a lookup by key. An engine may run
// such a query to its end rather than cancellably: the SQLite driver gives
// every cancellable query a watcher goroutine and a progress handler, which
// cost a point read more than the read (GET /v1/customers/{id}: about 5 %
// more requests/s without them). PostgreSQL keeps the cancellation, which
// also bounds a query stuck on a broken connection.
func Keyed(ctx context.Context) bool { v, _ := ctx.Value(keyedLookup{}).(bool); return v }

// Engine returns the engine (for health checks and tests).
func (s *Store) Engine() Engine { return s.eng }

// LedgerEngine returns the engine holding the Simulator's ledger (tests).
func (s *Store) LedgerEngine() Engine { return s.ledger }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.eng.Ping(ctx) }

// wrap turns a driver error into an errs value: unreachable database → 503,
// anything else internal. Domain errors pass through unchanged.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	if s.eng.IsUnavailable(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &errs.Error{Kind: errs.Unavailable, Op: op, Err: err}
	}
	return &errs.Error{Kind: errs.Internal, Op: op, Err: err}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
