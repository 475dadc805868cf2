package walvfs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"modernc.org/libc"
	_ "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// TestMain puts a fault-injecting "unix" in front of the real one before
// this VFS wraps it, so that a test can make one WAL write fail as a full
// disk does (faultAt). Until then it passes everything through.
func TestMain(m *testing.M) {
	registerFault()
	os.Exit(m.Run())
}

var (
	faultVFS     sqlite3.Tsqlite3_vfs
	faultMethods sqlite3.Tsqlite3_io_methods
	realVFS      uintptr
	realMethods  uintptr
	faultAt      atomic.Int64 // > 0: the faultAt-th WAL write from now fails with SQLITE_FULL
)

func registerFault() {
	tls := libc.NewTLS()
	defer tls.Close()
	name, err := libc.CString("unix")
	if err != nil {
		panic(err)
	}
	realVFS = sqlite3.Xsqlite3_vfs_find(tls, name)
	faultVFS = *(*sqlite3.Tsqlite3_vfs)(ptr(realVFS))
	faultVFS.FpNext = 0
	*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&faultVFS.FxOpen)) = faultOpen
	if rc := sqlite3.Xsqlite3_vfs_register(tls, uintptr(unsafe.Pointer(&faultVFS)), 1); rc != sqlite3.SQLITE_OK {
		panic(rc)
	}
}

func faultOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	fp := (*sqlite3.Tsqlite3_vfs)(ptr(realVFS)).FxOpen
	rc := (*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&fp)))(tls, realVFS, zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK || flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	file := (*sqlite3.Tsqlite3_file)(ptr(pFile))
	if realMethods == 0 {
		realMethods = file.FpMethods
		faultMethods = *(*sqlite3.Tsqlite3_io_methods)(ptr(realMethods))
		*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&faultMethods.FxWrite)) = faultWrite
	}
	file.FpMethods = uintptr(unsafe.Pointer(&faultMethods))
	return rc
}

func faultWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	if faultAt.Load() > 0 && faultAt.Add(-1) == 0 {
		return sqlite3.SQLITE_FULL // what unix answers on ENOSPC
	}
	fp := (*sqlite3.Tsqlite3_io_methods)(ptr(realMethods)).FxWrite
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&fp)))(tls, pFile, zBuf, iAmt, iOfst)
}

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
		fmt.Fprintf(h, "%d:%d;", id, len(v))
		h.Write(v)
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
		{name: "spilled transaction", extra: []string{"_pragma=cache_size(20)"}, rounds: 2,
			steps: []step{insert(250, 2000), rewrite, insert(50, 3000), rewrite}},
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
					mustExec(t, tx, `UPDATE t SET v = zeroblob(length(v)) WHERE id % 3 = ?`, round%3)
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
	mustExec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		mustExec(t, tx, `INSERT INTO t (id, v) VALUES (?, ?)`, i, blob(i, 3000))
	}
	before, grew := unixWrites.Load(), growWrites.Load()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// About 200 pages, 824 KiB: seven writes of at most 31 pages (and
	// those that grow the file, which are not the commit's).
	if n := unixWrites.Load() - before - (growWrites.Load() - grew); n > 10 {
		t.Errorf("commit of about 200 pages made %d writes, want at most 10", n)
	}
}

// TestWALGrowsInChunks: the WAL file grows by whole chunks of zeros, so
// that most commits write into blocks the file already has; another
// connection on plain unix reads every commit; a truncating checkpoint
// empties the file and it grows again from there.
func TestWALGrowsInChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	db := open(t, path, true, "_pragma=wal_autocheckpoint(0)") // the log only grows
	plain := open(t, path, false)
	mustExec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`)
	walSize := func() int64 {
		t.Helper()
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if got := walSize(); got != growChunk {
		t.Fatalf("WAL is %d bytes after the first commit, want one chunk (%d)", got, growChunk)
	}
	// 1,200 rows of 6 KB: about 2,400 frames, 10 MB, over three chunks.
	for i := range 1200 {
		mustExec(t, db, `INSERT INTO t (id, v) VALUES (?, ?)`, i, blob(i, 6000))
		if got := walSize(); got%growChunk != 0 {
			t.Fatalf("after row %d the WAL is %d bytes, not a whole number of chunks", i, got)
		}
	}
	if got := walSize(); got < 3*growChunk {
		t.Errorf("WAL is %d bytes after about 10 MB of frames, want at least 3 chunks", got)
	}
	h := sha256.New()
	for i := range 1200 {
		fmt.Fprintf(h, "%d:%d;", i, 6000)
		h.Write(blob(i, 6000))
	}
	if got, want := digest(t, plain), fmt.Sprintf("%x", h.Sum(nil)); got != want {
		t.Errorf("plain unix reads digest %s, want %s", got, want)
	}
	var ic string
	if err := plain.QueryRow(`PRAGMA integrity_check`).Scan(&ic); err != nil || ic != "ok" {
		t.Errorf("integrity_check = %q, %v", ic, err)
	}
	mustExec(t, db, `PRAGMA wal_checkpoint(TRUNCATE)`)
	if got := walSize(); got != 0 {
		t.Fatalf("WAL is %d bytes after a truncating checkpoint, want 0", got)
	}
	mustExec(t, db, `INSERT INTO t (id, v) VALUES (?, ?)`, 5000, blob(5000, 100))
	if got := walSize(); got != growChunk {
		t.Errorf("WAL is %d bytes after the next commit, want one chunk (%d)", got, growChunk)
	}
	var n int
	if err := plain.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 1201 {
		t.Errorf("plain unix counts %d rows (%v), want 1201", n, err)
	}
}

// TestFailedGrowthKeepsTheCommit: when the zeros that grow the file cannot
// be written (a full disk), the commit whose frames are already written
// still commits. Failing it would leave complete, valid frames in the file
// that recovery after a crash would take for a commit the client was told
// had failed. The file grows again at a later commit.
func TestFailedGrowthKeepsTheCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	db := open(t, path, true, "_pragma=wal_autocheckpoint(0)")
	plain := open(t, path, false)
	// The first commit writes the WAL's header (synced on its own), then
	// its frames, then zeros after them: the first of those fails.
	grew := growWrites.Load()
	faultAt.Store(3)
	mustExec(t, db, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`)
	if faultAt.Swap(0) != 0 || growWrites.Load()-grew != 1 {
		t.Fatalf("the fault did not hit the first write of zeros (%d zero writes): the test proves nothing", growWrites.Load()-grew)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= growChunk {
		t.Fatalf("WAL is %d bytes: the zeros were written after all", fi.Size())
	}
	for i := range 3 {
		mustExec(t, db, `INSERT INTO t (id, v) VALUES (?, ?)`, i, val(i))
	}
	if got := check(plain, 3); got != "" {
		t.Fatalf("plain unix: %s", got)
	}
	if fi, err = os.Stat(path + "-wal"); err != nil || fi.Size() != growChunk {
		t.Errorf("WAL is %d bytes (%v) after later commits, want one chunk (%d)", fi.Size(), err, growChunk)
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

func val(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 300) }

// check reads every row back on db and runs integrity_check; it returns
// what is wrong, or "".
func check(db *sql.DB, n int) string {
	var ic string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ic); err != nil || ic != "ok" {
		return fmt.Sprintf("integrity_check: %.200q, %v", ic, err)
	}
	rows, err := db.Query(`SELECT id, v FROM t ORDER BY id`)
	if err != nil {
		return "select: " + err.Error()
	}
	defer rows.Close()
	got := 0
	for rows.Next() {
		var id int
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			return "scan: " + err.Error()
		}
		if !bytes.Equal(v, val(id)) {
			return fmt.Sprintf("row %d holds other bytes", id)
		}
		got++
	}
	if err := rows.Err(); err != nil {
		return "rows: " + err.Error()
	}
	if got != n {
		return fmt.Sprintf("%d rows, want %d", got, n)
	}
	return ""
}

// Without powersafe overwrite (psow=0) SQLite pads a commit to a sector
// boundary and writes the end of the last frame after the sync, then
// publishes it: such a WAL is left to unix, and readers and checkpoints see
// every commit whole.
func TestNoPowersafeOverwriteLeftToUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	w := open(t, path, true, "psow=0")
	r := open(t, path, false, "psow=0")
	cp := open(t, path, false, "psow=0")
	mustExec(t, w, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`)
	before := Writes()
	for i := 1; i <= 40; i++ {
		mustExec(t, w, `INSERT INTO t VALUES (?, ?)`, i, val(i))
		if msg := check(r, i); msg != "" {
			t.Fatalf("after commit %d a reader finds %s", i, msg)
		}
		if i%10 == 0 {
			mustExec(t, cp, `PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
	if n := Writes() - before; n != 0 {
		t.Errorf("a psow=0 WAL made %d writes through the buffer, want 0", n)
	}
}

// A transaction that spills frames and rolls back leaves them unsynced;
// they are dropped with the write lock, and another writer's frames at the
// same offsets are not overwritten by them later.
func TestRolledBackFramesDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	w1 := open(t, path, true, "_pragma=cache_size(10)")
	w2 := open(t, path, false)
	mustExec(t, w1, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`)
	mustExec(t, w1, `PRAGMA wal_checkpoint(TRUNCATE)`)
	ctx := context.Background()
	c1, err := w1.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	mustExec(t, c1, `BEGIN IMMEDIATE`)
	for i := 1000; i < 1200; i++ {
		mustExec(t, c1, `INSERT INTO t VALUES (?, randomblob(3000))`, i)
	}
	if Pending() == 0 {
		t.Fatal("the transaction spilled nothing into the buffer: the test proves nothing")
	}
	mustExec(t, c1, `ROLLBACK`)
	if n := Pending(); n != 0 {
		t.Errorf("after ROLLBACK the buffer holds %d bytes", n)
	}
	for i := 1; i <= 30; i++ {
		mustExec(t, w2, `INSERT INTO t VALUES (?, ?)`, i, val(i))
	}
	var n int
	if err := c1.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 30 {
		t.Errorf("the first writer counts %d rows, %v; want 30", n, err)
	}
	if msg := check(open(t, path, false), 30); msg != "" {
		t.Errorf("a new connection finds %s", msg)
	}
}

// A write-out that fails in a read (the disk full for one write) fails the
// whole transaction, as unix's failed write does, and not one statement:
// the group-commit writer's savepoint pattern must not commit a batch whose
// spilled frames never reached the file.
func TestFailedWriteOutFailsTransaction(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		t.Run(fmt.Sprintf("buffered=%v", buffered), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.db")
			w := open(t, path, buffered, "_pragma=cache_size(10)")
			mustExec(t, w, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)`)
			ctx := context.Background()
			c, err := w.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			exec := func(q string, args ...any) error { _, err := c.ExecContext(ctx, q, args...); return err }
			for _, q := range []string{`BEGIN IMMEDIATE`, `SAVEPOINT job`} {
				if err := exec(q); err != nil {
					t.Fatal(err)
				}
			}
			for i := 1; i <= 400; i++ {
				if err := exec(`INSERT INTO t VALUES (?, ?)`, i, val(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := exec(`RELEASE job`); err != nil {
				t.Fatal(err)
			}
			faultAt.Store(1)
			if err := exec(`SAVEPOINT job`); err != nil {
				t.Fatal(err)
			}
			jobErr := exec(`UPDATE t SET v = v WHERE id > 0`)
			fired := faultAt.Swap(0) == 0
			if !fired {
				t.Fatal("no WAL write happened in the second job: the test proves nothing")
			}
			if jobErr != nil {
				exec(`ROLLBACK TO job`)
			}
			exec(`RELEASE job`)
			commitErr := exec(`COMMIT`)
			if commitErr != nil {
				exec(`ROLLBACK`)
			}
			want := 400
			if commitErr != nil {
				want = 0
			}
			if msg := check(open(t, path, false), want); msg != "" {
				t.Errorf("COMMIT answered %v, and a new connection finds %s", commitErr, msg)
			}
		})
	}
}

// The pragmas that would break the VFS's rules fail on a connection that
// uses it; reading them, and setting what the rules allow, works.
func TestUnsafePragmasRefused(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "p.db"), true)
	for _, tc := range []struct {
		stmt string
		ok   bool
	}{
		{"PRAGMA synchronous", true},
		{"PRAGMA synchronous = FULL", true},
		{"PRAGMA synchronous = 3", true},
		{"PRAGMA synchronous = NORMAL", false},
		{"PRAGMA synchronous = off", false},
		{"PRAGMA synchronous = 1", false},
		{"PRAGMA main.synchronous = NORMAL", false},
		{"PRAGMA locking_mode", true},
		{"PRAGMA locking_mode = NORMAL", true},
		{"PRAGMA locking_mode = EXCLUSIVE", false},
	} {
		_, err := db.Exec(tc.stmt)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.stmt, err, tc.ok)
		}
	}
	var sync int
	if err := db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil || sync < 2 {
		t.Errorf("synchronous = %d, %v; want FULL or EXTRA", sync, err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA locking_mode").Scan(&mode); err != nil || mode != "normal" {
		t.Errorf("locking_mode = %q, %v; want normal", mode, err)
	}
}

func mustExec(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// A commit whose write-out fails in its third piece, after two pieces
// reached the file, fails; the file stays as it was, and later commits
// work.
func TestFailedWriteOutMidCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	w := open(t, path, true)
	r := open(t, path, false)
	mustExec(t, w, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`)
	for i := range 10 {
		mustExec(t, w, `INSERT INTO t VALUES (?, ?)`, i, val(i))
	}
	ctx := context.Background()
	c, err := w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, c, `BEGIN IMMEDIATE`)
	for i := 100; i < 300; i++ {
		mustExec(t, c, `INSERT INTO t VALUES (?, randomblob(3000))`, i)
	}
	faultAt.Store(3)
	_, commitErr := c.ExecContext(ctx, `COMMIT`)
	if left := faultAt.Swap(0); left != 0 {
		t.Fatalf("the commit made fewer than 3 writes (%d to go): the test proves nothing", left)
	}
	if commitErr == nil {
		t.Fatal("the commit succeeded although its write-out failed")
	}
	c.ExecContext(ctx, `ROLLBACK`)
	c.Close()
	if msg := check(r, 10); msg != "" {
		t.Errorf("after the failed commit: %s", msg)
	}
	for i := 10; i < 15; i++ {
		mustExec(t, w, `INSERT INTO t VALUES (?, ?)`, i, val(i))
	}
	if msg := check(r, 15); msg != "" {
		t.Errorf("after later commits: %s", msg)
	}
	w.Close()
	r.Close()
	if msg := check(open(t, path, false), 15); msg != "" {
		t.Errorf("after reopening: %s", msg)
	}
}

// Two buffered connections on one file take turns: one spills a
// transaction and rolls it back while the other commits.
func TestTwoBufferedConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "two.db")
	a := open(t, path, true, "_pragma=cache_size(10)")
	b := open(t, path, true, "_pragma=cache_size(10)")
	r := open(t, path, false)
	mustExec(t, a, `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`)
	ctx := context.Background()
	want := 0
	for round := range 4 {
		x, y := a, b
		if round%2 == 1 {
			x, y = b, a
		}
		cx, err := x.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, cx, `BEGIN IMMEDIATE`)
		for i := range 150 {
			mustExec(t, cx, `INSERT INTO t VALUES (?, randomblob(3000))`, 100000+round*1000+i)
		}
		if Pending() == 0 {
			t.Fatal("nothing spilled: the test proves nothing")
		}
		mustExec(t, cx, `ROLLBACK`)
		cx.Close()
		for i := range 20 {
			mustExec(t, y, `INSERT INTO t VALUES (?, ?)`, round*100+i, val(round*100+i))
			want++
		}
		if round%2 == 1 {
			mustExec(t, x, `PRAGMA wal_checkpoint(TRUNCATE)`)
		}
		if msg := check(r, want); msg != "" {
			t.Fatalf("round %d: %s", round, msg)
		}
	}
}

// Closing a connection leaves nothing of it in the VFS's maps.
func TestNothingLeftAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	sizes := func() [3]int {
		filesMu.Lock()
		defer filesMu.Unlock()
		return [3]int{len(files), len(dbs), len(wals)}
	}
	start := sizes()
	for i := range 3 {
		w := open(t, path, true)
		mustExec(t, w, `CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)`)
		mustExec(t, w, `INSERT INTO t VALUES (?, ?)`, i, val(i))
		if sizes() == start {
			t.Fatal("an open connection is not in the maps: the test proves nothing")
		}
		w.Close()
		if got := sizes(); got != start {
			t.Fatalf("after close %d: files, dbs, wals = %v, want %v", i, got, start)
		}
	}
}
