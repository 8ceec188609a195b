package natsbus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embedded is the NATS server running inside this process, and what it
// takes to restart it there.
//
// A stream whose file store failed a write (the disk filled up, for one)
// keeps that error until the server restarts: every later publish to it
// times out, even once space is free again. Nothing outside the process
// can restart an embedded server short of restarting the shop, so the
// process watches the server's health and restarts it in place once the
// store directory takes writes again. The bus's connection reconnects to
// the new server by itself (embedded is its in-process connection
// provider), consumers fetch again, and the outbox relay republishes what
// did not get through, de-duplicated by message id.
type embedded struct {
	opts *server.Options // how the server starts, with the port it got the first time
	dir  string
	log  *slog.Logger

	mu      sync.Mutex
	srv     *server.Server // nil while restarting
	syncers map[string]*streamSyncer

	stop chan struct{}
	done chan struct{}
}

func startEmbedded(cfg Config, log *slog.Logger) (*embedded, error) {
	opts := &server.Options{
		ServerName: "surge-embedded",
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true, // signals belong to the surge process, not the library
		DontListen: true,
		// No HTTP monitoring, cluster, gateway or leaf listeners: zero values.
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("listen %q: bad port", cfg.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.DontListen, opts.Host, opts.Port = false, host, p
	}
	e := &embedded{opts: opts, dir: cfg.StoreDir, log: log}
	srv, err := e.start()
	if err != nil {
		return nil, err
	}
	if addr, ok := srv.Addr().(*net.TCPAddr); ok && !opts.DontListen {
		// A restart must come back where other processes (workers) know
		// to find it.
		opts.Port = addr.Port
	}
	e.srv = srv
	return e, nil
}

// start runs nats-server in this process. It is only reachable from the
// process itself unless Config.Listen asks for a port, and then only on
// the address given (the examples use 127.0.0.1).
func (e *embedded) start() (*server.Server, error) {
	o := *e.opts
	srv, err := server.NewServer(&o)
	if err != nil {
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{e.log.With("component", "nats-server")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("embedded nats server did not become ready in 30s")
	}
	return srv, nil
}

// InProcessConn connects to the server running now; it implements
// nats.InProcessConnProvider.
func (e *embedded) InProcessConn() (net.Conn, error) {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	if srv == nil {
		return nil, errors.New("embedded nats server is restarting")
	}
	return srv.InProcessConn()
}

func (e *embedded) clientURL() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		return fmt.Sprintf("nats://%s", net.JoinHostPort(e.opts.Host, strconv.Itoa(e.opts.Port)))
	}
	return e.srv.ClientURL()
}

// health reports what the server's own health check finds wrong: JetStream
// off, or a stream that cannot be recovered or has failed a write.
func (e *embedded) health() error {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	if srv == nil {
		return errors.New("restarting")
	}
	h := srv.Healthz(&server.HealthzOptions{Details: true})
	if h == nil || h.StatusCode == 0 || h.StatusCode == 200 {
		return nil
	}
	var msgs []string
	if h.Error != "" {
		msgs = append(msgs, h.Error)
	}
	for _, he := range h.Errors {
		msgs = append(msgs, he.Error)
	}
	if len(msgs) == 0 {
		msgs = append(msgs, "status "+h.Status)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// maxRecoverWait caps the wait between restarts that did not cure the
// server.
const maxRecoverWait = time.Minute

// watch checks the server's health every interval and restarts it when
// confirmChecks checks in a row found a fault, once the store directory
// takes writes again. Restarts
// that do not cure it are spaced out, doubling up to maxRecoverWait.
func (e *embedded) watch(every time.Duration) {
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(e.done)
		t := time.NewTicker(every)
		defer t.Stop()
		var (
			faults     faultRun
			faultSince time.Time // zero while healthy
			nextTry    time.Time
			wait       = every
			diskFull   bool // logged once per spell
		)
		for {
			select {
			case <-e.stop:
				return
			case <-t.C:
			}
			err := e.health()
			now := time.Now()
			if !faults.observe(err) {
				if err == nil && !faultSince.IsZero() {
					e.log.Info("embedded nats server healthy again", "after", now.Sub(faultSince).Round(time.Millisecond).String())
				}
				if err == nil {
					faultSince, wait, diskFull = time.Time{}, every, false
				}
				continue
			}
			if faultSince.IsZero() {
				faultSince, nextTry = now, now
				e.log.Error("embedded nats server unhealthy; it restarts in place once its store takes writes", "err", err)
			}
			if now.Before(nextTry) {
				continue
			}
			if perr := probeWrite(e.dir); perr != nil {
				if !diskFull {
					e.log.Error("embedded nats store still refuses writes; waiting", "dir", e.dir, "err", perr)
					diskFull = true
				}
				continue
			}
			diskFull = false
			if rerr := e.restart(); rerr != nil {
				e.log.Error("restart embedded nats server", "err", rerr)
			} else {
				e.log.Warn("embedded nats server restarted after a fault", "fault", err.Error())
			}
			nextTry = now.Add(wait)
			wait = min(2*wait, maxRecoverWait)
		}
	}()
}

// confirmChecks is how many health checks in a row must find a fault
// before the server is restarted for it. nats-server's own health check
// asks whether the server is ready for connections within a millisecond,
// and on a starved CPU that millisecond can pass before it looks at all:
// it then reports "failed to be ready for connections after 1ms" with
// nothing failed. Restarting on that would cut every client off for
// nothing; a real fault (a stream that failed a write) stays until the
// restart cures it, so waiting for it to repeat costs seconds at most.
const confirmChecks = 3

// faultRun counts health checks that found a fault, in a row.
type faultRun struct{ n int }

// observe takes a check's result and reports whether the fault is
// confirmed: confirmChecks checks in a row, or more, found one.
func (f *faultRun) observe(err error) bool {
	if err == nil {
		f.n = 0
		return false
	}
	f.n++
	return f.n >= confirmChecks
}

// probeSize is how much a store directory must take for a restart to be
// worth trying: a few of JetStream's message-block writes.
const probeSize = 1 << 20

// probeWrite writes, syncs and removes a file of probeSize in dir, to see
// whether the filesystem takes writes again.
func probeWrite(dir string) (err error) {
	f, err := os.CreateTemp(dir, ".surge-probe-*")
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if rerr := os.Remove(f.Name()); err == nil && rerr != nil {
			err = rerr
		}
	}()
	if _, err := f.Write(make([]byte, probeSize)); err != nil {
		return err
	}
	return f.Sync()
}

// restart shuts the server down and starts it again from its store. The
// streams and consumers come back from disk; clients reconnect meanwhile.
func (e *embedded) restart() error {
	e.mu.Lock()
	old := e.srv
	e.srv = nil
	e.mu.Unlock()
	if old != nil {
		old.Shutdown()
		old.WaitForShutdown()
	}
	srv, err := e.start()
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.srv = srv
	e.mu.Unlock()
	return nil
}

// close stops the watch and shuts the server down.
func (e *embedded) close() {
	if e.stop != nil {
		close(e.stop)
		<-e.done
		e.stop = nil
	}
	e.mu.Lock()
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}
