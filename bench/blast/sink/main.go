// Command sink is the blast benchmark's mail server: a real SMTP server
// (internal/smtpsink) on 127.0.0.1 that counts what it receives. It
// prints "smtp: ADDR" once listening and rewrites -stats every 200 ms
// with one line: messages distinct recipients connections repeats other,
// counting the mail jobs' messages (-id-prefix) apart from the others
// (order confirmations).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/surge-commerce/surge/internal/smtpsink"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
}

func run() error {
	statsPath := flag.String("stats", "", "file to keep the counts in")
	prefix := flag.String("id-prefix", "<job-", "count only messages whose Message-ID starts with this (the others: last field)")
	flag.Parse()
	if *statsPath == "" {
		return fmt.Errorf("-stats is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sink, err := smtpsink.Start("", smtpsink.Options{IDPrefix: *prefix})
	if err != nil {
		return err
	}
	defer sink.Close()
	fmt.Printf("smtp: %s\n", sink.Addr())
	write := func() error {
		s := sink.Stats()
		tmp := *statsPath + ".new"
		line := fmt.Sprintf("%d %d %d %d %d %d\n", s.Messages, s.Distinct, s.Recipients, s.Connections, s.Repeats, s.Other)
		if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, *statsPath)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := write(); err != nil {
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return write()
		}
	}
}
