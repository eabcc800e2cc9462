// Command careindex builds and publishes the regional shared care record
// index. Run `careindex --help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/careindex/careindex/cmd/careindex/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{
		Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv,
		IsTerminal: cli.IsTerminal(os.Stderr), StdoutIsTerminal: cli.IsTerminal(os.Stdout),
	})
	stop()
	os.Exit(code)
}
