package natsbus

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startServer runs a standalone JetStream server on 127.0.0.1 (port -1 for
// a random one), standing in for an external NATS node.
func startServer(tb testing.TB, dir string, port int) *server.Server {
	tb.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "external", JetStream: true, StoreDir: dir,
		Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats server not ready")
	}
	return srv
}

// TestExternalServerRestart checks that a consumer on an external server
// carries on after the node restarts: messages published before the
// outage and after it are all handled.
func TestExternalServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, -1)
	url := srv.ClientURL()

	b, err := Open(context.Background(), Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	mustConsume(t, b, Consumer{Name: "capture", Subject: "surge.order.created", AckWait: time.Second,
		Handler: func(ctx context.Context, m Message) error {
			got <- m.ID
			return nil
		}})
	mustPublish(t, b, "surge.order.created", "before", "x")
	if id := recv(t, got); id != "before" {
		t.Fatalf("got %s", id)
	}

	port := srv.Addr().(*net.TCPAddr).Port
	srv.Shutdown()
	srv.WaitForShutdown()
	srv = startServer(t, dir, port)
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	defer b.Close() // before the server goes away

	// Publishing retries until the client has reconnected.
	eventually(t, "publish after restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return b.Publish(ctx, "surge.order.created", "after", []byte("y")) == nil
	})
	if id := recv(t, got); id != "after" {
		t.Fatalf("got %s", id)
	}
}

// TestOpenWaitsForJetStream: a process started beside a cluster whose
// JetStream is not serving yet waits for it rather than failing its start.
func TestOpenWaitsForJetStream(t *testing.T) {
	srv, err := server.NewServer(&server.Options{ServerName: "late", Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	enabled := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		enabled <- srv.EnableJetStream(&server.JetStreamConfig{StoreDir: t.TempDir()})
	}()
	b, err := Open(context.Background(), Config{URL: srv.ClientURL()})
	if err != nil {
		t.Fatalf("open while JetStream starts: %v", err)
	}
	defer b.Close()
	if err := <-enabled; err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, "surge.order.created", "late", "x")
}

// TestConsumeDuringOutage: a consumer started while the server is down is
// not an error that leaves orders unhandled: it creates itself on the
// server once the server is back and handles what is published then.
func TestConsumeDuringOutage(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, -1)
	b, err := Open(context.Background(), Config{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	port := srv.Addr().(*net.TCPAddr).Port
	srv.Shutdown()
	srv.WaitForShutdown()

	got := make(chan string, 10)
	mustConsume(t, b, Consumer{Name: "capture", Subject: "surge.order.created", AckWait: time.Second,
		Handler: func(ctx context.Context, m Message) error {
			got <- m.ID
			return nil
		}})

	srv = startServer(t, dir, port)
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	defer b.Close() // before the server goes away
	eventually(t, "publish after the outage", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return b.Publish(ctx, "surge.order.created", "after", []byte("y")) == nil
	})
	if id := recv(t, got); id != "after" {
		t.Fatalf("got %s", id)
	}
}
