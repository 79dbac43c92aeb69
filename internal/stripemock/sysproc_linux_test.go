package stripemock

import (
	"context"
	"syscall"
	"testing"
)

// TestOwnProcessGroup: a Ctrl-C at the terminal signals our process group;
// stripe-mock must not be in it, or it dies while the server that uses it
// is still finishing requests.
func TestOwnProcessGroup(t *testing.T) {
	t.Parallel()
	s, err := Start(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	pgid, err := syscall.Getpgid(s.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid == syscall.Getpgrp() {
		t.Errorf("stripe-mock is in our process group %d", pgid)
	}
}
