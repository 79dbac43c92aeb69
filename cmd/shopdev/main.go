// Command shopdev runs shopd for local development; `make run` starts it.
//
//	shopdev            start a private PostgreSQL (unless DATABASE_URL is set)
//	                   and stripe-mock (unless STRIPE_API_BASE is set), seed
//	                   the demo catalog and an admin, then serve with the same
//	                   server.Run as shopd
//	shopdev seed       add the demo catalog to an empty database and exit
//	shopdev pay ID     mark order ID paid on the running server by sending it
//	                   the webhook Stripe would (stripe-mock sends none)
//
// Everything it keeps is under DATA_DIR (default .data): the cluster (or a
// link to it, see internal/pgcluster), the signing key, stripe-mock's log
// and the URL of the running server.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the default action is back, so a second
	// Ctrl-C ends a shutdown that takes too long; the cluster's watchdog
	// and stripe-mock's parent-death signal still clean up.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shopdev:", err)
		os.Exit(1)
	}
}
