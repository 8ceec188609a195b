// Command p99 prints the summary the blast benchmark compares from a
// `surge load run --out` file: requests, errors and latency percentiles.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: p99 RESULT.json")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var r struct {
		Total struct {
			Requests int64 `json:"requests"`
			Errors   int64 `json:"errors"`
			Latency  struct {
				P50 float64 `json:"p50_ms"`
				P99 float64 `json:"p99_ms"`
			} `json:"latency"`
		} `json:"total"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t := r.Total
	fmt.Printf("requests=%d errors=%d p50_ms=%.1f p99_ms=%.1f\n", t.Requests, t.Errors, t.Latency.P50, t.Latency.P99)
}
