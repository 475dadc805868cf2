package pagecache

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestMain installs the layer before anything in the test binary opens a
// connection, as the engine does before its first.
func TestMain(m *testing.M) {
	if err := Install(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestBound(t *testing.T) {
	const temp = 262145 // the pending byte's page with 4 KiB pages
	type op struct {
		kind     string // "add", "rekey", "truncate"
		a, b     uint32
		reach    uint32 // then ask reaches(reach)
		wantHigh bool
	}
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"empty cache reaches nothing", []op{{"truncate", 1, 0, 1, false}}},
		{"a page at the limit is reached", []op{{"add", 10, 0, 10, true}, {"add", 10, 0, 11, false}}},
		{"a truncation lowers the bound", []op{{"add", 50, 0, 20, true}, {"truncate", 20, 0, 20, false}, {"add", 5, 0, 20, false}, {"add", 5, 0, 19, true}}},
		{"a truncation above the bound keeps it", []op{{"add", 50, 0, 51, false}, {"truncate", 100, 0, 50, true}}},
		{"the balance swap leaves nothing behind", []op{
			{"add", 100, 0, 101, false},
			{"add", 90, 0, 101, false},
			{"rekey", 100, temp, 101, true}, // A to the temporary key
			{"rekey", 90, 100, 101, true},   // B to A's number
			{"rekey", temp, 90, 101, false}, // A to B's number
		}},
		{"a page left on the temporary key is reached", []op{{"rekey", 100, temp, 101, true}, {"truncate", 101, 0, 101, false}}},
		{"a fetch of the temporary key counts", []op{{"add", temp, 0, temp, true}}},
		{"a temporary page below the limit is not reached", []op{{"rekey", 5, temp, temp + 1, false}}},
		{"a rekey upwards raises the bound", []op{{"rekey", 3, 700, 600, true}}},
		{"truncating everything", []op{{"add", 9, 0, 1, true}, {"rekey", 9, temp, 1, true}, {"truncate", 0, 0, 1, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bound{tempKey: temp}
			for i, o := range tc.ops {
				switch o.kind {
				case "add":
					b.add(o.a)
				case "rekey":
					b.rekeyed(o.a, o.b)
				case "truncate":
					b.truncated(o.a)
				}
				if got := b.reaches(o.reach); got != o.wantHigh {
					t.Fatalf("after op %d (%s %d %d): reaches(%d) = %v, want %v (bound %+v)", i, o.kind, o.a, o.b, o.reach, got, o.wantHigh, b)
				}
			}
		})
	}
}

// TestWorkloadMatchesModel runs random B-tree work (random keys split and
// balance pages; savepoints and transactions that grow the file roll
// back; deletes free pages for reuse; VACUUM shrinks the file; another
// connection writes, so the first must drop what it cached) on a database
// file through the layer, and checks that the writer and a reader read
// exactly what a model in memory holds, and at the end that the file is
// sound. It also checks that both of the layer's paths ran.
func TestWorkloadMatchesModel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	open := func(extra string) *sql.DB {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=cache_size(-2048)&_pragma=secure_delete(ON)"+extra)
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		return db
	}
	w, r, other := open("&_txlock=immediate"), open("&_pragma=query_only(1)"), open("&_txlock=immediate")
	ctx := context.Background()
	conn, err := w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB NOT NULL, n INTEGER NOT NULL)`)
	exec(`CREATE INDEX kv_n ON kv (n, k)`)

	rng := rand.New(rand.NewPCG(1, 2))
	key := func() string { return fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()) }
	val := func() []byte { return []byte(strings.Repeat(string(rune('a'+rng.IntN(26))), 50+rng.IntN(400))) }
	model := map[string]string{}
	d0, p0 := Truncations()

	for txn := range 300 {
		exec(`BEGIN IMMEDIATE`)
		pending := map[string]*string{} // this transaction's changes; nil: deleted
		put := func(k string, v []byte) {
			exec(`INSERT INTO kv (k, v, n) VALUES ($1, $2, $3) ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = excluded.n`, k, v, rng.IntN(1000))
			s := string(v)
			pending[k] = &s
		}
		for range 5 + rng.IntN(40) {
			put(key(), val())
		}
		// Delete some committed rows, so freed pages come back.
		if txn%4 == 3 {
			n := 0
			for k := range model {
				if n++; n > 30 {
					break
				}
				exec(`DELETE FROM kv WHERE k = $1`, k)
				pending[k] = nil
			}
		}
		// A savepoint that grows the file, then is rolled back.
		if txn%3 == 1 {
			exec(`SAVEPOINT s`)
			for range 60 {
				exec(`INSERT INTO kv (k, v, n) VALUES ($1, $2, $3)`, key(), val(), rng.IntN(1000))
			}
			exec(`ROLLBACK TO s`)
			exec(`RELEASE s`)
		}
		if txn%10 == 9 {
			exec(`ROLLBACK`) // the whole transaction, growth and all
		} else {
			exec(`COMMIT`)
			for k, v := range pending {
				if v == nil {
					delete(model, k)
				} else {
					model[k] = *v
				}
			}
		}
		if txn%20 == 10 {
			// Another connection changes rows the writer has cached.
			n := 0
			for k := range model {
				if n++; n > 10 {
					break
				}
				v := val()
				if _, err := other.ExecContext(ctx, `UPDATE kv SET v = $2 WHERE k = $1`, k, v); err != nil {
					t.Fatal(err)
				}
				model[k] = string(v)
			}
			compare(t, conn, model)
		}
		if txn%100 == 50 {
			exec(`VACUUM`)
			compare(t, conn, model)
		}
		if txn%25 == 0 || txn == 299 {
			compare(t, r, model)
			compare(t, conn, model)
		}
	}
	var ok string
	if err := conn.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
	compare(t, r, model)
	d1, p1 := Truncations()
	if d1 == d0 {
		t.Error("no truncation was dropped: the layer is not in use")
	}
	if p1 == p0 {
		t.Error("no truncation was passed on: rollbacks of grown files must reach pcache1")
	}
	t.Logf("truncations dropped %d, passed on %d", d1-d0, p1-p0)
}

// querier is a *sql.DB or a *sql.Conn.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// compare checks that db reads exactly model.
func compare(t *testing.T, db querier, model map[string]string) {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT k, v FROM kv ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		if want, ok := model[k]; !ok || want != string(v) {
			t.Fatalf("row %s: read %d bytes, model has %v (%d bytes)", k, len(v), ok, len(want))
		}
		got = append(got, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(model) {
		keys := make([]string, 0, len(model))
		for k := range model {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.Fatalf("read %d rows, model has %d", len(got), len(keys))
	}
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM kv INDEXED BY kv_n`).Scan(&n); err != nil || n != len(model) {
		t.Fatalf("index holds %d rows (%v), model %d", n, err, len(model))
	}
}
