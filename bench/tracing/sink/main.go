// Command sink is the OTLP/HTTP receiver the tracing benchmark exports
// to: it decodes every export (as a collector would) and counts the
// spans. It prints "otlp: http://ADDR" once listening; GET /count
// answers "spans=N bad=M" and POST /reset zeroes the count.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/surge-commerce/surge/internal/tracing/otlptest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	recv := otlptest.NewReceiver()
	recv.CountOnly = true
	mux := http.NewServeMux()
	mux.Handle("POST /v1/traces", recv)
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) {
		n, bad := recv.Count()
		fmt.Fprintf(w, "spans=%d bad=%d\n", n, bad)
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) { recv.Reset() })
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	fmt.Printf("otlp: http://%s\n", ln.Addr())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
}
