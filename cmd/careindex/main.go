// Command careindex builds and publishes the regional shared care record
// index. Run `careindex --help` for the commands.
//
// For performance work the binary honours two environment variables:
// CAREINDEX_CPUPROFILE=FILE writes a CPU profile of the whole command to FILE,
// and CAREINDEX_MEMPROFILE=FILE writes a heap profile (allocations since start,
// and the heap in use) to FILE when the command ends. Both are read with
// `go tool pprof`. CAREINDEX_TRACE=FILE writes an execution trace, whose
// network-blocking profile (`go tool trace -pprof=net FILE`) shows where the
// process waits on the store.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"github.com/careindex/careindex/cmd/careindex/cli"
)

func main() {
	os.Exit(run())
}

// run runs the command with the optional profiles around it and returns the
// exit code, so that deferred profile writes happen before the process exits.
func run() int {
	if path := os.Getenv("CAREINDEX_CPUPROFILE"); path != "" {
		stopCPU, err := startCPUProfile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "careindex: CPU profile: %v\n", err)
			return 1
		}
		defer stopCPU()
	}
	if path := os.Getenv("CAREINDEX_TRACE"); path != "" {
		stopTrace, err := startTrace(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "careindex: trace: %v\n", err)
			return 1
		}
		defer stopTrace()
	}
	if path := os.Getenv("CAREINDEX_MEMPROFILE"); path != "" {
		defer func() {
			if err := writeHeapProfile(path); err != nil {
				fmt.Fprintf(os.Stderr, "careindex: heap profile: %v\n", err)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Main(ctx, os.Args[1:], cli.Env{
		Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv,
		IsTerminal: cli.IsTerminal(os.Stderr), StdoutIsTerminal: cli.IsTerminal(os.Stdout),
	})
}

// startCPUProfile starts CPU profiling into path and returns the function that
// stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "careindex: CPU profile: close: %v\n", err)
		}
	}, nil
}

// startTrace starts an execution trace into path and returns the function
// that stops it and closes the file.
func startTrace(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start: %w", err)
	}
	return func() {
		trace.Stop()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "careindex: trace: close: %v\n", err)
		}
	}, nil
}

// writeHeapProfile writes the heap profile (allocations since the start and
// the heap in use after a collection) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("write: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}
