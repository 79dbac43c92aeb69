//go:build !linux

package main

import (
	"errors"
	"syscall"
)

func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// memoryKiB needs Linux's /proc.
func memoryKiB(pid int) (peak, current int64, err error) {
	return 0, 0, errors.New("peak RSS is read from /proc, which this OS lacks")
}
