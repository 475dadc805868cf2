package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"switchyard/internal/auth"
	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/gateway/simulator"
	"switchyard/internal/page"
	"switchyard/internal/paydock"
	"switchyard/internal/store"
	"switchyard/internal/store/sqlite/pagecache"
	"switchyard/internal/store/sqlite/walvfs"
	"switchyard/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store {
		return store.New(openEngine(t, t.TempDir(), Options{GroupCommit: true}))
	})
}

func TestStoreWithoutGroupCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	storetest.Run(t, func(t *testing.T) *store.Store {
		return store.New(openEngine(t, t.TempDir(), Options{GroupCommit: false}))
	})
}

// openEngine opens an engine in dir and closes it when the test ends.
func openEngine(t *testing.T, dir string, opts Options) *Engine {
	t.Helper()
	e, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// commits records OnCommit calls.
type commits struct {
	mu    sync.Mutex
	sizes []int
}

func (c *commits) add(n int, _ time.Duration) {
	c.mu.Lock()
	c.sizes = append(c.sizes, n)
	c.mu.Unlock()
}

func (c *commits) take() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sizes
	c.sizes = nil
	return s
}

// newTable makes the scratch table t(id, v) used by the engine tests.
func newTable(t *testing.T, e *Engine) {
	t.Helper()
	err := e.Write(context.Background(), func(q store.Querier) error {
		_, err := q.ExecContext(context.Background(), `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`)
		return err
	})
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
}

func insert(id int, v string) func(store.Querier) error {
	return func(q store.Querier) error {
		_, err := q.ExecContext(context.Background(), `INSERT INTO t (id, v) VALUES ($1, $2)`, id, v)
		return err
	}
}

// rows returns t's contents through the read pool.
func rows(t *testing.T, e *Engine) map[int]string {
	t.Helper()
	rs, err := e.Reader().QueryContext(context.Background(), `SELECT id, v FROM t`)
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	defer rs.Close()
	out := map[int]string{}
	for rs.Next() {
		var id int
		var v string
		if err := rs.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		out[id] = v
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// block occupies the writer with a job that waits for release, so that
// writes issued meanwhile queue up and form the next batch.
func block(t *testing.T, e *Engine) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- e.Write(context.Background(), func(store.Querier) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("blocking job did not start")
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(unblock)
			if err := <-done; err != nil {
				t.Errorf("blocking job: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// waitQueued waits until n jobs wait for the writer.
func waitQueued(t *testing.T, e *Engine, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.jobs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs queued, want %d", len(e.jobs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// goWrite starts a Write and returns where its result arrives.
func goWrite(ctx context.Context, e *Engine, fn func(store.Querier) error) <-chan error {
	c := make(chan error, 1)
	go func() { c <- e.Write(ctx, fn) }()
	return c
}

// queue starts the writes one at a time, each queued before the next, so
// their order in the batch is the order given.
func queue(t *testing.T, e *Engine, fns ...func(store.Querier) error) []<-chan error {
	t.Helper()
	base := len(e.jobs)
	out := make([]<-chan error, len(fns))
	for i, fn := range fns {
		out[i] = goWrite(context.Background(), e, fn)
		waitQueued(t, e, base+i+1)
	}
	return out
}

func result(t *testing.T, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("write did not return")
		return nil
	}
}

func TestGroupCommitBatchesQueuedWrites(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		n        int
		want     []int
		wantRows int
	}{
		{"group commit", Options{GroupCommit: true}, 64, []int{1, 64}, 64},
		{"max batch", Options{GroupCommit: true, MaxBatch: 16}, 64, []int{1, 16, 16, 16, 16}, 64},
		{"no group commit", Options{GroupCommit: false}, 16, slices.Repeat([]int{1}, 17), 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec commits
			tc.opts.OnCommit = rec.add
			e := openEngine(t, t.TempDir(), tc.opts)
			newTable(t, e)
			rec.take()
			release := block(t, e)
			var res []<-chan error
			for i := range tc.n {
				res = append(res, goWrite(context.Background(), e, insert(i, "v")))
			}
			waitQueued(t, e, tc.n)
			release()
			for i, c := range res {
				if err := result(t, c); err != nil {
					t.Errorf("write %d: %v", i, err)
				}
			}
			if got := rec.take(); !slices.Equal(got, tc.want) {
				t.Errorf("batch sizes = %v, want %v", got, tc.want)
			}
			got := rows(t, e)
			if len(got) != tc.wantRows {
				t.Errorf("%d rows visible, want %d", len(got), tc.wantRows)
			}
			for i := range tc.n {
				if _, ok := got[i]; !ok {
					t.Errorf("row %d not visible after its write returned", i)
				}
			}
		})
	}
}

func TestLingerFor(t *testing.T) {
	for _, tc := range []struct {
		name         string
		last, before int
		lastDur      time.Duration
		target       int
		wait         time.Duration
	}{
		{"first batch", 0, 0, 0, 0, 0},
		{"one client", 1, 1, 2 * time.Millisecond, 0, 0},
		{"three clients", 3, 3, 2 * time.Millisecond, 0, 0},
		{"lopsided rhythm of 32", 31, 1, 3 * time.Millisecond, 16, time.Millisecond},
		{"even rhythm", 16, 16, 1500 * time.Microsecond, 16, 750 * time.Microsecond},
		{"after a burst", 64, 1, 400 * time.Microsecond, 32, 200 * time.Microsecond},
		{"eight clients", 4, 4, time.Millisecond, 4, 500 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, wait := lingerFor(tc.last, tc.before, tc.lastDur)
			if target != tc.target || wait != tc.wait {
				t.Errorf("lingerFor(%d, %d, %v) = %d, %v; want %d, %v", tc.last, tc.before, tc.lastDur, target, wait, tc.target, tc.wait)
			}
		})
	}
}

func TestLinger(t *testing.T) {
	mk := func(name string, raw bool) *job {
		return &job{ctx: context.WithValue(context.Background(), lingerName{}, name), raw: raw}
	}
	names := func(js []*job) []string {
		var out []string
		for _, j := range js {
			out = append(out, j.ctx.Value(lingerName{}).(string))
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		queued      []*job
		late        []*job // sent one by one while linger waits
		target      int
		wait        time.Duration
		batch, raw  []string
		leftInQueue int
	}{
		{"full from the queue, the rest left", []*job{mk("b", false), mk("c", false), mk("d", false), mk("e", false)}, nil, 3, time.Hour, []string{"a", "b", "c"}, nil, 2},
		{"late arrivals join", nil, []*job{mk("b", false), mk("c", false)}, 3, time.Hour, []string{"a", "b", "c"}, nil, 0},
		{"nobody comes", nil, nil, 8, 5 * time.Millisecond, []string{"a"}, nil, 0},
		{"a raw job ends it", []*job{mk("b", false), mk("cp", true), mk("c", false)}, nil, 8, time.Hour, []string{"a", "b"}, []string{"cp"}, 1},
		{"no wait takes nothing", []*job{mk("b", false)}, nil, 8, 0, []string{"a"}, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jobs := make(chan *job, 16)
			for _, j := range tc.queued {
				jobs <- j
			}
			go func() {
				for _, j := range tc.late {
					time.Sleep(2 * time.Millisecond)
					jobs <- j
				}
			}()
			batch, raw := linger(jobs, []*job{mk("a", false)}, tc.target, tc.wait)
			if diff := cmp.Diff(tc.batch, names(batch)); diff != "" {
				t.Errorf("batch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.raw, names(raw)); diff != "" {
				t.Errorf("raw (-want +got):\n%s", diff)
			}
			if len(jobs) != tc.leftInQueue {
				t.Errorf("%d jobs left queued, want %d", len(jobs), tc.leftInQueue)
			}
		})
	}
}

type lingerName struct{}

// TestLingerInTheWriter drives the writer's loop: a write queued while a
// batch of 16 commits waits for company; a lone client after a pause does
// not.
func TestLingerInTheWriter(t *testing.T) {
	var rec commits
	var e *Engine
	var lingers atomic.Int32
	late := make(chan (<-chan error), 1)
	opts := Options{GroupCommit: true, OnCommit: rec.add, onLinger: func() {
		// In the writer, before its wait starts: queue one more write.
		if lingers.Add(1) == 1 {
			late <- goWrite(context.Background(), e, insert(102, "late"))
			waitQueued(t, e, 1)
		}
	}}
	e = openEngine(t, t.TempDir(), opts)
	newTable(t, e)
	rec.take()

	release := block(t, e)
	var res []<-chan error
	queuedInBatch := make(chan (<-chan error), 1)
	for i := range 16 {
		fn := insert(i, "v")
		switch i {
		case 0:
			// A slow batch: the writer may then wait up to 1 ms.
			fn = func(q store.Querier) error { time.Sleep(2 * time.Millisecond); return insert(0, "v")(q) }
		case 15:
			// A write arrives while this batch runs, as in a closed loop.
			fn = func(q store.Querier) error {
				queuedInBatch <- goWrite(context.Background(), e, insert(101, "next"))
				waitQueued(t, e, 1)
				return insert(15, "v")(q)
			}
		}
		res = append(res, goWrite(context.Background(), e, fn))
	}
	waitQueued(t, e, 16)
	release()
	for i, c := range res {
		if err := result(t, c); err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if err := result(t, <-queuedInBatch); err != nil {
		t.Errorf("write queued during the batch: %v", err)
	}
	if lingers.Load() != 1 {
		t.Fatalf("the writer started %d commit delays after a batch of 16 with a write queued, want 1", lingers.Load())
	}
	if err := result(t, <-late); err != nil {
		t.Errorf("write that arrived during the delay: %v", err)
	}
	// One client after a pause longer than a commit: it never waits,
	// whatever the batches before it held.
	time.Sleep(200 * time.Millisecond)
	for i := range 3 {
		if err := e.Write(context.Background(), insert(200+i, "lone")); err != nil {
			t.Fatalf("lone write %d: %v", i, err)
		}
	}
	if got, want := rec.take(), []int{1, 16, 2, 1, 1, 1}; !slices.Equal(got, want) {
		t.Errorf("batch sizes = %v, want %v", got, want)
	}
	if n := lingers.Load(); n != 1 {
		t.Errorf("%d commit delays in all, want 1 (a lone client must not wait)", n)
	}
	if got := len(rows(t, e)); got != 16+2+3 {
		t.Errorf("%d rows, want %d", got, 16+2+3)
	}
}

func TestGroupCommitUnderConcurrentLoad(t *testing.T) {
	var rec commits
	e := openEngine(t, t.TempDir(), Options{GroupCommit: true, OnCommit: rec.add})
	newTable(t, e)
	rec.take()
	const n = 64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			err := e.Write(context.Background(), func(q store.Querier) error {
				time.Sleep(2 * time.Millisecond)
				return insert(i, "v")(q)
			})
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
			// Read your write: visible once Write returns.
			var v string
			if err := e.Reader().QueryRowContext(context.Background(), `SELECT v FROM t WHERE id = $1`, i).Scan(&v); err != nil {
				t.Errorf("read back %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	sizes := rec.take()
	total, biggest := 0, 0
	for _, s := range sizes {
		total += s
		biggest = max(biggest, s)
	}
	if total != n {
		t.Errorf("batch sizes %v sum to %d, want %d", sizes, total, n)
	}
	if biggest < 2 {
		t.Errorf("batch sizes %v: no batch held more than one write", sizes)
	}
	if got := len(rows(t, e)); got != n {
		t.Errorf("%d rows, want %d", got, n)
	}
	t.Logf("%d commits for %d writes: %v", len(sizes), n, sizes)
}

var errJob = errors.New("job failed")

func TestSavepointIsolatesFailingJobs(t *testing.T) {
	var rec commits
	e := openEngine(t, t.TempDir(), Options{GroupCommit: true, OnCommit: rec.add})
	newTable(t, e)
	rec.take()
	release := block(t, e)
	ctx := context.Background()
	res := queue(t, e,
		insert(1, "a"),
		// Several writes, one touching a neighbour's row, then an error.
		func(q store.Querier) error {
			if err := insert(2, "b")(q); err != nil {
				return err
			}
			if err := insert(3, "b")(q); err != nil {
				return err
			}
			if _, err := q.ExecContext(ctx, `UPDATE t SET v = 'clobbered' WHERE id = 1`); err != nil {
				return err
			}
			return errJob
		},
		// A write, then an SQL error (duplicate key).
		func(q store.Querier) error {
			if err := insert(4, "c")(q); err != nil {
				return err
			}
			return insert(1, "dup")(q)
		},
		// A write, then a panic.
		func(q store.Querier) error {
			if err := insert(5, "d")(q); err != nil {
				return err
			}
			panic("boom")
		},
		insert(6, "e"),
	)
	release()
	errsGot := make([]error, len(res))
	for i, c := range res {
		errsGot[i] = result(t, c)
	}
	if errsGot[0] != nil || errsGot[4] != nil {
		t.Errorf("neighbours failed: %v, %v", errsGot[0], errsGot[4])
	}
	if !errors.Is(errsGot[1], errJob) {
		t.Errorf("failing job: err = %v, want %v", errsGot[1], errJob)
	}
	if !e.IsUnique(errsGot[2]) {
		t.Errorf("duplicate key job: err = %v, want a unique violation", errsGot[2])
	}
	if errsGot[3] == nil || !strings.Contains(errsGot[3].Error(), "panic") {
		t.Errorf("panicking job: err = %v, want a panic error", errsGot[3])
	}
	if got := rec.take(); !slices.Equal(got, []int{1, 5}) {
		t.Errorf("batch sizes = %v, want [1 5] (all five in one batch)", got)
	}
	want := map[int]string{1: "a", 6: "e"}
	if got := rows(t, e); !mapsEqual(got, want) {
		t.Errorf("rows = %v, want %v", got, want)
	}
	// The writer still works.
	if err := e.Write(ctx, insert(7, "f")); err != nil {
		t.Fatalf("write after failures: %v", err)
	}
}

func mapsEqual(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestFailingSingleWriteRollsBack(t *testing.T) {
	for _, gc := range []bool{true, false} {
		t.Run(fmt.Sprintf("group commit %v", gc), func(t *testing.T) {
			e := openEngine(t, t.TempDir(), Options{GroupCommit: gc})
			newTable(t, e)
			ctx := context.Background()
			err := e.Write(ctx, func(q store.Querier) error {
				if err := insert(1, "a")(q); err != nil {
					return err
				}
				return errJob
			})
			if !errors.Is(err, errJob) {
				t.Fatalf("err = %v, want %v", err, errJob)
			}
			if got := rows(t, e); len(got) != 0 {
				t.Fatalf("failed write left rows %v", got)
			}
			if err := e.Write(ctx, insert(2, "b")); err != nil {
				t.Fatalf("next write: %v", err)
			}
			if got := rows(t, e); !mapsEqual(got, map[int]string{2: "b"}) {
				t.Fatalf("rows = %v", got)
			}
		})
	}
}

func TestPanickingJob(t *testing.T) {
	for _, gc := range []bool{true, false} {
		t.Run(fmt.Sprintf("group commit %v", gc), func(t *testing.T) {
			e := openEngine(t, t.TempDir(), Options{GroupCommit: gc})
			newTable(t, e)
			ctx := context.Background()
			for i := range 3 {
				err := e.Write(ctx, func(q store.Querier) error {
					if err := insert(100+i, "x")(q); err != nil {
						return err
					}
					var m map[string]int
					m["nil map"]++ //lint:ignore SA5000 a real runtime panic is the point
					return nil
				})
				if err == nil || !strings.Contains(err.Error(), "panic") {
					t.Fatalf("panicking write %d: err = %v, want a panic error", i, err)
				}
				if err := e.Write(ctx, insert(i, "ok")); err != nil {
					t.Fatalf("write after panic %d: %v", i, err)
				}
			}
			if got := rows(t, e); !mapsEqual(got, map[int]string{0: "ok", 1: "ok", 2: "ok"}) {
				t.Fatalf("rows = %v", got)
			}
		})
	}
}

func TestCancelledJobDoesNothing(t *testing.T) {
	for _, gc := range []bool{true, false} {
		t.Run(fmt.Sprintf("group commit %v", gc), func(t *testing.T) {
			e := openEngine(t, t.TempDir(), Options{GroupCommit: gc})
			newTable(t, e)
			var ran atomic.Int32
			fn := func(q store.Querier) error {
				ran.Add(1)
				return insert(99, "cancelled")(q)
			}

			// Cancelled while queued behind a busy writer.
			release := block(t, e)
			cctx, cancel := context.WithCancel(context.Background())
			cancelled := goWrite(cctx, e, fn)
			waitQueued(t, e, 1)
			neighbour := queue(t, e, insert(1, "a"))[0]
			cancel()
			release()
			if err := result(t, cancelled); !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled write: err = %v, want context.Canceled", err)
			}
			if err := result(t, neighbour); err != nil {
				t.Errorf("neighbour: %v", err)
			}

			// Cancelled before Write is called.
			if err := e.Write(cctx, fn); !errors.Is(err, context.Canceled) {
				t.Errorf("write with cancelled context: err = %v, want context.Canceled", err)
			}
			// Let anything wrongly queued run before looking.
			if err := e.Write(context.Background(), insert(2, "b")); err != nil {
				t.Fatal(err)
			}
			if n := ran.Load(); n != 0 {
				t.Errorf("cancelled job ran %d times", n)
			}
			if got := rows(t, e); !mapsEqual(got, map[int]string{1: "a", 2: "b"}) {
				t.Errorf("rows = %v", got)
			}
		})
	}
}

// slowInsert inserts (id, 'slow') after counting to n in SQL: a statement
// that runs long enough to be cancelled while it runs.
func slowInsert(ctx context.Context, id, n int) func(store.Querier) error {
	return func(q store.Querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO t (id, v)
			WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $1)
			SELECT $2, 'slow' FROM c WHERE x = $1`, n, id)
		return err
	}
}

// A request whose context ends while its statement runs must not fail its
// neighbours: SQLite answers an interrupt inside an explicit transaction by
// rolling back the whole transaction, which would take the batch with it.
func TestCancelledMidStatementFailsAlone(t *testing.T) {
	e := openEngine(t, t.TempDir(), Options{GroupCommit: true})
	newTable(t, e)
	release := block(t, e)
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan time.Time, 1)
	slow := slowInsert(cctx, 2, 100_000)
	res := queue(t, e,
		insert(1, "a"),
		func(q store.Querier) error {
			started <- time.Now()
			return slow(q)
		},
		insert(3, "c"),
	)
	release()
	t0 := <-started
	time.Sleep(10 * time.Millisecond)
	cancel()
	errA, errSlow, errC := result(t, res[0]), result(t, res[1]), result(t, res[2])
	t.Logf("slow job: %v after %v", errSlow, time.Since(t0))
	if errA != nil || errC != nil {
		t.Errorf("neighbours of a cancelled statement failed: %v, %v (slow job: %v)", errA, errC, errSlow)
	}
	want := map[int]string{1: "a", 3: "c"}
	if errSlow == nil {
		want[2] = "slow"
	}
	if got := rows(t, e); !mapsEqual(got, want) {
		t.Errorf("rows = %v, want %v (slow job: %v)", got, want, errSlow)
	}
	if err := e.Write(context.Background(), insert(4, "d")); err != nil {
		t.Fatalf("write after cancelled statement: %v", err)
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e, err := Open(ctx, dir, Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	s := store.New(e)
	a := auth.Account{ID: paydock.NewID(), Name: "Acme", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	sh := auth.Hash("sk_x")
	if err := s.CreateAccount(ctx, a, sh, auth.Hash("pk_x")); err != nil {
		t.Fatal(err)
	}
	g := &gateway.Gateway{ID: paydock.NewID(), AccountID: a.ID, Type: gateway.Simulator, Name: "Sim", Mode: gateway.ModeTest, CreatedAt: a.CreatedAt, UpdatedAt: a.CreatedAt}
	if err := s.CreateGateway(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed: writes are refused as unavailable.
	if err := s.CreateAccount(ctx, auth.Account{ID: paydock.NewID(), Name: "Late"}, "a", "b"); errs.KindOf(err) != errs.Unavailable {
		t.Errorf("write after Close: %v, want kind Unavailable", err)
	}

	s = store.New(openEngine(t, dir, Options{GroupCommit: true}))
	got, _, err := s.AccountByKeyHash(ctx, auth.SecretKey, sh)
	if err != nil || got.ID != a.ID || !got.CreatedAt.Equal(a.CreatedAt) {
		t.Fatalf("account after reopen: %+v, %v", got, err)
	}
	gg, err := s.GetGateway(ctx, a.ID, g.ID)
	if err != nil || !gg.Default || gg.Name != "Sim" {
		t.Fatalf("gateway after reopen: %+v, %v", gg, err)
	}
}

// Close may race with queued writes, but a Write that returns nil is
// committed and one that returns an error left nothing behind.
func TestCloseKeepsWritePromises(t *testing.T) {
	rounds := 5
	if testing.Short() {
		rounds = 3
	}
	for r := range rounds {
		dir := t.TempDir()
		e, err := Open(context.Background(), dir, Options{GroupCommit: true})
		if err != nil {
			t.Fatal(err)
		}
		newTable(t, e)
		const n = 64
		results := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i] = e.Write(context.Background(), insert(i, "v")) })
		}
		time.Sleep(time.Duration(r) * time.Millisecond)
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		got := rows(t, openEngine(t, dir, Options{}))
		for i, err := range results {
			_, ok := got[i]
			if err == nil && !ok {
				t.Errorf("round %d: write %d returned nil but is not stored", r, i)
			}
			if err != nil && ok {
				t.Errorf("round %d: write %d returned %v but is stored", r, i, err)
			}
		}
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	names, err := migrationNames()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e, err := Open(ctx, dir, Options{})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		var n int
		if err := e.Reader().QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(names) {
			t.Errorf("open %d: %d migrations recorded, want %d", i, n, len(names))
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Two engines opening one fresh directory at once.
	dir = t.TempDir()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			e, err := Open(ctx, dir, Options{})
			if err != nil {
				t.Errorf("concurrent open: %v", err)
				return
			}
			e.Close()
		})
	}
	wg.Wait()
	e := openEngine(t, dir, Options{})
	var n int
	if err := e.Reader().QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(names) {
		t.Errorf("after concurrent opens: %d migrations recorded, want %d", n, len(names))
	}
}

func migrationNames() ([]string, error) {
	ents, err := migrations.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sql") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

type pragmas struct {
	journal                      string
	synchronous, foreignKeys, qo int
	busyTimeout                  int
}

func readPragmas(ctx context.Context, q store.Querier) (p pragmas, err error) {
	for _, x := range []struct {
		name string
		dst  any
	}{
		{"journal_mode", &p.journal},
		{"synchronous", &p.synchronous},
		{"foreign_keys", &p.foreignKeys},
		{"query_only", &p.qo},
		{"busy_timeout", &p.busyTimeout},
	} {
		if err := q.QueryRowContext(ctx, "PRAGMA "+x.name).Scan(x.dst); err != nil {
			return p, fmt.Errorf("PRAGMA %s: %w", x.name, err)
		}
	}
	return p, nil
}

func TestPragmas(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t, t.TempDir(), Options{GroupCommit: true})
	want := pragmas{journal: "wal", synchronous: 2, foreignKeys: 1, busyTimeout: 10000}

	var w pragmas
	if err := e.Write(ctx, func(q store.Querier) (err error) {
		w, err = readPragmas(ctx, q)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if w != want {
		t.Errorf("writer pragmas = %+v, want %+v", w, want)
	}

	// Every reader connection: hold them all at once so each is distinct.
	want.qo = 1
	n := e.read.Stats().MaxOpenConnections
	var conns []interface {
		store.Querier
		Close() error
	}
	for range n {
		c, err := e.read.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		p, err := readPragmas(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if p != want {
			t.Errorf("reader %d pragmas = %+v, want %+v", i, p, want)
		}
		c.Close()
	}

	// Writes through the read pool fail as read-only.
	for _, stmt := range []string{
		`INSERT INTO accounts (id, name, secret_hash, public_hash, created_at) VALUES ('x', 'x', 'x', 'x', 0)`,
		`CREATE TABLE nope (x INTEGER)`,
		`DELETE FROM schema_migrations`,
	} {
		_, err := e.Reader().ExecContext(ctx, stmt)
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_READONLY {
			t.Errorf("%s through Reader(): err = %v, want SQLITE_READONLY", stmt, err)
		}
	}
	var n2 int
	if err := e.Reader().QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n2); err != nil || n2 == 0 {
		t.Errorf("schema_migrations after refused delete: %d rows, %v", n2, err)
	}
}

func TestForeignKeysEnforced(t *testing.T) {
	s := store.New(openEngine(t, t.TempDir(), Options{GroupCommit: true}))
	now := time.Now().UTC().Truncate(time.Millisecond)
	g := &gateway.Gateway{ID: paydock.NewID(), AccountID: paydock.NewID(), Type: gateway.Simulator, Name: "orphan", Mode: gateway.ModeTest, CreatedAt: now, UpdatedAt: now}
	err := s.CreateGateway(context.Background(), g)
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code() != sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		t.Fatalf("gateway of unknown account: err = %v, want a foreign key violation", err)
	}
}

// The Simulator's ledger has a file and writer of its own; entries the
// main database held before the move are still found.
func TestLedgerFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	eng := openEngine(t, dir, Options{GroupCommit: true})
	st := store.New(eng)
	if st.LedgerEngine() == store.Engine(eng) {
		t.Fatal("the ledger shares the main engine")
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	count := func(e store.Engine) int {
		t.Helper()
		var n int
		if err := e.Reader().QueryRowContext(ctx, "SELECT count(*) FROM simulator_ledger").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	fresh := simulator.Entry{TxnID: "txn-new", AccountID: "acc", Kind: "sale", Amount: 1234, Currency: "AUD", ExternalID: "sim_ch_1", Succeeded: true, CreatedAt: now}
	if _, err := st.RecordLedger(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if main, own := count(eng), count(st.LedgerEngine()); main != 0 || own != 1 {
		t.Fatalf("entries: main file %d, ledger file %d; want 0 and 1", main, own)
	}
	if _, err := os.Stat(LedgerPath(dir)); err != nil {
		t.Fatalf("ledger file: %v", err)
	}

	// An entry written before the ledger moved.
	if err := eng.Write(ctx, func(q store.Querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO simulator_ledger (txn_id, account_id, kind, amount, currency, external_id, succeeded, decline_code, created_at)
			VALUES ('txn-old', 'acc', 'authorization', 500, 'AUD', 'sim_ch_0', 1, '', $1)`, now.UnixMilli())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		account, txn string
		found        bool
		amount       int64
	}{
		{"acc", "txn-new", true, 1234},
		{"acc", "txn-old", true, 500},
		{"other", "txn-old", false, 0},
		{"acc", "txn-none", false, 0},
	} {
		e, ok, err := st.LookupLedger(ctx, tc.account, tc.txn)
		if err != nil || ok != tc.found || e.Amount != tc.amount {
			t.Errorf("LookupLedger(%s, %s) = %+v, %v, %v; want found %v amount %d", tc.account, tc.txn, e, ok, err, tc.found, tc.amount)
		}
	}
}

// The main file's writer gathers its WAL writes through walvfs; the
// ledger, which commits without a sync (synchronous=NORMAL), must not: a
// frame published without a sync could still be in walvfs's buffer when
// a reader on another connection looks for it.
func TestWALWritesGathered(t *testing.T) {
	ctx := context.Background()
	eng := openEngine(t, t.TempDir(), Options{GroupCommit: true})
	st := store.New(eng)
	before := walvfs.Writes()
	if err := eng.Write(ctx, func(q store.Querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO simulator_ledger (txn_id, account_id, kind, amount, currency, external_id, succeeded, decline_code, created_at)
			VALUES ('txn-main', 'acc', 'sale', 500, 'AUD', 'sim_ch_0', 1, '', 0)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if walvfs.Writes() == before {
		t.Error("a commit of the main file did not go through walvfs")
	}
	if n := walvfs.Pending(); n != 0 {
		t.Errorf("after a commit of the main file walvfs still holds %d bytes", n)
	}
	before = walvfs.Writes()
	entry := simulator.Entry{TxnID: "txn-ledger", AccountID: "acc", Kind: "sale", Amount: 1, Currency: "AUD", ExternalID: "sim_ch_1", Succeeded: true, CreatedAt: time.Now()}
	if _, err := st.RecordLedger(ctx, entry); err != nil {
		t.Fatal(err)
	}
	if n := walvfs.Writes() - before; n != 0 {
		t.Errorf("a ledger commit made %d writes through walvfs, want 0", n)
	}
	if n := walvfs.Pending(); n != 0 {
		t.Errorf("after a ledger commit walvfs holds %d bytes back", n)
	}
}

// The engine's connections use the page-cache layer (internal/store/
// sqlite/pagecache): Open installs it before SQLite's first connection,
// and group commits of writes that split B-tree pages then end without
// pcache1's walk of the whole cache.
func TestPageCacheLayerInUse(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t, t.TempDir(), Options{GroupCommit: true})
	if err := pagecache.Install(); err != nil {
		t.Fatalf("the page-cache layer is not installed: %v", err)
	}
	newTable(t, e)
	dropped, _ := pagecache.Truncations()
	for i := range 200 {
		err := e.Write(ctx, func(q store.Querier) error {
			// Random keys in an index: pages split all over it.
			_, err := q.ExecContext(ctx, `INSERT INTO t (id, v) VALUES ($1, hex(randomblob(200)))`, i)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := e.Write(ctx, func(q store.Querier) error {
				_, err := q.ExecContext(ctx, `CREATE INDEX t_v ON t (v)`)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if after, _ := pagecache.Truncations(); after == dropped {
		t.Error("no commit's truncation was dropped: the engine does not use the layer")
	}
	if got := len(rows(t, e)); got != 200 {
		t.Errorf("%d rows, want 200", got)
	}
}

// The health check fails once the database file is gone from its path or
// is another file, and while the file reads as no database; an open
// connection pool alone would answer for ever.
func TestPingNoticesTheFile(t *testing.T) {
	ctx := context.Background()
	breakages := []struct {
		name string
		do   func(t *testing.T, path string)
	}{
		{"removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by a copy", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"overwritten", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 4096), 0); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, b := range breakages {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			e := openEngine(t, dir, Options{GroupCommit: true})
			// The WAL is copied into the file, so its first page is read
			// from there.
			if _, err := e.cp.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
				t.Fatal(err)
			}
			if err := e.Ping(ctx); err != nil {
				t.Fatalf("Ping before: %v", err)
			}
			b.do(t, Path(dir))
			if err := e.Ping(ctx); err == nil {
				t.Error("Ping after the file was " + b.name + ": nil")
			}
		})
	}
}

// A lookup by key runs to its end even when its request has gone (no
// watcher goroutine per query); a list still stops.
func TestKeyedLookupIgnoresCancellation(t *testing.T) {
	st := store.New(openEngine(t, t.TempDir(), Options{GroupCommit: true}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := st.GetGateway(ctx, "acc", "0123456789abcdef01234567")
	if errs.KindOf(err) != errs.NotFound {
		t.Fatalf("GetGateway on a cancelled context = %v, want the lookup's own answer (not found)", err)
	}
	if _, _, err := st.ListGateways(ctx, "acc", gateway.Filter{}, page.Params{Limit: 10}); !errors.Is(err, context.Canceled) {
		t.Fatalf("ListGateways on a cancelled context = %v, want context.Canceled", err)
	}
}

// The database files are the owner's only, whatever the data dir's mode.
func TestFilesAreOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A file left readable by an older version is tightened too.
	if err := os.WriteFile(Path(dir), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Open(context.Background(), dir, Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Write(context.Background(), func(q store.Querier) error {
		_, err := q.ExecContext(context.Background(), "CREATE TABLE perm (x INTEGER)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, name := range []string{"switchyard.db", "switchyard.db-wal", "switchyard.db-shm", "simulator.db", "simulator.db-wal"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s has mode %v", name, m)
		}
	}
}
