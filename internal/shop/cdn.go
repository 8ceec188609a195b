package shop

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/surge-commerce/surge/internal/cdnpurge"
)

// openCDN starts the client that forwards this replica's cache purges to
// the CDN instances in front of the shop, when any are configured.
func (s *Shop) openCDN(cfg Config, log *slog.Logger, reg prometheus.Registerer) error {
	if len(cfg.CDN.URLs) == 0 {
		return nil
	}
	c := cfg.CDN
	c.Logger = log
	cdn, err := cdnpurge.New(c)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, cdn.Close)
	if err := cdn.Register(reg); err != nil {
		return err
	}
	s.cdn = cdn
	return nil
}

// purgeCDN forwards a purge this replica applied to its own caches to the
// CDN. It runs after the local purge, and on every replica that applies
// one (including those that follow another replica's purge through
// Redis): a CDN refill that lands on a replica not yet purged would store
// the old page again, so the last replica to purge also purges the CDN
// after it. It never blocks on the network.
func (s *Shop) purgeCDN(all bool, tags []string) {
	if s.cdn == nil {
		return
	}
	if all {
		s.cdn.PurgeAll()
		return
	}
	s.cdn.Purge(tags...)
}
