package shop

import (
	"context"

	"github.com/surge-commerce/surge/internal/storefront"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// openStandby opens the standby line from cfg, or does nothing when it is
// off.
func (s *Shop) openStandby(ctx context.Context, cfg Config) error {
	if !cfg.Standby {
		return nil
	}
	sb, err := s.Room.OpenStandby(ctx, waitroom.StandbyLine{OnActive: cfg.StandbyOnActive, OnLatency: cfg.StandbyOnLatency,
		RatePerMinute: cfg.StandbyRate, MaxActive: cfg.StandbyMaxActive, Paths: []string{"/"}, Except: storefront.StandbyExempt()})
	if err != nil {
		return err
	}
	s.Standby = sb
	return nil
}
