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
// The WAL file also grows in chunks of zeros (growChunk) rather than frame
// by frame, so that a commit's fsync seldom has to extend the file.
//
// It is only for connections with synchronous=FULL (or EXTRA): there every
// commit syncs the WAL before the new frames are published to other
// connections through the shared-memory index, so a frame another
// connection can see has always been written. With synchronous=NORMAL a
// commit publishes frames without a sync, and readers on their own file
// descriptors could read frames still in this buffer; Name must not be used
// there. A crash loses what the buffer held, which is what it loses without
// it: an unsynced transaction is not committed.
//
// Three more rules keep it equal to unix:
//   - A database without powersafe overwrite (psow=0) keeps a plain WAL:
//     SQLite then pads a commit to a sector boundary, writes the end of
//     its last frame after the sync (walWriteToLog), and publishes it.
//   - When the connection releases the WAL write lock, whatever is still
//     held is dropped: only frames no commit has synced can be left then
//     (a transaction that spilled its cache and rolled back), and another
//     writer may write the same offsets next. So the main database file is
//     wrapped too, to see the lock (xShmLock); the two files of one
//     connection are matched by the connection's libc.TLS and the WAL's
//     name, and a WAL whose database file is not wrapped is left alone.
//   - On a connection that uses it, PRAGMA synchronous below FULL and
//     PRAGMA locking_mode other than NORMAL fail (xFileControlDB).
//   - A failed write-out fails every later call on the file with
//     SQLITE_IOERR_WRITE until the write lock is released. Unix reports a
//     failed write where it happens, and SQLite then rolls the whole
//     transaction back; a write-out can fail later, in a read, where
//     SQLITE_FULL would only roll back one statement and let the
//     transaction commit without frames SQLite believes written.
package walvfs

import (
	"errors"
	"strings"
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

// growChunk is the step in which a WAL file grows: a write that would
// take it past its end is followed by zeros up to the next multiple. The
// fsync of a write into allocated blocks only writes the data; one that
// extends a file also commits the file system's journal (on this machine
// the probe's fsyncs ran 1.4 to 2 times as fast overwriting as appending).
// SQLite reads a WAL only up to its first invalid frame, and zeros are
// never a valid frame, so it sees what it would see without them.
const growChunk = 4 << 20

// zeros is what a WAL file grows by (read only).
var zeros [maxWrite]byte

var (
	registerOnce sync.Once
	registerErr  error

	// Package variables: SQLite keeps pointers to them for as long as the
	// process runs, and Go never moves or frees them.
	vfs       sqlite3.Tsqlite3_vfs
	methods   sqlite3.Tsqlite3_io_methods // a WAL file's
	dbMethods sqlite3.Tsqlite3_io_methods // a main database file's

	unixVFS       uintptr // the host VFS this one wraps
	unixMethods   uintptr // the io methods unix gives a WAL file
	unixDBMethods uintptr // and a main database file

	filesMu sync.Mutex
	files   = map[uintptr]*walFile{} // WAL files by sqlite3_file pointer
	dbs     = map[uintptr]walKey{}   // main database files, by the key of their WAL
	wals    = map[walKey]*walFile{}  // WAL files by key

	unixWrites atomic.Int64 // see Writes
	growWrites atomic.Int64 // the part of them that grew a file with zeros
)

// Writes is how many writes this VFS has handed to the unix VFS since the
// process started.
func Writes() int64 { return unixWrites.Load() }

// Pending is how many bytes the VFS holds back, over all open WAL files.
// It is 0 whenever no transaction is being written: every commit of a
// connection with synchronous=FULL ends in a sync, which writes them out,
// and a rolled-back transaction's are dropped with the write lock. Call it
// only while no connection using the VFS is writing (it reads their
// buffers without their owners).
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
// the file from off on, not yet written. err, once a write-out has failed,
// is what every call returns until the write lock is released.
type walFile struct {
	buf  []byte
	off  int64
	err  int32
	key  walKey
	size int64 // the file's size when known, else -1
}

// walKey names a WAL file of one connection: modernc gives every
// connection its own libc.TLS and makes every call for it with that TLS.
type walKey struct {
	tls  *libc.TLS
	name string
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
	if rc != sqlite3.SQLITE_OK || zName == 0 {
		return rc
	}
	file := (*sqlite3.Tsqlite3_file)(ptr(pFile))
	if file.FpMethods == 0 {
		return rc
	}
	switch {
	case flags&sqlite3.SQLITE_OPEN_MAIN_DB != 0:
		if !wrapDB(file.FpMethods) || !powersafe(tls, pFile, unixDB()) {
			return rc // left as unix made it, and so is its WAL (watched)
		}
		filesMu.Lock()
		dbs[pFile] = walKey{tls, libc.GoString(zName) + "-wal"}
		filesMu.Unlock()
		file.FpMethods = uintptr(unsafe.Pointer(&dbMethods))
	case flags&sqlite3.SQLITE_OPEN_WAL != 0:
		if !wrap(file.FpMethods) {
			return rc
		}
		key := walKey{tls, libc.GoString(zName)}
		filesMu.Lock()
		defer filesMu.Unlock()
		if !watched(key) || wals[key] != nil {
			return rc // the write lock of its database file is not in view
		}
		f := &walFile{key: key, size: -1}
		files[pFile], wals[key] = f, f
		file.FpMethods = uintptr(unsafe.Pointer(&methods))
	}
	return rc
}

// watched reports whether a wrapped main database file of the same
// connection will show its WAL write lock being released.
func watched(key walKey) bool {
	for _, k := range dbs {
		if k == key {
			return true
		}
	}
	return false
}

// powersafe reports whether unix promises powersafe overwrite for the
// database file: without it SQLite pads every commit of its WAL to a sector
// and writes part of the last frame after the sync (sqlite3WalOpen asks
// the database file, not the WAL).
func powersafe(tls *libc.TLS, pFile uintptr, m *sqlite3.Tsqlite3_io_methods) bool {
	fp := m.FxDeviceCharacteristics
	if fp == 0 {
		return false
	}
	dc := (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&fp)))(tls, pFile)
	return dc&sqlite3.SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0
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

// wrapDB is wrap for a main database file: its xShmLock and xClose.
func wrapDB(m uintptr) bool {
	wrapMu.Lock()
	defer wrapMu.Unlock()
	if unixDBMethods == 0 {
		base := (*sqlite3.Tsqlite3_io_methods)(ptr(m))
		if base.FiVersion < 2 || base.FxShmLock == 0 {
			return false // no shared memory: not a WAL database
		}
		unixDBMethods = m
		dbMethods = *base
		*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&dbMethods.FxClose)) = xCloseDB
		*(*func(*libc.TLS, uintptr, int32, int32, int32) int32)(unsafe.Pointer(&dbMethods.FxShmLock)) = xShmLock
		*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&dbMethods.FxFileControl)) = xFileControlDB
	}
	return m == unixDBMethods
}

func unix() *sqlite3.Tsqlite3_io_methods { return (*sqlite3.Tsqlite3_io_methods)(ptr(unixMethods)) }

func unixDB() *sqlite3.Tsqlite3_io_methods { return (*sqlite3.Tsqlite3_io_methods)(ptr(unixDBMethods)) }

func lookup(pFile uintptr) *walFile {
	filesMu.Lock()
	f := files[pFile]
	filesMu.Unlock()
	return f
}

// walWriteLock is the index of WAL_WRITE_LOCK among the shm locks.
const walWriteLock = 0

// xShmLock drops what the connection's WAL still holds before the WAL
// write lock is released (see the package comment).
func xShmLock(tls *libc.TLS, pFile uintptr, ofst, n, flags int32) int32 {
	if flags == sqlite3.SQLITE_SHM_UNLOCK|sqlite3.SQLITE_SHM_EXCLUSIVE && ofst <= walWriteLock && walWriteLock < ofst+n {
		filesMu.Lock()
		if f := wals[dbs[pFile]]; f != nil {
			f.buf, f.err = f.buf[:0], sqlite3.SQLITE_OK
		}
		filesMu.Unlock()
	}
	fp := unixDB().FxShmLock
	return (*(*func(*libc.TLS, uintptr, int32, int32, int32) int32)(unsafe.Pointer(&fp)))(tls, pFile, ofst, n, flags)
}

// xFileControlDB refuses the pragmas that would break the rules of the
// package comment on a connection that uses the VFS: synchronous below
// FULL (commits would publish frames still held here), and a locking mode
// other than NORMAL (in EXCLUSIVE mode SQLite takes and releases the WAL
// write lock without telling xShmLock, so unsynced frames would outlive
// the transaction). Reading either pragma is fine.
func xFileControlDB(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if op == sqlite3.SQLITE_FCNTL_PRAGMA && refusedPragma(pArg) {
		return sqlite3.SQLITE_ERROR
	}
	fp := unixDB().FxFileControl
	return (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&fp)))(tls, pFile, op, pArg)
}

// refusedPragma reads SQLITE_FCNTL_PRAGMA's argument: char*[3], the
// error message out, the pragma's name, and its value (NULL when read).
func refusedPragma(pArg uintptr) bool {
	az := (*[3]uintptr)(ptr(pArg))
	if az[1] == 0 || az[2] == 0 {
		return false
	}
	value := strings.ToLower(strings.TrimSpace(libc.GoString(az[2])))
	switch strings.ToLower(libc.GoString(az[1])) {
	case "synchronous":
		return value != "full" && value != "2" && value != "extra" && value != "3"
	case "locking_mode":
		return value != "normal"
	}
	return false
}

func xCloseDB(tls *libc.TLS, pFile uintptr) int32 {
	filesMu.Lock()
	delete(dbs, pFile)
	filesMu.Unlock()
	fp := unixDB().FxClose
	return (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&fp)))(tls, pFile)
}

// unixWrite writes n bytes at p through the unix VFS.
func unixWrite(tls *libc.TLS, pFile, p uintptr, n int32, off int64) int32 {
	unixWrites.Add(1)
	fp := unix().FxWrite
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&fp)))(tls, pFile, p, n, off)
}

// flush writes the pending bytes out. A failed write drops them and is
// remembered (walFile.err): SQLite takes the error as the failure of the
// transaction they belonged to.
func (f *walFile) flush(tls *libc.TLS, pFile uintptr) int32 {
	if f == nil {
		return sqlite3.SQLITE_OK
	}
	if f.err != sqlite3.SQLITE_OK {
		return f.err
	}
	rc := int32(sqlite3.SQLITE_OK)
	for done := 0; done < len(f.buf) && rc == sqlite3.SQLITE_OK; done += maxWrite {
		n := min(len(f.buf)-done, maxWrite)
		rc = unixWrite(tls, pFile, uintptr(unsafe.Pointer(&f.buf[done])), int32(n), f.off+int64(done))
	}
	if rc == sqlite3.SQLITE_OK && len(f.buf) > 0 {
		f.grow(tls, pFile, f.off+int64(len(f.buf)))
	}
	f.buf = f.buf[:0]
	if rc != sqlite3.SQLITE_OK {
		f.size = -1
		f.err = sqlite3.SQLITE_IOERR_WRITE
	}
	return rc
}

// grow follows a write that ended at end, past the file's known size, with
// zeros up to the next multiple of growChunk (see growChunk). It is only a
// speed-up, so a failure (a full disk) is not the transaction's: its
// frames are written, and failing it now would leave complete, valid
// frames in the file that a crash's recovery would take for a commit the
// client was told had failed. The size is then asked again. It runs only
// after a write of the connection's, so under the WAL write lock, and the
// log's valid frames all end before the end of the write transaction's
// newest frames: what lies beyond is left from an earlier transaction that
// rolled back or an earlier pass over the file, which SQLite never reads
// as frames (their salts or checksums do not follow).
func (f *walFile) grow(tls *libc.TLS, pFile uintptr, end int64) {
	if f.size < 0 {
		// The out-parameter in C memory: unix writes through it.
		p := tls.Alloc(8)
		fp := unix().FxFileSize
		rc := (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&fp)))(tls, pFile, p)
		size := *(*int64)(ptr(p))
		tls.Free(8)
		if rc != sqlite3.SQLITE_OK {
			return
		}
		f.size = size
	}
	if end <= f.size {
		return // within the file: nothing to grow
	}
	target := (end + growChunk - 1) / growChunk * growChunk
	for off := end; off < target; off += maxWrite {
		n := min(target-off, maxWrite)
		growWrites.Add(1)
		if rc := unixWrite(tls, pFile, uintptr(unsafe.Pointer(&zeros[0])), int32(n), off); rc != sqlite3.SQLITE_OK {
			f.size = -1
			return
		}
	}
	f.size = target
}

func xWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f := lookup(pFile)
	if f == nil {
		return unixWrite(tls, pFile, zBuf, iAmt, iOfst)
	}
	if len(f.buf) > 0 && (iOfst != f.off+int64(len(f.buf)) || len(f.buf)+int(iAmt) > bufSize || iAmt > maxWrite) {
		if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if f.err != sqlite3.SQLITE_OK {
		return f.err
	}
	if iAmt > maxWrite {
		f.size = -1                                     // grow asks the file again
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

// before writes the pending bytes out before a unix method runs. After a
// failed write-out it fails with SQLITE_IOERR_WRITE, never SQLITE_FULL,
// which SQLite would take for one statement's failure.
func before(tls *libc.TLS, pFile uintptr) int32 {
	f := lookup(pFile)
	if f.flush(tls, pFile) != sqlite3.SQLITE_OK {
		return f.err
	}
	return sqlite3.SQLITE_OK
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
	if f := lookup(pFile); f != nil {
		f.size = -1 // asked again at the next growth
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
	if f := files[pFile]; f != nil && wals[f.key] == f {
		delete(wals, f.key)
	}
	delete(files, pFile)
	filesMu.Unlock()
	fp := unix().FxClose
	if crc := (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&fp)))(tls, pFile); rc == sqlite3.SQLITE_OK {
		rc = crc
	}
	return rc
}
