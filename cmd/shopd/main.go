// Command shopd is the commerce API server.
//
//	shopd            serve (the default)
//	shopd migrate    apply database migrations and exit
//	shopd seed       add the demo catalog to an empty database and exit
//	shopd pay ID     send the running server a signed payment_intent.succeeded
//	                 for order ID (local development with stripe-mock)
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "shopd:", err)
		os.Exit(1)
	}
}

// run is the whole program, callable from tests: it returns when ctx is
// cancelled (after a graceful shutdown) or on a fatal error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if getenv("GOGC") == "" {
		// The live heap is a few MiB and requests allocate a lot of short-
		// lived rows and JSON: collecting at 5x the live heap instead of 2x
		// costs some MiB and saves about a quarter of a request's CPU.
		debug.SetGCPercent(400)
	}
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, getenv, stdout, stderr)
	case "migrate", "seed":
		return maintain(ctx, cmd, getenv, stdout, stderr)
	case "pay":
		return pay(ctx, args, getenv, stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: shopd [serve|migrate|seed|pay ORDER_ID]")
		return nil
	default:
		return fmt.Errorf("unknown command %q (want serve, migrate, seed or pay)", cmd)
	}
}
