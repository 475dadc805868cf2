// Package walvfs registers a SQLite VFS that hands a WAL transaction's
// frames to the kernel in one write instead of two per page.
//
// SQLite writes each WAL frame as two pwrite calls, its 24-byte header and
// then its page; a group commit of a dozen customer creates is some 240
// system calls before its one fsync, and on the embedded store those calls
// were a third of the writer's time. This VFS is the host's "unix" VFS with
// the WAL file's writes gathered in memory while they run on from one
// another, and written out as one pwrite before anything can depend on
// them: before a sync, a read, a truncate, a size query or a file control
// of the same file, and before it closes. Every other file, and every other
// method, is the unix VFS's own.
//
// It is only for connections with synchronous=FULL (or EXTRA): there every
// commit syncs the WAL before the new frames are published to other
// connections through the shared-memory index, so a frame another
// connection can see has always been written. With synchronous=NORMAL a
// commit publishes frames without a sync, and readers on their own file
// descriptors could read frames still in this buffer; Name must not be used
// there. A crash loses what the buffer held, which is what it loses without
// it: an unsynced transaction is not committed.
package walvfs

import (
	"errors"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// Name is the VFS name to pass as the DSN's vfs parameter once Register
// has succeeded.
const Name = "switchyard-walbuf"

// bufSize bounds the memory one WAL file holds back; a longer run of writes
// goes out in pieces of this size (a flow-1 group commit is about 500 KiB).
const bufSize = 4 << 20

// maxWrite is the most the unix VFS writes in one call: it masks a write's
// length to 17 bits (seekAndWriteFd), so a longer buffer goes out in
// pieces of 31 pages.
const maxWrite = 0x1f000

var (
	registerOnce sync.Once
	registerErr  error

	// Package variables: SQLite keeps pointers to both for as long as the
	// process runs, and Go never moves or frees them.
	vfs     sqlite3.Tsqlite3_vfs
	methods sqlite3.Tsqlite3_io_methods

	unixVFS     uintptr // the host VFS this one wraps
	unixMethods uintptr // the io methods unix gives a WAL file

	filesMu sync.Mutex
	files   = map[uintptr]*walFile{} // by sqlite3_file pointer

	unixWrites atomic.Int64 // see Writes
)

// Writes is how many writes this VFS has handed to the unix VFS since the
// process started.
func Writes() int64 { return unixWrites.Load() }

// Pending is how many bytes the VFS holds back, over all open WAL files.
// It is 0 whenever no transaction is being written: every commit of a
// connection with synchronous=FULL ends in a sync, which writes them out.
// Call it only while no connection using the VFS is writing.
func Pending() int {
	filesMu.Lock()
	defer filesMu.Unlock()
	n := 0
	for _, f := range files {
		n += len(f.buf)
	}
	return n
}

// walFile is one open WAL file's pending writes: buf holds the bytes of
// the file from off on, not yet written.
type walFile struct {
	buf []byte
	off int64
}

// Register registers the VFS under Name (once per process). It fails only
// when SQLite has no unix VFS, and then Name must not be used.
func Register() error {
	registerOnce.Do(func() { registerErr = register() })
	return registerErr
}

func register() error {
	tls := libc.NewTLS()
	defer tls.Close()
	unixName, err := libc.CString("unix")
	if err != nil {
		return err
	}
	defer libc.Xfree(tls, unixName)
	unixVFS = sqlite3.Xsqlite3_vfs_find(tls, unixName)
	if unixVFS == 0 {
		return errors.New("walvfs: SQLite has no unix VFS")
	}
	name, err := libc.CString(Name) // kept: SQLite holds it while registered
	if err != nil {
		return err
	}
	vfs = *(*sqlite3.Tsqlite3_vfs)(ptr(unixVFS))
	vfs.FpNext = 0
	vfs.FzName = name
	*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&vfs.FxOpen)) = xOpen
	if rc := sqlite3.Xsqlite3_vfs_register(tls, uintptr(unsafe.Pointer(&vfs)), 0); rc != sqlite3.SQLITE_OK {
		return errors.New("walvfs: registering the VFS failed")
	}
	return nil
}

// ptr turns an address SQLite handed over into a pointer (the memory is
// SQLite's, outside the Go heap).
func ptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

func xOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	open := unixVFSOpen()
	rc := open(tls, unixVFS, zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK || flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	file := (*sqlite3.Tsqlite3_file)(ptr(pFile))
	if file.FpMethods == 0 || !wrap(file.FpMethods) {
		return rc // not the methods this VFS knows: left as unix made it
	}
	filesMu.Lock()
	files[pFile] = &walFile{}
	filesMu.Unlock()
	file.FpMethods = uintptr(unsafe.Pointer(&methods))
	return rc
}

func unixVFSOpen() func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32 {
	fp := (*sqlite3.Tsqlite3_vfs)(ptr(unixVFS)).FxOpen
	return *(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&fp))
}

var wrapMu sync.Mutex

// wrap builds the WAL methods from the first WAL file's unix methods and
// reports whether m is those methods (unix picks one set per file system
// on a host, so it always is in practice).
func wrap(m uintptr) bool {
	wrapMu.Lock()
	defer wrapMu.Unlock()
	if unixMethods == 0 {
		unixMethods = m
		methods = *(*sqlite3.Tsqlite3_io_methods)(ptr(m))
		*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&methods.FxClose)) = xClose
		*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&methods.FxRead)) = xRead
		*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&methods.FxWrite)) = xWrite
		*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&methods.FxTruncate)) = xTruncate
		*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&methods.FxSync)) = xSync
		*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&methods.FxFileSize)) = xFileSize
		*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&methods.FxFileControl)) = xFileControl
		if methods.FiVersion >= 3 {
			*(*func(*libc.TLS, uintptr, int64, int32, uintptr) int32)(unsafe.Pointer(&methods.FxFetch)) = xFetch
		}
	}
	return m == unixMethods
}

func unix() *sqlite3.Tsqlite3_io_methods { return (*sqlite3.Tsqlite3_io_methods)(ptr(unixMethods)) }

func lookup(pFile uintptr) *walFile {
	filesMu.Lock()
	f := files[pFile]
	filesMu.Unlock()
	return f
}

// unixWrite writes n bytes at p through the unix VFS.
func unixWrite(tls *libc.TLS, pFile, p uintptr, n int32, off int64) int32 {
	unixWrites.Add(1)
	fp := unix().FxWrite
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&fp)))(tls, pFile, p, n, off)
}

// flush writes the pending bytes out. A failed write drops them: SQLite
// takes the error as the failure of the transaction they belonged to.
func (f *walFile) flush(tls *libc.TLS, pFile uintptr) int32 {
	if f == nil || len(f.buf) == 0 {
		return sqlite3.SQLITE_OK
	}
	rc := int32(sqlite3.SQLITE_OK)
	for done := 0; done < len(f.buf) && rc == sqlite3.SQLITE_OK; done += maxWrite {
		n := min(len(f.buf)-done, maxWrite)
		rc = unixWrite(tls, pFile, uintptr(unsafe.Pointer(&f.buf[done])), int32(n), f.off+int64(done))
	}
	f.buf = f.buf[:0]
	return rc
}

func xWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f := lookup(pFile)
	if f == nil {
		return unixWrite(tls, pFile, zBuf, iAmt, iOfst)
	}
	if len(f.buf) > 0 && (iOfst != f.off+int64(len(f.buf)) || len(f.buf)+int(iAmt) > bufSize) {
		if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if int(iAmt) > maxWrite {
		return unixWrite(tls, pFile, zBuf, iAmt, iOfst) // SQLite's own writes are a page at most
	}
	if len(f.buf) == 0 {
		if f.buf == nil {
			f.buf = make([]byte, 0, bufSize)
		}
		f.off = iOfst
	}
	f.buf = append(f.buf, unsafe.Slice((*byte)(ptr(zBuf)), iAmt)...)
	return sqlite3.SQLITE_OK
}

// before runs the unix method after the pending bytes are written.
func before(tls *libc.TLS, pFile uintptr) int32 {
	return lookup(pFile).flush(tls, pFile)
}

func xRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	if rc := before(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	fp := unix().FxRead
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&fp)))(tls, pFile, zBuf, iAmt, iOfst)
}

func xSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if rc := before(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	fp := unix().FxSync
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&fp)))(tls, pFile, flags)
}

func xTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	if rc := before(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	fp := unix().FxTruncate
	return (*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&fp)))(tls, pFile, size)
}

func xFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	if rc := before(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	fp := unix().FxFileSize
	return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&fp)))(tls, pFile, pSize)
}

func xFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if rc := before(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	fp := unix().FxFileControl
	return (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&fp)))(tls, pFile, op, pArg)
}

func xFetch(tls *libc.TLS, pFile uintptr, iOfst int64, iAmt int32, pp uintptr) int32 {
	if rc := before(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	fp := unix().FxFetch
	return (*(*func(*libc.TLS, uintptr, int64, int32, uintptr) int32)(unsafe.Pointer(&fp)))(tls, pFile, iOfst, iAmt, pp)
}

func xClose(tls *libc.TLS, pFile uintptr) int32 {
	rc := before(tls, pFile)
	filesMu.Lock()
	delete(files, pFile)
	filesMu.Unlock()
	fp := unix().FxClose
	if crc := (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&fp)))(tls, pFile); rc == sqlite3.SQLITE_OK {
		rc = crc
	}
	return rc
}
