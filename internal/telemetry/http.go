package telemetry

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTPMetrics records server request metrics named after the OpenTelemetry
// HTTP semantic conventions, as Prometheus exposes them.
type HTTPMetrics struct {
	duration *prometheus.HistogramVec
	active   *prometheus.GaugeVec
}

// NewHTTPMetrics registers the HTTP server metrics on reg.
func NewHTTPMetrics(reg prometheus.Registerer) (*HTTPMetrics, error) {
	m := &HTTPMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_server_request_duration_seconds",
			Help: "Duration of HTTP server requests.",
			// OpenTelemetry's recommended boundaries for this instrument.
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10},
		}, []string{"http_request_method", "http_route", "http_response_status_code", "url_scheme"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "http_server_active_requests",
			Help: "Number of in-flight HTTP server requests.",
		}, []string{"http_request_method"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.active} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// Observe records one finished request. pattern is the ServeMux pattern
// that matched ("GET /products/{slug}"), never the raw path, which would
// make label cardinality unbounded; the http_route label is its path
// template ("/products/{slug}"), as the conventions define it, since the
// method has a label of its own. scheme is "http" or "https".
func (m *HTTPMetrics) Observe(method, pattern, scheme string, status int, d time.Duration) {
	m.duration.WithLabelValues(normMethod(method), RouteTemplate(pattern), statusLabel(status), normScheme(scheme)).Observe(d.Seconds())
}

// RouteTemplate returns the path template of a ServeMux pattern
// ("[METHOD ][HOST]/PATH"): "GET /products/{slug}" gives
// "/products/{slug}". Anything else is returned as it is.
func RouteTemplate(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = strings.TrimLeft(pattern[i+1:], " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:]
	}
	return pattern
}

// normScheme keeps the url_scheme label to its two values.
func normScheme(s string) string {
	if s == "https" {
		return "https"
	}
	return "http"
}

// statusLabel spells common status codes without allocating; strconv
// caches only numbers below 100.
func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 201:
		return "201"
	case 204:
		return "204"
	case 301:
		return "301"
	case 303:
		return "303"
	case 304:
		return "304"
	case 400:
		return "400"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 409:
		return "409"
	case 422:
		return "422"
	case 429:
		return "429"
	case 500:
		return "500"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

// Active returns the in-flight gauge for method.
func (m *HTTPMetrics) Active(method string) prometheus.Gauge {
	return m.active.WithLabelValues(normMethod(method))
}

// normMethod folds unknown methods into _OTHER, as the conventions say, so
// a client cannot create label values at will.
func normMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}
