package server

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// Log buffering: one line per request, written straight to stderr, costs
// a write system call per request. The log goes through a buffer instead,
// written out when it fills, every logFlushEvery, and when the server
// stops, so a line reaches stderr at most logFlushEvery after it was
// logged and nothing logged before a clean shutdown is lost. (A SIGKILL
// loses at most the last logFlushEvery of lines.)
const (
	logBufferSize = 64 << 10
	logFlushEvery = 200 * time.Millisecond
)

// logWriter is an io.Writer safe for concurrent use that buffers what it
// is given and writes it to w whole: a Write of one log record reaches w
// in one piece, never interleaved with another.
type logWriter struct {
	mu   sync.Mutex
	buf  *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newLogWriter(w io.Writer, size int, every time.Duration) *logWriter {
	l := &logWriter{buf: bufio.NewWriterSize(w, size), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.Flush()
			}
		}
	}()
	return l
}

// Write buffers p; a record that does not fit in what is left of the
// buffer first sends the buffer on.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(p) > l.buf.Available() && l.buf.Buffered() > 0 {
		if err := l.buf.Flush(); err != nil {
			return 0, err
		}
	}
	return l.buf.Write(p)
}

// Flush writes out what is buffered.
func (l *logWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Flush()
}

// Close stops the timer and writes out what is buffered. Writes after it
// still work, buffered until the next Flush.
func (l *logWriter) Close() error {
	close(l.stop)
	<-l.done
	return l.Flush()
}
