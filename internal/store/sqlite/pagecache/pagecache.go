// Package pagecache puts a thin layer over SQLite's default page cache
// (pcache1) that drops the truncations that would remove nothing.
//
// At the end of every write transaction SQLite truncates the page cache
// above the database's size. pcache1 then walks its whole hash table
// (8,192 buckets and every page in them with the engine's 32 MiB cache)
// whenever the highest key it has held since its last truncation lies
// further above that size than the table is wide. A B-tree page split
// often makes it so: when balance_nonroot puts the pages' numbers in order
// it swaps two of them through the pending-byte page's number (262,145
// with 4 KiB pages), which is never a page of the database, as a temporary
// key. In group commits of customer creates nearly every commit had such a
// swap, and the walk took about 240 µs of each, some 9 % of the writer's
// time, to remove nothing.
//
// The layer keeps, for each cache, a bound on the keys it may hold: the
// highest key a page was fetched or re-keyed to since the last truncation
// passed on, and whether a page may sit on the temporary key (from when
// one is fetched or re-keyed there until it is re-keyed away: keys are
// unique). A truncation no page can reach under that bound returns at
// once; every other one goes to pcache1, as does every other call. The
// bound only ever errs high: a page discarded or evicted still counts,
// and if the temporary key is not the one the layer computes (a pending
// byte moved by a test build) it counts as an ordinary key, so the walk
// happens as it would without the layer.
package pagecache

import (
	"errors"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

// pendingByte is SQLite's PENDING_BYTE: the page holding it is never used
// for data, and balance_nonroot borrows its number.
const pendingByte = 0x40000000

var (
	installOnce sync.Once
	installErr  error

	// The default methods and the layer over them. SQLite copies the
	// layer's table when it is configured; base is read on every call.
	base  sqlite3.Tsqlite3_pcache_methods2
	layer sqlite3.Tsqlite3_pcache_methods2

	skipped, passed atomic.Int64
)

// cache is one page cache of the layer. It lives in C memory (SQLite
// keeps its address as the cache's handle) and holds no Go pointers.
// SQLite serialises the calls for one cache.
type cache struct {
	under uintptr // pcache1's cache
	bound
}

// bound is what a cache may hold: no page has a key above maxKey, except
// one on tempKey while temp is set.
type bound struct {
	maxKey  uint32
	tempKey uint32
	temp    bool
}

// add records that a page may now sit on key.
func (b *bound) add(key uint32) {
	if key == b.tempKey {
		b.temp = true
	} else if key > b.maxKey {
		b.maxKey = key
	}
}

// rekeyed records that the page on oldKey moved to newKey.
func (b *bound) rekeyed(oldKey, newKey uint32) {
	if oldKey == b.tempKey && newKey != oldKey {
		b.temp = false
	}
	b.add(newKey)
}

// reaches reports whether a page may have a key at or above limit.
func (b *bound) reaches(limit uint32) bool {
	return b.maxKey >= limit || (b.temp && b.tempKey >= limit)
}

// truncated records a truncation at limit: no key at or above it is left.
func (b *bound) truncated(limit uint32) {
	if limit == 0 {
		*b = bound{tempKey: b.tempKey}
		return
	}
	b.maxKey = min(b.maxKey, limit-1)
	if b.tempKey >= limit {
		b.temp = false
	}
}

// Install puts the layer in place for the whole process. SQLite takes a
// page cache only before it is initialized, which the first connection
// opened in the process does: after that Install fails and pcache1 stays
// as it is (slower commits, nothing else). Later calls return the first
// call's result.
func Install() error {
	installOnce.Do(func() { installErr = install() })
	return installErr
}

func install() error {
	tls := libc.NewTLS()
	defer tls.Close()
	va := libc.Xmalloc(tls, types.Size_t(unsafe.Sizeof(uintptr(0))))
	if va == 0 {
		return errors.New("pagecache: out of memory")
	}
	defer libc.Xfree(tls, va)
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_GETPCACHE2, libc.VaList(va, uintptr(unsafe.Pointer(&base)))); rc != sqlite3.SQLITE_OK {
		return errors.New("pagecache: SQLite was initialized before the layer could be installed")
	}
	if base.FxCreate == 0 || base.FxFetch == 0 || base.FxRekey == 0 || base.FxTruncate == 0 || base.FxDestroy == 0 {
		return errors.New("pagecache: SQLite has no default page cache")
	}
	layer = base
	*(*func(*libc.TLS, int32, int32, int32) uintptr)(unsafe.Pointer(&layer.FxCreate)) = xCreate
	*(*func(*libc.TLS, uintptr, int32))(unsafe.Pointer(&layer.FxCachesize)) = xCachesize
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&layer.FxPagecount)) = xPagecount
	*(*func(*libc.TLS, uintptr, uint32, int32) uintptr)(unsafe.Pointer(&layer.FxFetch)) = xFetch
	*(*func(*libc.TLS, uintptr, uintptr, int32))(unsafe.Pointer(&layer.FxUnpin)) = xUnpin
	*(*func(*libc.TLS, uintptr, uintptr, uint32, uint32))(unsafe.Pointer(&layer.FxRekey)) = xRekey
	*(*func(*libc.TLS, uintptr, uint32))(unsafe.Pointer(&layer.FxTruncate)) = xTruncate
	*(*func(*libc.TLS, uintptr))(unsafe.Pointer(&layer.FxDestroy)) = xDestroy
	*(*func(*libc.TLS, uintptr))(unsafe.Pointer(&layer.FxShrink)) = xShrink
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_PCACHE2, libc.VaList(va, uintptr(unsafe.Pointer(&layer)))); rc != sqlite3.SQLITE_OK {
		return errors.New("pagecache: SQLite was initialized before the layer could be installed")
	}
	return nil
}

// Truncations reports how many truncations the layer has dropped and how
// many it has passed on to pcache1 since the process started.
func Truncations() (dropped, passedOn int64) { return skipped.Load(), passed.Load() }

// ptr turns an address SQLite handed over into a pointer (the memory is
// C memory, outside the Go heap).
func ptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

func of(p uintptr) *cache { return (*cache)(ptr(p)) }

func xCreate(tls *libc.TLS, szPage, szExtra, bPurgeable int32) uintptr {
	fp := base.FxCreate
	under := (*(*func(*libc.TLS, int32, int32, int32) uintptr)(unsafe.Pointer(&fp)))(tls, szPage, szExtra, bPurgeable)
	if under == 0 {
		return 0
	}
	p := libc.Xcalloc(tls, 1, types.Size_t(unsafe.Sizeof(cache{})))
	if p == 0 {
		fp := base.FxDestroy
		(*(*func(*libc.TLS, uintptr))(unsafe.Pointer(&fp)))(tls, under)
		return 0
	}
	c := of(p)
	c.under = under
	if szPage > 0 {
		c.tempKey = uint32(pendingByte/szPage) + 1
	}
	return p
}

func xCachesize(tls *libc.TLS, p uintptr, n int32) {
	fp := base.FxCachesize
	(*(*func(*libc.TLS, uintptr, int32))(unsafe.Pointer(&fp)))(tls, of(p).under, n)
}

func xPagecount(tls *libc.TLS, p uintptr) int32 {
	fp := base.FxPagecount
	return (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&fp)))(tls, of(p).under)
}

func xFetch(tls *libc.TLS, p uintptr, key uint32, create int32) uintptr {
	c := of(p)
	fp := base.FxFetch
	pg := (*(*func(*libc.TLS, uintptr, uint32, int32) uintptr)(unsafe.Pointer(&fp)))(tls, c.under, key, create)
	if pg != 0 {
		c.add(key)
	}
	return pg
}

func xUnpin(tls *libc.TLS, p, pg uintptr, discard int32) {
	fp := base.FxUnpin
	(*(*func(*libc.TLS, uintptr, uintptr, int32))(unsafe.Pointer(&fp)))(tls, of(p).under, pg, discard)
}

func xRekey(tls *libc.TLS, p, pg uintptr, oldKey, newKey uint32) {
	c := of(p)
	fp := base.FxRekey
	(*(*func(*libc.TLS, uintptr, uintptr, uint32, uint32))(unsafe.Pointer(&fp)))(tls, c.under, pg, oldKey, newKey)
	c.rekeyed(oldKey, newKey)
}

func xTruncate(tls *libc.TLS, p uintptr, limit uint32) {
	c := of(p)
	if !c.reaches(limit) {
		skipped.Add(1)
		return
	}
	passed.Add(1)
	fp := base.FxTruncate
	(*(*func(*libc.TLS, uintptr, uint32))(unsafe.Pointer(&fp)))(tls, c.under, limit)
	c.truncated(limit)
}

func xDestroy(tls *libc.TLS, p uintptr) {
	fp := base.FxDestroy
	(*(*func(*libc.TLS, uintptr))(unsafe.Pointer(&fp)))(tls, of(p).under)
	libc.Xfree(tls, p)
}

func xShrink(tls *libc.TLS, p uintptr) {
	fp := base.FxShrink
	(*(*func(*libc.TLS, uintptr))(unsafe.Pointer(&fp)))(tls, of(p).under)
}
