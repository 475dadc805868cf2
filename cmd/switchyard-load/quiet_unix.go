//go:build unix

package main

import (
	"net"
	"syscall"
)

// quiet reports whether nothing at all is waiting on the idle connection c:
// no end of stream (the server closed it) and no data (nothing was asked).
// It peeks without blocking, so it costs one system call.
func quiet(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // one look, never wait
	})
	return err == nil && ok
}
