//go:build !linux

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

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func resetPeakRSS(pid int) error {
	return errors.New("peak RSS is reset through /proc, which this OS lacks")
}
