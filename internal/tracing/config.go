// Package tracing exports OpenTelemetry traces of the shop over OTLP/HTTP:
// a span per HTTP request, store call, payment provider call, outbox relay
// and event bus publish or consume, with W3C trace context carried in
// HTTP headers, in the outbox rows and in the bus's message headers, so
// one checkout is one trace across the API replica and the worker.
//
// Tracing is off unless an OTLP endpoint is configured; then the shop
// holds a *Tracer. Every method of the nil *Tracer does nothing and
// allocates nothing, and the shop wraps nothing when it has none, so the
// untraced path costs what it did before tracing existed.
package tracing

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Config is the tracing configuration, read from the standard OTEL_*
// environment variables by FromEnv.
type Config struct {
	// Endpoint is the full URL traces are posted to
	// (http://collector:4318/v1/traces). Empty turns tracing off.
	Endpoint string
	// Headers are sent with every export (OTEL_EXPORTER_OTLP_HEADERS),
	// such as an API key.
	Headers map[string]string
	// ServiceName is the service.name resource attribute (default "surge").
	ServiceName string
	// Sampler is one of the OTEL_TRACES_SAMPLER values below (default
	// parentbased_traceidratio); Ratio is its argument for the ratio
	// samplers, 0..1 (default DefaultRatio).
	Sampler string
	Ratio   float64
}

// DefaultRatio is the share of new traces sampled when
// OTEL_TRACES_SAMPLER_ARG does not say: 1%.
const DefaultRatio = 0.01

// The samplers OTEL_TRACES_SAMPLER may name.
const (
	SamplerAlwaysOn          = "always_on"
	SamplerAlwaysOff         = "always_off"
	SamplerRatio             = "traceidratio"
	SamplerParentAlwaysOn    = "parentbased_always_on"
	SamplerParentAlwaysOff   = "parentbased_always_off"
	SamplerParentRatio       = "parentbased_traceidratio"
	defaultSampler           = SamplerParentRatio
	defaultServiceName       = "surge"
	tracesPath               = "/v1/traces"
	envSDKDisabled           = "OTEL_SDK_DISABLED"
	envEndpoint              = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint        = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envHeaders               = "OTEL_EXPORTER_OTLP_HEADERS"
	envTracesHeaders         = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
	envServiceName           = "OTEL_SERVICE_NAME"
	envSampler               = "OTEL_TRACES_SAMPLER"
	envSamplerArg            = "OTEL_TRACES_SAMPLER_ARG"
	envTracesExporter        = "OTEL_TRACES_EXPORTER"
	maxHeaderValueLen        = 4096
	maxExportHeaders         = 32
	otlpHTTPProtobufProtocol = "http/protobuf"
	envProtocol              = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol        = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// Enabled reports whether traces are exported.
func (c Config) Enabled() bool { return c.Endpoint != "" }

// FromEnv reads the tracing configuration the way the OpenTelemetry
// specification defines the variables:
//
//   - OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the traces URL as given;
//     OTEL_EXPORTER_OTLP_ENDPOINT is a base URL that gets /v1/traces
//     appended. Neither set: tracing is off.
//   - OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off.
//   - OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf when set: the
//     shop exports over OTLP/HTTP only.
//   - OTEL_EXPORTER_OTLP_(TRACES_)HEADERS: key=value,... sent with exports.
//   - OTEL_SERVICE_NAME (default surge).
//   - OTEL_TRACES_SAMPLER (default parentbased_traceidratio) and
//     OTEL_TRACES_SAMPLER_ARG (default 0.01).
func FromEnv(getenv func(string) string) (Config, error) {
	var c Config
	if strings.EqualFold(strings.TrimSpace(getenv(envSDKDisabled)), "true") {
		return c, nil
	}
	switch exp := strings.TrimSpace(getenv(envTracesExporter)); exp {
	case "", "otlp":
	case "none":
		return c, nil
	default:
		return c, fmt.Errorf("%s=%q: want otlp or none", envTracesExporter, exp)
	}
	for _, k := range []string{envTracesProtocol, envProtocol} {
		if p := strings.TrimSpace(getenv(k)); p != "" && p != otlpHTTPProtobufProtocol {
			return c, fmt.Errorf("%s=%q: the shop exports OTLP over HTTP with protobuf only (%s)", k, p, otlpHTTPProtobufProtocol)
		}
	}
	if e := strings.TrimSpace(getenv(envTracesEndpoint)); e != "" {
		if err := checkURL(envTracesEndpoint, e); err != nil {
			return c, err
		}
		c.Endpoint = e
	} else if e := strings.TrimSpace(getenv(envEndpoint)); e != "" {
		if err := checkURL(envEndpoint, e); err != nil {
			return c, err
		}
		c.Endpoint = strings.TrimRight(e, "/") + tracesPath
	}
	var err error
	h := getenv(envTracesHeaders)
	if h == "" {
		h = getenv(envHeaders)
	}
	if c.Headers, err = parseHeaders(h); err != nil {
		return c, err
	}
	c.ServiceName = strings.TrimSpace(getenv(envServiceName))
	if c.ServiceName == "" {
		c.ServiceName = defaultServiceName
	}
	c.Sampler = strings.ToLower(strings.TrimSpace(getenv(envSampler)))
	if c.Sampler == "" {
		c.Sampler = defaultSampler
	}
	c.Ratio = DefaultRatio
	if a := strings.TrimSpace(getenv(envSamplerArg)); a != "" {
		r, err := strconv.ParseFloat(a, 64)
		if err != nil || r < 0 || r > 1 || r != r {
			return c, fmt.Errorf("%s=%q: want a sampling ratio from 0 to 1, like 0.01", envSamplerArg, a)
		}
		c.Ratio = r
	}
	return c, c.validate()
}

func (c Config) validate() error {
	switch c.Sampler {
	case SamplerAlwaysOn, SamplerAlwaysOff, SamplerRatio, SamplerParentAlwaysOn, SamplerParentAlwaysOff, SamplerParentRatio:
	default:
		return fmt.Errorf("%s=%q: want one of %s, %s, %s, %s, %s, %s", envSampler, c.Sampler,
			SamplerParentRatio, SamplerRatio, SamplerParentAlwaysOn, SamplerAlwaysOn, SamplerParentAlwaysOff, SamplerAlwaysOff)
	}
	if c.Ratio < 0 || c.Ratio > 1 {
		return fmt.Errorf("sampling ratio %v: want 0 to 1", c.Ratio)
	}
	return nil
}

func checkURL(name, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s=%q: want an http:// or https:// URL such as http://collector:4318", name, s)
	}
	return nil
}

// parseHeaders reads the W3C-baggage-like key=value,key=value list the
// specification uses for OTEL_EXPORTER_OTLP_HEADERS; values are
// percent-decoded.
func parseHeaders(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, errors.New(envHeaders + ": want key=value pairs separated by commas")
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil || len(dv) > maxHeaderValueLen {
			return nil, fmt.Errorf("%s: header %s: bad or too long value", envHeaders, k)
		}
		out[k] = dv
		if len(out) > maxExportHeaders {
			return nil, fmt.Errorf("%s: more than %d headers", envHeaders, maxExportHeaders)
		}
	}
	return out, nil
}
