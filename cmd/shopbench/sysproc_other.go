//go:build unix && !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// memoryKiB needs Linux's /proc.
func memoryKiB(pid int) (peak, current int64, err error) {
	return 0, 0, errors.New("peak RSS is read from /proc, which this OS lacks")
}

func processCPU(pid int) (time.Duration, error) {
	return 0, errors.New("CPU time is read from /proc, which this OS lacks")
}

func resetPeakRSS(pid int) error {
	return errors.New("peak RSS is reset through /proc, which this OS lacks")
}
