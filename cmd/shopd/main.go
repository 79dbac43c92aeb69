// Command shopd is the commerce API server.
//
//	shopd            serve (the default)
//	shopd migrate    apply database migrations and exit
//
// It needs a PostgreSQL at DATABASE_URL; for local development, `make run`
// (cmd/shopdev) starts one, with stripe-mock and a demo catalog, and runs
// the same server. The configuration is read from the environment once, by
// package server.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/shopd/shopd/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "shopd:", err)
		stop()
		os.Exit(1)
	}
}
