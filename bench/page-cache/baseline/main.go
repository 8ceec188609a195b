// Command baseline is the reference server of the page-cache benchmark
// (bench/page-cache/run): a bare net/http server that answers GET of one
// path with the bytes of a response captured from `surge serve`.
//
// It reads a raw HTTP/1.1 response (status line, headers, body, as written
// by `curl -si`), keeps every header but Date (net/http adds its own), and
// then serves that status, those headers and that body for -path. There is
// no logging, no metrics and no middleware: it is the ceiling that a cache
// hit in surge is compared with.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	path := flag.String("path", "/", "path to answer")
	respFile := flag.String("response", "", "file holding the captured HTTP response")
	flag.Parse()

	status, header, body, err := readResponse(*respFile)
	if err != nil {
		log.Fatalf("baseline: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+*path, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for name, vals := range header {
			h[name] = vals
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("baseline: %v", err)
	}
	fmt.Printf("baseline: http://%s%s (%d body bytes, %d headers)\n", ln.Addr(), *path, len(body), len(header))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// readResponse parses the captured response in name. The Content-Length
// header is set from the body actually read.
func readResponse(name string) (int, http.Header, []byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, nil, nil, err
	}
	defer f.Close()
	resp, err := http.ReadResponse(bufio.NewReader(f), nil)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: body: %w", name, err)
	}
	h := resp.Header.Clone()
	h.Del("Date")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return resp.StatusCode, h, body, nil
}
