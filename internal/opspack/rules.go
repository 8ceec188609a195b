package opspack

import (
	"context"
	"fmt"
	"io/fs"
	"testing/fstest"
	"time"

	prommodel "github.com/prometheus/common/model"
	alertwindows "github.com/slok/sloth/pkg/prometheus/alertwindows/v1"
	"go.yaml.in/yaml/v3"
)

// FastFactor is how many times faster the test variant of the rules runs:
// every alert window and the SLO period are divided by it, so the burn
// rates that page stay the same (14.4x, 6x) while an hour's window
// becomes a minute's and an end-to-end test sees an alert fire and
// resolve in about a minute.
const FastFactor = 60

// period reads the SLO period of an AlertWindows file.
func period(windows []byte) (time.Duration, error) {
	var w alertwindows.AlertWindows
	if err := yaml.Unmarshal(windows, &w); err != nil {
		return 0, fmt.Errorf("alert windows: %w", err)
	}
	if w.Kind != alertwindows.Kind || w.APIVersion != alertwindows.APIVersion {
		return 0, fmt.Errorf("alert windows: want kind %s, apiVersion %s", alertwindows.Kind, alertwindows.APIVersion)
	}
	return time.Duration(w.Spec.SLOPeriod), nil
}

// fastWindows divides every duration of an AlertWindows file by factor.
func fastWindows(windows []byte, factor int) ([]byte, error) {
	var w alertwindows.AlertWindows
	if err := yaml.Unmarshal(windows, &w); err != nil {
		return nil, fmt.Errorf("alert windows: %w", err)
	}
	scale := func(d *prommodel.Duration) error {
		*d /= prommodel.Duration(factor)
		if time.Duration(*d)%time.Second != 0 {
			return fmt.Errorf("alert windows: %v is not a whole number of seconds once divided by %d", time.Duration(*d)*time.Duration(factor), factor)
		}
		return nil
	}
	for _, d := range []*prommodel.Duration{&w.Spec.SLOPeriod,
		&w.Spec.Page.Quick.ShortWindow, &w.Spec.Page.Quick.LongWindow, &w.Spec.Page.Slow.ShortWindow, &w.Spec.Page.Slow.LongWindow,
		&w.Spec.Ticket.Quick.ShortWindow, &w.Spec.Ticket.Quick.LongWindow, &w.Spec.Ticket.Slow.ShortWindow, &w.Spec.Ticket.Slow.LongWindow} {
		if err := scale(d); err != nil {
			return nil, err
		}
	}
	return yaml.Marshal(w)
}

// slothRules runs Sloth over the SLO spec with one AlertWindows file.
func slothRules(ctx context.Context, spec, windows []byte) ([]byte, error) {
	p, err := period(windows)
	if err != nil {
		return nil, err
	}
	return SLORules(ctx, spec, fstest.MapFS{"windows.yaml": {Data: windows}}, p)
}

// readFile reads name from root, saying which file failed.
func readFile(root fs.FS, name string) ([]byte, error) {
	b, err := fs.ReadFile(root, name)
	if err != nil {
		return nil, fmt.Errorf("opspack: %w", err)
	}
	return b, nil
}
