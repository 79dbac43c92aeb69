package stripemock

import "syscall"

// sysProcAttr has the kernel kill stripe-mock when the process that started
// it dies, so a killed test binary does not leave servers behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
