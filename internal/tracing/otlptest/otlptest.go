// Package otlptest is an OTLP/HTTP trace receiver for tests: a real HTTP
// server that decodes the OTLP protobuf export requests exporters send
// and keeps the spans, so a test can assert what a process exported.
package otlptest

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	TraceID, SpanID, ParentID string // hex; ParentID "" for a root
	Name                      string
	Kind                      tracepb.Span_SpanKind
	Error                     bool
	Attrs                     map[string]string // span attributes, values as strings
	Resource                  map[string]string // resource attributes (service.name, surge.role, ...)
	Start, End                time.Time
}

// Receiver is an OTLP/HTTP receiver: an http.Handler for POST
// /v1/traces.
type Receiver struct {
	// URL is the base URL, for OTEL_EXPORTER_OTLP_ENDPOINT (set by
	// Start); exports go to URL + "/v1/traces".
	URL string
	// CountOnly counts spans without keeping them (a sink for
	// benchmarks); set it before serving.
	CountOnly bool

	mu      sync.Mutex
	n       int
	spans   []Span
	changed chan struct{} // closed and replaced on every export
	bad     []string
}

// NewReceiver returns a receiver to serve with any HTTP server.
func NewReceiver() *Receiver { return &Receiver{changed: make(chan struct{})} }

// Start starts a receiver on loopback that stops when the test ends; a
// malformed export fails the test.
func Start(t testing.TB) *Receiver {
	r := NewReceiver()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, b := range r.bad {
			t.Errorf("otlp receiver: %s", b)
		}
	})
	r.URL = srv.URL
	return r
}

// ServeHTTP decodes one OTLP/HTTP protobuf export request.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		r.fail(req.Method + " " + req.URL.Path + ": want POST /v1/traces")
		http.NotFound(w, req)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		r.fail("content type " + ct + ": want application/x-protobuf")
		http.Error(w, "want application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			r.fail("gzip: " + err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ex coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &ex); err != nil {
		r.fail("decode export request: " + err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []Span
	for _, rs := range ex.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got = append(got, Span{TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(), Kind: s.GetKind(),
					Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR, Attrs: attrs(s.GetAttributes()), Resource: res,
					Start: time.Unix(0, int64(s.GetStartTimeUnixNano())), End: time.Unix(0, int64(s.GetEndTimeUnixNano()))})
			}
		}
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
	r.mu.Lock()
	r.n += len(got)
	if !r.CountOnly {
		r.spans = append(r.spans, got...)
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *Receiver) fail(msg string) {
	r.mu.Lock()
	r.bad = append(r.bad, msg)
	r.mu.Unlock()
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// Count returns how many spans were received, and how many exports were
// malformed.
func (r *Receiver) Count() (spans, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, len(r.bad)
}

// Reset forgets the spans received so far.
func (r *Receiver) Reset() {
	r.mu.Lock()
	r.spans, r.n = nil, 0
	r.mu.Unlock()
}

// Spans returns every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Wait returns the spans received once done(spans) holds, or ok false if
// it does not hold within d. It waits for exports, not for time.
func (r *Receiver) Wait(d time.Duration, done func([]Span) bool) (spans []Span, ok bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans, changed := append([]Span(nil), r.spans...), r.changed
		r.mu.Unlock()
		if done(spans) {
			return spans, true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return spans, false
		}
	}
}
