package opspack

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"time"

	sloth "github.com/slok/sloth/pkg/lib"
)

// SLORules turns a Sloth prometheus/v1 spec into Prometheus recording
// rules and multiwindow, multi-burn-rate alerts, with the alert windows in
// windows (a directory of Sloth AlertWindows files) for an SLO period of
// period.
func SLORules(ctx context.Context, spec []byte, windows fs.FS, period time.Duration) ([]byte, error) {
	gen, err := sloth.NewPrometheusSLOGenerator(sloth.PrometheusSLOGeneratorConfig{
		WindowsFS:        windows,
		DefaultSLOPeriod: period,
	})
	if err != nil {
		return nil, fmt.Errorf("sloth: %w", err)
	}
	res, err := gen.GenerateFromRaw(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("sloth: %w", err)
	}
	var out bytes.Buffer
	if err := gen.WriteResultAsPrometheusStd(ctx, *res, &out); err != nil {
		return nil, fmt.Errorf("sloth: %w", err)
	}
	return out.Bytes(), nil
}
