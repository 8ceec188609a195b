package capacity

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"strings"

	"github.com/google/pprof/profile"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	promodel "github.com/prometheus/common/model"
)

// Scrape is one reading of a Surge process's /metrics.
type Scrape struct {
	CPU       float64            // process_cpu_seconds_total
	Routes    map[string]float64 // requests by route (method and path), any status
	Errors    map[string]float64 // 5xx by route
	Events    float64            // surge_events_published_total
	Processed float64            // surge_events_processed_total
	Captured  float64            // surge_payments_captured_total
	HeapLive  float64            // go_memstats_heap_alloc_bytes
	RSS       float64            // process_resident_memory_bytes
	FDs       float64            // process_open_fds
	MaxProcs  float64            // go_sched_gomaxprocs_threads
	GoVersion string             // go_info's, or surge_build_info's goversion
	Version   string             // surge_build_info's version; "" when the server does not say
}

// ParseMetrics reads the Prometheus text exposition.
func ParseMetrics(r io.Reader) (*Scrape, error) {
	p := expfmt.NewTextParser(promodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	s := &Scrape{Routes: map[string]float64{}, Errors: map[string]float64{}}
	sum := func(name string) float64 {
		var v float64
		if f := fams[name]; f != nil {
			for _, m := range f.Metric {
				v += value(m)
			}
		}
		return v
	}
	s.CPU = sum("process_cpu_seconds_total")
	s.Events = sum("surge_events_published_total")
	s.Processed = sum("surge_events_processed_total")
	s.Captured = sum("surge_payments_captured_total")
	s.HeapLive = sum("go_memstats_heap_alloc_bytes")
	s.RSS = sum("process_resident_memory_bytes")
	s.FDs = sum("process_open_fds")
	s.MaxProcs = sum("go_sched_gomaxprocs_threads")
	if f := fams["go_info"]; f != nil && len(f.Metric) > 0 {
		for _, l := range f.Metric[0].Label {
			if l.GetName() == "version" {
				s.GoVersion = l.GetValue()
			}
		}
	}
	if f := fams["surge_build_info"]; f != nil && len(f.Metric) > 0 {
		for _, l := range f.Metric[0].Label {
			switch l.GetName() {
			case "version":
				s.Version = l.GetValue()
			case "goversion":
				s.GoVersion = l.GetValue()
			}
		}
	}
	if f := fams["http_server_request_duration_seconds"]; f != nil {
		for _, m := range f.Metric {
			var method, route, status string
			for _, l := range m.Label {
				switch l.GetName() {
				case "http_request_method":
					method = l.GetValue()
				case "http_route":
					route = l.GetValue()
				case "http_response_status_code":
					status = l.GetValue()
				}
			}
			// The route label is "GET /products/{slug}" or, in newer
			// servers, the bare template with the method apart.
			if !strings.Contains(route, " ") {
				route = method + " " + route
			}
			n := float64(m.GetHistogram().GetSampleCount())
			s.Routes[route] += n
			if strings.HasPrefix(status, "5") {
				s.Errors[route] += n
			}
		}
	}
	return s, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// scrape fetches and parses admin + "/metrics".
func (c *caller) scrape(ctx context.Context, admin string) (*Scrape, error) {
	b, err := c.get(ctx, strings.TrimRight(admin, "/")+"/metrics")
	if err != nil {
		return nil, err
	}
	return ParseMetrics(bytes.NewReader(b))
}

// Split is the share of a process's CPU samples spent in each component,
// read from a CPU profile by the packages on each sample's stack.
type Split struct {
	API, Worker, Database, NATS, Redis float64
	Samples                            int64
	CPU                                float64 // seconds of CPU the samples cover
}

// Merge combines the splits of two profiles, each weighed by the CPU it
// covers.
func (s Split) Merge(o Split) Split {
	cpu := s.CPU + o.CPU
	if cpu <= 0 {
		return Split{Samples: s.Samples + o.Samples}
	}
	w := func(a, b float64) float64 { return (a*s.CPU + b*o.CPU) / cpu }
	return Split{API: w(s.API, o.API), Worker: w(s.Worker, o.Worker), Database: w(s.Database, o.Database),
		NATS: w(s.NATS, o.NATS), Redis: w(s.Redis, o.Redis), Samples: s.Samples + o.Samples, CPU: cpu}
}

// componentOf names the component a stack belongs to: the embedded NATS
// server, the SQLite engine or a PostgreSQL/Redis client's own work, the
// order pipeline's consumers, else the API. The first match from the
// leaf up wins for engines; the worker is any stack that passes through
// the pipeline.
func componentOf(funcs []string) string {
	for _, f := range funcs {
		switch {
		case strings.HasPrefix(f, "github.com/nats-io/nats-server/"):
			return "nats"
		case strings.HasPrefix(f, "modernc.org/sqlite") || strings.HasPrefix(f, "modernc.org/libc"):
			return "database"
		}
	}
	for _, f := range funcs {
		if strings.Contains(f, "/internal/pipeline.") {
			return "worker"
		}
	}
	return "api"
}

// SplitProfile attributes a pprof CPU profile's samples to components.
// Samples with no caller of their own (the garbage collector's
// background workers) are left out, so they are shared in proportion.
func SplitProfile(b []byte) (Split, error) {
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err == nil {
			if raw, err := io.ReadAll(zr); err == nil {
				b = raw
			}
		}
	}
	p, err := profile.ParseData(b)
	if err != nil {
		return Split{}, err
	}
	idx := len(p.SampleType) - 1 // cpu nanoseconds
	var by = map[string]float64{}
	var total float64
	var n int64
	for _, s := range p.Sample {
		var funcs []string
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil {
					funcs = append(funcs, l.Function.Name)
				}
			}
		}
		if len(funcs) > 0 && (strings.HasPrefix(funcs[len(funcs)-1], "runtime.gcBgMarkWorker") ||
			strings.HasPrefix(funcs[len(funcs)-1], "runtime.bgsweep") || strings.HasPrefix(funcs[len(funcs)-1], "runtime.bgscavenge")) {
			continue
		}
		v := float64(s.Value[idx])
		by[componentOf(funcs)] += v
		total += v
		n++
	}
	if total == 0 {
		return Split{API: 1}, nil
	}
	return Split{API: by["api"] / total, Worker: by["worker"] / total, Database: by["database"] / total,
		NATS: by["nats"] / total, Redis: by["redis"] / total, Samples: n, CPU: total / 1e9}, nil
}
