package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStatusLabel(t *testing.T) {
	for code := 100; code < 600; code++ {
		if got := statusLabel(code); got != strconv.Itoa(code) {
			t.Fatalf("statusLabel(%d) = %q", code, got)
		}
	}
}

func TestLoggerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	id := NewRequestID()
	if len(id) != 16 {
		t.Fatalf("request id %q", id)
	}
	log.InfoContext(WithRequestID(context.Background(), id), "hello")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["request_id"] != id {
		t.Fatalf("log line %s (%v)", buf.String(), err)
	}
	if _, err := NewLogger(&buf, "loud", "json"); err == nil {
		t.Fatal("bad level accepted")
	}
	if _, err := NewLogger(&buf, "info", "xml"); err == nil {
		t.Fatal("bad format accepted")
	}
}

func TestRouteTemplate(t *testing.T) {
	for pattern, want := range map[string]string{
		"GET /products/{slug}":         "/products/{slug}",
		"POST /api/v1/checkout":        "/api/v1/checkout",
		"GET /{$}":                     "/{$}",
		"/":                            "/",
		"/api/":                        "/api/",
		"GET example.com/products/{s}": "/products/{s}",
		"example.com/":                 "/",
		"unmatched":                    "unmatched",
	} {
		if got := RouteTemplate(pattern); got != want {
			t.Errorf("RouteTemplate(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	reg := NewRegistry()
	if err := RegisterBuildInfo(reg, "v1.2.3"); err != nil {
		t.Fatal(err)
	}
	want := `# HELP surge_build_info The running binary: its version and the Go release it was built with (always 1).
# TYPE surge_build_info gauge
surge_build_info{goversion="` + runtime.Version() + `",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "surge_build_info"); err != nil {
		t.Error(err)
	}
}
