package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
	"testing"
	"time"

	"modernc.org/libc"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// pooled is one connection of db, returned to the pool at the test's end.
func pooled(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mutexOf reports the SQLite mutex of a connection.
func mutexOf(t *testing.T, c *sql.Conn) uintptr {
	t.Helper()
	var m uintptr
	err := c.Raw(func(dc any) error {
		h, ok := handle(dc.(sqlite.ExecQuerierContext))
		if !ok {
			t.Fatal("no sqlite3 handle in the driver's connection")
		}
		tls := libc.NewTLS()
		defer tls.Close()
		m = sqlite3.Xsqlite3_db_mutex(tls, h)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConnectionsRunWithoutTheirMutex(t *testing.T) {
	droppedBefore, keptBefore := Unmutexed()
	e := openEngine(t, t.TempDir(), Options{GroupCommit: true})
	// The writers' connections are held by their engines; the pools lend one.
	for name, c := range map[string]*sql.Conn{"writer": e.conn, "read pool": pooled(t, e.read), "checkpointer": pooled(t, e.cp),
		"ledger writer": e.ledger.conn, "ledger read pool": pooled(t, e.ledger.read)} {
		if m := mutexOf(t, c); m != 0 {
			t.Errorf("%s: the connection still has its mutex", name)
		}
	}
	if dropped, kept := Unmutexed(); dropped == droppedBefore || kept != keptBefore {
		t.Errorf("opening the engine: %d connections dropped their mutex, %d kept it; want some and none",
			dropped-droppedBefore, kept-keptBefore)
	}
}

// A value that is not the driver's connection is left alone.
type notTheDriver struct{ db uintptr }

func (notTheDriver) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return nil, nil
}
func (notTheDriver) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return nil, nil
}

type otherLayout struct{ db string }

func (*otherLayout) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return nil, nil
}
func (*otherLayout) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return nil, nil
}

func TestHandleRefusesWhatItCannotCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    sqlite.ExecQuerierContext
	}{
		{"not a pointer", notTheDriver{db: 1}},
		{"db of another type", &otherLayout{db: "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, keptBefore := Unmutexed()
			if _, ok := handle(tc.c); ok {
				t.Error("handle accepted it")
			}
			if err := dropMutex(tc.c, ""); err != nil {
				t.Errorf("dropMutex: %v", err)
			}
			if _, kept := Unmutexed(); kept != keptBefore+1 {
				t.Errorf("kept %d, want %d", kept, keptBefore+1)
			}
		})
	}
}

// Readers, writers and reads interrupted mid-statement at once, on
// connections without their mutex: database/sql keeps each connection to
// one goroutine, and a cancellation interrupts from another (go test -race
// runs this).
func TestConcurrentUseWithoutMutexes(t *testing.T) {
	e := openEngine(t, t.TempDir(), Options{GroupCommit: true})
	newTable(t, e)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				id := w*1000 + i
				if err := e.Write(context.Background(), insert(id, "v")); err != nil {
					t.Errorf("write %d: %v", id, err)
					return
				}
				var v string
				if err := e.Reader().QueryRowContext(context.Background(), `SELECT v FROM t WHERE id = $1`, id).Scan(&v); err != nil {
					t.Errorf("read %d: %v", id, err)
					return
				}
				if i%10 == 0 {
					// A long read cancelled while it runs: the driver
					// interrupts it from its own goroutine.
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
					var n int
					err := e.Reader().QueryRowContext(ctx, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c`).Scan(&n)
					cancel()
					if err == nil {
						t.Errorf("an endless read answered %d", n)
					}
				}
			}
		})
	}
	wg.Wait()
	if got := len(rows(t, e)); got != 8*50 {
		t.Errorf("%d rows, want %d", got, 8*50)
	}
	var ok string
	if err := e.Reader().QueryRowContext(context.Background(), `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check = %q, %v", ok, err)
	}
}
