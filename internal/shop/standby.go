package shop

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/surge-commerce/surge/internal/waitroom"
)

// StandbyDrop is the waiting room's ID for the standby line.
const StandbyDrop = "standby"

// loadMeter counts requests in flight and keeps recent latencies, which
// is what turns the standby waiting room on and off.
type loadMeter struct {
	inFlight atomic.Int64
	mu       sync.Mutex
	recent   []time.Duration // since the last reading, at most 4096
}

func (m *loadMeter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inFlight.Add(1)
		start := time.Now()
		defer func() {
			d := time.Since(start)
			m.inFlight.Add(-1)
			m.mu.Lock()
			if len(m.recent) < 4096 {
				m.recent = append(m.recent, d)
			}
			m.mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

// read returns the requests in flight and the p95 latency since the last
// reading.
func (m *loadMeter) read() (int, time.Duration) {
	m.mu.Lock()
	lat := m.recent
	m.recent = make([]time.Duration, 0, cap(lat))
	m.mu.Unlock()
	var p95 time.Duration
	if len(lat) > 0 {
		slices.Sort(lat)
		p95 = lat[len(lat)*95/100]
	}
	return int(m.inFlight.Load()), p95
}

// openStandby sets up the standby line from cfg, or does nothing when it
// is off.
func (s *Shop) openStandby(ctx context.Context, cfg Config) error {
	if !cfg.Standby {
		return nil
	}
	sb, err := waitroom.NewStandby(waitroom.StandbyConfig{
		Paths: []string{"/"},
		// The line itself, drops (which have their own), assets, the
		// admin API and the operations endpoints are never held back.
		Except:   []string{"/queue", "/drops/", "/api/v1/drops/", "/api/v1/admin/", "/api/v1/payments/", "/static/", "/favicon.ico", "/robots.txt"},
		OnActive: cfg.StandbyOnActive, OffActive: cfg.StandbyOnActive * 6 / 10,
		OnLatency: cfg.StandbyOnLatency, OffLatency: cfg.StandbyOnLatency / 4,
	})
	if err != nil {
		return err
	}
	if err := s.Room.Open(ctx, waitroom.DropSpec{ID: StandbyDrop, Mode: waitroom.ModeStandby, Standby: sb,
		RatePerMinute: cfg.StandbyRate, MaxActive: cfg.StandbyMaxActive, AccessTTL: 30 * time.Minute, NoShowWindow: 2 * time.Minute}); err != nil {
		return err
	}
	s.Standby = sb
	s.meter = &loadMeter{}
	return nil
}

// watchLoad feeds the standby switch every second.
func (s *Shop) watchLoad(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			active, p95 := s.meter.read()
			if s.Standby.Observe(active, p95) {
				s.log.Warn("standby waiting room changed", "on", s.Standby.Active(), "in_flight", active, "p95", p95.String())
			}
		}
	}
}
