package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/surge-commerce/surge/internal/loadtest"
	"github.com/surge-commerce/surge/internal/slo"
	"github.com/surge-commerce/surge/internal/storefront"
	"github.com/surge-commerce/surge/internal/telemetry"
)

// loadSLOs reads an SLO file (deploy/slo/surge.yaml) into objectives a
// load test judges. An objective on HTTP requests counts the requests
// whose route, as the shop's router would match it, and method its
// queries select, and calls them bad by the same status codes or latency
// bound; one on server-side events is reported, not judged.
func loadSLOs(path string) ([]loadtest.SLO, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := slo.Parse(data)
	if err != nil {
		return nil, err
	}
	route := routeOf()
	var out []loadtest.SLO
	for _, s := range f.SLOs {
		sli, ok, err := s.RequestSLI()
		if err != nil {
			return nil, err
		}
		o := loadtest.SLO{Name: s.Name, Objective: s.Objective}
		if !ok {
			names, _ := slo.MetricNames(slo.Window(s.TotalQuery, "5m"))
			o.Note = fmt.Sprintf("server-side events (%s), judged by the alerts rather than a load test", strings.Join(names, ", "))
			out = append(out, o)
			continue
		}
		o.Counts = func(method, path string) bool { return sli.Counts(method, route(method, path)) }
		if sli.BadStatus != nil {
			o.BadStatus = sli.BadCode
		} else {
			o.Within = sli.Within
		}
		o.Describes = sli.String()
		out = append(out, o)
	}
	return out, nil
}

// routeOf returns the path template the shop's router matches a request
// to ("/products/{slug}" for GET /products/linen-shirt), as the
// http_route label records it; "" when no route takes it.
func routeOf() func(method, path string) string {
	mux := http.NewServeMux()
	for _, p := range storefront.RoutePatterns() {
		mux.Handle(p, http.NotFoundHandler())
	}
	return func(method, path string) string {
		_, pattern := mux.Handler(&http.Request{Method: method, URL: &url.URL{Path: path}, Host: "shop"})
		return telemetry.RouteTemplate(pattern)
	}
}
