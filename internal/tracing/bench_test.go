package tracing

import (
	"context"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkServerSpan is the tracing work of one request answered from the
// page cache: the server span, started and ended, with tracing off, at
// the default 1% and at 100%.
func BenchmarkServerSpan(b *testing.B) {
	for _, tc := range []struct {
		name  string
		ratio float64
		on    bool
	}{{"off", 0, false}, {"1pct", 0.01, true}, {"100pct", 1, true}} {
		b.Run(tc.name, func(b *testing.B) {
			var tr *Tracer
			if tc.on {
				var err error
				tr, err = New(context.Background(), Config{Sampler: SamplerParentRatio, Ratio: tc.ratio},
					Options{Exporter: tracetest.NewNoopExporter()})
				if err != nil {
					b.Fatal(err)
				}
				defer tr.Shutdown(context.Background())
			}
			r := httptest.NewRequest("GET", "/products/hot", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := tr.StartServer(r.Context(), w, r)
				_ = ctx
				EndServer(span, r, "/products/{slug}", 200)
			}
		})
	}
}
