package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// serverProcAttr puts the server in its own process group, so Ctrl-C at the
// terminal reaches only the bench, which then stops the server in order;
// and has the kernel kill it should the bench die without doing so.
func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// memoryKiB reads a process's peak (VmHWM) and current (VmRSS) resident set
// size from /proc.
func memoryKiB(pid int) (peak, current int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v) // "12345 kB"
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmHWM":
			peak = n
		case "VmRSS":
			current = n
		}
	}
	if peak == 0 {
		return 0, 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return peak, current, nil
}
