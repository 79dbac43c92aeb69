package stripemock

import "syscall"

// sysProcAttr has the kernel kill stripe-mock when the process that started
// it dies, so a killed test binary does not leave servers behind. Its own
// process group keeps a Ctrl-C at the terminal from killing it before the
// server that uses it has finished shutting down; Stop ends it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
