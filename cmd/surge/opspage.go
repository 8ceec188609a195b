package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/deploy"
	"github.com/surge-commerce/surge/internal/drop"
	"github.com/surge-commerce/surge/internal/opspage"
	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/slo"
)

// newOpsPage builds the /ops page over the process's registry, judged by
// the SLO file built into the binary.
func newOpsPage(reg prometheus.Gatherer) (*opspage.Page, error) {
	objectives, err := slo.Parse(deploy.SLOFile)
	if err != nil {
		return nil, err
	}
	return opspage.New(opspage.Config{Gatherer: reg, SLOs: objectives})
}

// openDrops lists the drops of sh that are not closed, for /ops.
func openDrops(sh *shop.Shop) func(context.Context) ([]opspage.Drop, error) {
	return func(ctx context.Context) ([]opspage.Drop, error) {
		all, err := sh.Store.Drops(ctx)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		var out []opspage.Drop
		for _, d := range all {
			if d.StateAt(now) == drop.StateClosed {
				continue
			}
			od := opspage.Drop{ID: d.ID, Name: d.Name}
			for _, it := range d.Items {
				od.Allocated += it.Allocated
			}
			out = append(out, od)
		}
		return out, nil
	}
}
