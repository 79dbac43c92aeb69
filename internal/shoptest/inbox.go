package shoptest

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// Inbox is a real SMTP server (emersion/go-smtp) on a loopback port that
// keeps every raw message it is given, for tests that assert on what the
// service sent. It accepts any sender and recipient, without auth.
type Inbox struct {
	// Addr is host:port, for SMTP_URL "smtp://" + Addr.
	Addr string

	mu   sync.Mutex
	msgs []string
}

// NewInbox starts an Inbox that stops when the test ends.
func NewInbox(t testing.TB) *Inbox {
	t.Helper()
	b := &Inbox{}
	srv := smtp.NewServer(b)
	srv.Domain, srv.ErrorLog = "localhost", quietLog{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.Addr = ln.Addr().String()
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return b
}

// Received returns the raw messages received so far, oldest first.
func (b *Inbox) Received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.msgs...)
}

// NewSession is go-smtp's Backend.
func (b *Inbox) NewSession(*smtp.Conn) (smtp.Session, error) { return inboxSession{b}, nil }

type inboxSession struct{ b *Inbox }

func (inboxSession) Reset()                               {}
func (inboxSession) Logout() error                        { return nil }
func (inboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (inboxSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s inboxSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, string(raw))
	s.b.mu.Unlock()
	return err
}

type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
func (quietLog) Println(...any)        {}
