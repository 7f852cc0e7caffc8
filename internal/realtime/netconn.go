package realtime

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// batchConn is a WebSocket's TCP connection as gorilla sees it. It saves
// the writer two costs per frame:
//
//   - Between hold and flush, gorilla's writes are buffered and go out in
//     one system call: a writer that wakes up to several frames sends them
//     together instead of paying the kernel's TCP path once per frame.
//   - gorilla sets the write deadline before every frame; a deadline equal
//     to the one in force is not passed on (arming the runtime's timer again
//     costs as much as the rest of the frame's user-space work).
//
// Writes stay safe from several goroutines (gorilla answers pings from the
// reader); only the writer goroutine calls hold and flush.
type batchConn struct {
	net.Conn
	deadline atomic.Int64 // the write deadline in force, Unix ns; 0 = none

	mu      sync.Mutex
	holding bool
	buf     *[]byte // while holding
}

// batchBufs recycles the buffers of held frames across connections, so
// that an idle connection keeps none.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBatch is the largest buffer returned to batchBufs.
const maxPooledBatch = 64 << 10

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.holding {
		*c.buf = append(*c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// SetWriteDeadline passes t on unless it is the deadline in force.
func (c *batchConn) SetWriteDeadline(t time.Time) error {
	ns := int64(0)
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	if c.deadline.Swap(ns) == ns {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline passes t on, and remembers it as the write deadline.
func (c *batchConn) SetDeadline(t time.Time) error {
	ns := int64(0)
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.deadline.Store(ns)
	return c.Conn.SetDeadline(t)
}

// hold buffers the writes that follow, until flush.
func (c *batchConn) hold() {
	c.mu.Lock()
	c.holding = true
	c.buf = batchBufs.Get().(*[]byte)
	c.mu.Unlock()
}

// flush ends hold and writes what was buffered in one call.
func (c *batchConn) flush() error {
	c.mu.Lock()
	buf := c.buf
	c.holding, c.buf = false, nil
	c.mu.Unlock()
	if buf == nil {
		return nil
	}
	var err error
	if len(*buf) > 0 {
		_, err = c.Conn.Write(*buf)
	}
	if cap(*buf) <= maxPooledBatch {
		*buf = (*buf)[:0]
		batchBufs.Put(buf)
	}
	return err
}

// batchHijacker hands gorilla's upgrader the hijacked connection wrapped
// in a batchConn.
type batchHijacker struct {
	http.ResponseWriter
}

func (w batchHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &batchConn{Conn: nc}, brw, nil
}
