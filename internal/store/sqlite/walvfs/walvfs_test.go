package walvfs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// open opens path for writing; through this VFS when buffered.
func open(t *testing.T, path string, buffered bool, extra ...string) *sql.DB {
	t.Helper()
	if err := Register(); err != nil {
		t.Fatal(err)
	}
	q := append([]string{"_pragma=journal_mode(WAL)", "_pragma=synchronous(FULL)", "_pragma=busy_timeout(5000)"}, extra...)
	if buffered {
		q = append(q, "vfs="+Name)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+strings.Join(q, "&"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// digest is what another connection, on the plain unix VFS, reads back.
func digest(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT id, v FROM t ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	h := sha256.New()
	for rows.Next() {
		var id int64
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%d:%x;", id, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func blob(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j*7)
	}
	return b
}

// TestSameDataAsUnix runs the same transactions through this VFS and
// through plain unix, and after each commit a reader on its own unix
// connection must see the same rows in both; at the end both files pass
// integrity_check and read the same after a reopen. The cases cover the
// paths where the buffer must be written out early: writes longer than one
// unix write (a 300 KiB blob, a commit of several MiB), a transaction
// larger than the page cache (SQLite spills frames mid-transaction, reads
// them back and overwrites them out of order), and WAL restarts after a
// checkpoint (the log is rewritten from its start).
func TestSameDataAsUnix(t *testing.T) {
	type step func(tx *sql.Tx, round int) error
	insert := func(n, size int) step {
		return func(tx *sql.Tx, round int) error {
			for i := range n {
				if _, err := tx.Exec(`INSERT INTO t (id, v) VALUES ((SELECT coalesce(max(id), 0) + 1 FROM t), ?)`, blob(round+i, size)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	rewrite := func(tx *sql.Tx, round int) error {
		_, err := tx.Exec(`UPDATE t SET v = randomblob(length(v)) WHERE id % 3 = ?`, round%3)
		return err
	}
	cases := []struct {
		name   string
		extra  []string
		rounds int
		steps  []step
		after  string // run on the writer after each commit
	}{
		{name: "small rows", rounds: 20, steps: []step{insert(30, 100)}},
		{name: "blobs over one unix write", rounds: 6, steps: []step{insert(3, 300<<10)}},
		{name: "commits over the buffer", rounds: 3, steps: []step{insert(6, 1<<20)}},
		{name: "spilled transaction", extra: []string{"_pragma=cache_size(20)"}, rounds: 4,
			steps: []step{insert(400, 2000), rewrite, insert(50, 3000), rewrite}},
		{name: "restarted log", rounds: 8, steps: []step{insert(40, 500), rewrite},
			after: `PRAGMA wal_checkpoint(RESTART)`},
		{name: "truncated log", rounds: 8, steps: []step{insert(40, 500)},
			after: `PRAGMA wal_checkpoint(TRUNCATE)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var dbs, readers [2]*sql.DB
			for i, buffered := range []bool{false, true} {
				path := filepath.Join(dir, fmt.Sprintf("%d.db", i))
				dbs[i] = open(t, path, buffered, tc.extra...)
				if _, err := dbs[i].Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`); err != nil {
					t.Fatal(err)
				}
				readers[i] = open(t, path, false)
			}
			for round := range tc.rounds {
				for i, db := range dbs {
					tx, err := db.Begin()
					if err != nil {
						t.Fatal(err)
					}
					for _, s := range tc.steps {
						if err := s(tx, round); err != nil {
							t.Fatal(err)
						}
					}
					// rewrite's random bytes differ between the files: the
					// same rows get the same zeros before the commit.
					if _, err := tx.Exec(`UPDATE t SET v = zeroblob(length(v)) WHERE id % 3 = ?`, round%3); err != nil {
						t.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						t.Fatalf("file %d round %d: commit: %v", i, round, err)
					}
					if tc.after != "" {
						if _, err := db.Exec(tc.after); err != nil {
							t.Fatal(err)
						}
					}
				}
				if a, b := digest(t, readers[0]), digest(t, readers[1]); a != b {
					t.Fatalf("round %d: a reader sees different rows through the buffered file", round)
				}
			}
			var sums [2]string
			for i, db := range dbs {
				var ok string
				if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
					t.Errorf("file %d: integrity_check = %q, %v", i, ok, err)
				}
				db.Close()
				readers[i].Close()
				re := open(t, filepath.Join(dir, fmt.Sprintf("%d.db", i)), false)
				sums[i] = digest(t, re)
			}
			if sums[0] != sums[1] {
				t.Error("after reopening, the buffered file holds different rows")
			}
		})
	}
}

// TestOneWritePerRun shows the point of the VFS: a commit of a few hundred
// pages reaches the file in a handful of writes, where unix makes two per
// page.
func TestOneWritePerRun(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "w.db"), true)
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := tx.Exec(`INSERT INTO t (id, v) VALUES (?, ?)`, i, blob(i, 3000)); err != nil {
			t.Fatal(err)
		}
	}
	before := unixWrites.Load()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// About 200 pages, 824 KiB: seven writes of at most 31 pages.
	if n := unixWrites.Load() - before; n > 10 {
		t.Errorf("commit of about 200 pages made %d writes, want at most 10", n)
	}
}

// TestAcknowledgedCommitsSurviveSIGKILL kills a process that commits
// through the VFS, at a moment of the kernel's choosing, and every commit
// it reported done must be in the file afterwards, which must be sound.
func TestAcknowledgedCommitsSurviveSIGKILL(t *testing.T) {
	if path := os.Getenv("WALVFS_CHILD_DB"); path != "" {
		child(path)
		return
	}
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	for run := range 3 {
		path := filepath.Join(dir, "k.db")
		cmd := exec.Command(os.Args[0], "-test.run=^TestAcknowledgedCommitsSurviveSIGKILL$")
		cmd.Env = append(os.Environ(), "WALVFS_CHILD_DB="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		last := -1
		sc := bufio.NewScanner(out)
		deadline := time.Now().Add(10 * time.Second)
		for sc.Scan() && time.Now().Before(deadline) {
			n, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			last = n
			if n >= 300*(run+1) {
				break
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if last < 0 {
			t.Fatal("the child committed nothing")
		}
		db := open(t, path, false)
		var ok string
		if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("run %d: integrity_check = %q, %v", run, ok, err)
		}
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM t WHERE id <= ?`, last).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != last+1 {
			t.Fatalf("run %d: %d of the %d acknowledged commits survived", run, n, last+1)
		}
		db.Close()
	}
}

// child commits one row per transaction through the VFS and prints each
// id once its commit has returned, until it is killed.
func child(path string) {
	if err := Register(); err != nil {
		panic(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&vfs="+Name)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		panic(err)
	}
	var next int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(id), -1) + 1 FROM t`).Scan(&next); err != nil {
		panic(err)
	}
	for i := next; ; i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO t (id, v) VALUES (?, ?)`, i, blob(i, 5000)); err != nil {
			panic(err)
		}
		fmt.Println(i)
	}
}
