package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// TestLogLinesInsideASpanCarryItsIDs: a record logged with a context that
// holds a span gets trace_id and span_id; one without gets neither.
func TestLogLinesInsideASpanCarryItsIDs(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.InfoContext(ctx, "inside")
	log.With("k", "v").WarnContext(ctx, "inside, derived logger")
	log.InfoContext(context.Background(), "outside")
	dec := json.NewDecoder(&buf)
	for _, want := range []bool{true, true, false} {
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		if want && (rec["trace_id"] != tid.String() || rec["span_id"] != sid.String()) {
			t.Errorf("%v: want trace_id %s and span_id %s", rec, tid, sid)
		}
		if _, has := rec["trace_id"]; !want && has {
			t.Errorf("%v: a trace_id outside any span", rec)
		}
	}
}

// TestLogOutsideSpansAllocatesNoMore: the trace lookup adds nothing to a
// line logged outside a span.
func TestLogOutsideSpansAllocatesNoMore(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are noise under the race detector (sync.Pool drops items at random); run without -race")
	}
	plain := slog.New(slog.NewJSONHandler(discard{}, nil))
	ours, _ := NewLogger(discard{}, "info", "json")
	ctx := context.Background()
	base := testing.AllocsPerRun(200, func() { plain.InfoContext(ctx, "x", "n", 1) })
	got := testing.AllocsPerRun(200, func() { ours.InfoContext(ctx, "x", "n", 1) })
	if got > base {
		t.Fatalf("%v allocations per line outside a span, the plain handler makes %v", got, base)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
