//go:build !linux

package stripemock

import "syscall"

// sysProcAttr is empty where the kernel cannot tie stripe-mock's life to
// ours; Stop is then the only way it ends.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
