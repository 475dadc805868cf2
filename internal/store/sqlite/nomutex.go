package sqlite

import (
	"reflect"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The driver opens every connection with SQLITE_OPEN_FULLMUTEX, so each
// call into SQLite takes and releases the connection's own mutex, and
// reading a row takes it once per column: a 43-column customer read spends
// about a tenth of the server's CPU in it. The mutex guards nothing here.
// database/sql hands a connection to one goroutine at a time and
// serialises every driver call on it (driverConn's lock), the driver's
// docs say its own per-connection state is unsafe to share anyway, and
// the one call the driver makes from elsewhere, sqlite3_interrupt on a
// cancelled context, is an atomic store that takes no mutex. That is
// SQLite's multi-thread mode (SQLITE_OPEN_NOMUTEX, which mattn/go-sqlite3
// offers as _mutex=no): shared structures (the page-cache allocator, the
// file locks, the WAL index) keep their own mutexes.
//
// The driver has no option for it, so a connection hook drops the mutex
// after the open, on every connection of the driver registered as "sqlite"
// in this process: the handle is read by the field's name, checked to be an
// open connection, and its mutex freed. Nothing here shares a connection
// between goroutines; a future Conn.Raw or backup of a live connection
// must not either. If the driver's layout ever changes, the hook leaves
// the connection as it is (Unmutexed tells, and the server warns).
func init() {
	sqlite.RegisterConnectionHook(dropMutex)
}

var unmutexed, kept atomic.Int64

// Unmutexed reports how many connections run without their own mutex, and
// how many kept it because the handle could not be checked.
func Unmutexed() (dropped, keptMutex int64) { return unmutexed.Load(), kept.Load() }

func dropMutex(c sqlite.ExecQuerierContext, _ string) error {
	db, ok := handle(c)
	if !ok {
		kept.Add(1)
		return nil
	}
	p := (*sqlite3.Tsqlite3)(ptr(db))
	m := p.Fmutex
	p.Fmutex = 0
	tls := libc.NewTLS()
	sqlite3.Xsqlite3_mutex_free(tls, m)
	tls.Close()
	unmutexed.Add(1)
	return nil
}

// handle returns the sqlite3* of a driver connection: its db field, when it
// is there and points at an open connection.
func handle(c sqlite.ExecQuerierContext) (uintptr, bool) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return 0, false
	}
	f := v.Elem().FieldByName("db")
	if !f.IsValid() || f.Kind() != reflect.Uintptr || f.Uint() == 0 {
		return 0, false
	}
	db := uintptr(f.Uint())
	if (*sqlite3.Tsqlite3)(ptr(db)).FeOpenState != sqlite3.SQLITE_STATE_OPEN {
		return 0, false
	}
	return db, true
}

// ptr turns a C address from the driver into a pointer (vet-clean: SQLite's
// memory is not Go's, so no rule of unsafe.Pointer conversion applies).
func ptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }
