// Command airlake-ferretdb runs FerretDB 1.x, the MongoDB wire-protocol side store of the native airlake
// stack, by embedding the public github.com/FerretDB/FerretDB/ferretdb package.
//
// FerretDB's own main package cannot be built with a plain `go install` (it panics for a missing
// build/version/version.txt), so airlake builds this small program instead. It serves the SQLite backend
// from a directory and stops cleanly on SIGTERM or SIGINT (what supervisord sends).
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("sqlite-dir", "data", "directory of the SQLite databases")
	debug := flag.Bool("debug", false, "log debug messages")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	abs, err := filepath.Abs(*dir)
	if err != nil {
		logger.Error("bad -sqlite-dir", "error", err)
		os.Exit(2)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		logger.Error("cannot create the SQLite directory", "dir", abs, "error", err)
		os.Exit(1)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger.Info("FerretDB listening", "uri", "mongodb://"+*listen+"/", "sqlite", abs)
	if err := f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped with an error", "error", err)
		os.Exit(1)
	}
	logger.Info("FerretDB stopped")
}
