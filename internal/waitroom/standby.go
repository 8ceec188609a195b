package waitroom

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StandbyDrop is the waiting room's ID for the standby line.
const StandbyDrop = "standby"

// StandbyLine is the standby line as an operator sets it up (see
// Room.OpenStandby).
type StandbyLine struct {
	// OnActive requests in flight, or a p95 latency of OnLatency, turn
	// the line on; it turns off again below 60% of OnActive and a
	// quarter of OnLatency.
	OnActive  int
	OnLatency time.Duration
	// RatePerMinute visitors are let in a minute, with at most MaxActive
	// of them still shopping.
	RatePerMinute, MaxActive int
	// Paths and Except are the path prefixes the line holds back and
	// those it never does, as in StandbyConfig.
	Paths, Except []string
}

// OpenStandby opens the standby line in r (ID StandbyDrop) and returns
// the Standby that switches it on and off; feed that with the shop's
// requests (Begin and End) and run its Watch. A visitor let in may shop
// for 30 minutes, and loses the slot after 2 if they do not come.
func (r *Room) OpenStandby(ctx context.Context, line StandbyLine) (*Standby, error) {
	sb, err := NewStandby(StandbyConfig{
		Paths: line.Paths, Except: line.Except,
		// The gaps between on and off keep the line from flapping.
		OnActive: line.OnActive, OffActive: line.OnActive * 6 / 10,
		OnLatency: line.OnLatency, OffLatency: line.OnLatency / 4,
	})
	if err != nil {
		return nil, err
	}
	if err := r.Open(ctx, DropSpec{ID: StandbyDrop, Mode: ModeStandby, Standby: sb,
		RatePerMinute: line.RatePerMinute, MaxActive: line.MaxActive, AccessTTL: 30 * time.Minute, NoShowWindow: 2 * time.Minute}); err != nil {
		return nil, err
	}
	return sb, nil
}

// StandbyConfig configures a Standby trigger. The queue turns on when
// active users reach OnActive or p95 latency reaches OnLatency (either
// one), and off only when both are back at or below OffActive and
// OffLatency and it has been on for MinOn: the gap between the on and off
// thresholds, and the minimum time on, keep it from flapping.
type StandbyConfig struct {
	// Paths are the URL path prefixes the queue protects ("/" is the
	// whole shop). A prefix matches itself and what lies below it at a
	// "/" boundary: "/products" matches "/products" and "/products/x",
	// not "/productsale".
	Paths []string
	// Except are prefixes never protected even under Paths: the waiting
	// room's own page and API, static assets, health checks.
	Except []string
	// OnActive and OffActive are active-user thresholds; OnActive 0
	// ignores active users. OffActive must be below OnActive.
	OnActive, OffActive int
	// OnLatency and OffLatency are p95 latency thresholds; OnLatency 0
	// ignores latency. OffLatency must be below OnLatency.
	OnLatency, OffLatency time.Duration
	// MinOn is the least time the queue stays on (default 1 minute).
	MinOn time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Standby decides when standby mode is in force. Feed it with Observe
// (every few seconds, from the shop's live numbers), or have it measure
// them itself: every request between Begin and End, read by Watch. Room
// consults Active for a ModeStandby drop, and the HTTP gate consults
// Protects. Each time it turns on an episode begins, and the Room starts
// that drop's queue afresh.
type Standby struct {
	cfg     StandbyConfig
	active  atomic.Bool
	episode atomic.Uint64
	mu      sync.Mutex
	since   time.Time
	mode    StandbyMode

	inFlight atomic.Int64
	recentMu sync.Mutex
	recent   []time.Duration // latencies since the last reading, at most maxRecent
}

// maxRecent bounds the latencies kept between two readings.
const maxRecent = 4096

// StandbyMode is who switches the standby line: the load (auto), or the
// operator, who holds it on or off whatever the load.
type StandbyMode string

// The standby line's modes.
const (
	StandbyAuto StandbyMode = "auto"
	StandbyOn   StandbyMode = "on"
	StandbyOff  StandbyMode = "off"
)

// SetMode switches the line by hand (StandbyOn, StandbyOff) or hands it
// back to the load (StandbyAuto). Held on, it is on at once, a new
// episode when it was off; back in auto from on, it stays on until the
// load has been calm and it has been on for MinOn, as if the load had
// turned it on.
func (s *Standby) SetMode(m StandbyMode) error {
	switch m {
	case StandbyAuto, StandbyOn, StandbyOff:
	default:
		return fmt.Errorf("%w: standby mode %q: want auto, on or off", ErrInvalid, m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
	s.applyMode()
	return nil
}

// applyMode turns the line on or off as a hand-set mode says; s.mu held.
func (s *Standby) applyMode() {
	switch s.mode {
	case StandbyOn:
		s.turnOn()
	case StandbyOff:
		s.active.Store(false)
	}
}

// turnOn starts an episode unless the line is on; s.mu held.
func (s *Standby) turnOn() {
	if s.active.Load() {
		return
	}
	s.episode.Add(1)
	s.since = s.cfg.Now()
	s.active.Store(true)
}

// Mode is how the line is switched now.
func (s *Standby) Mode() StandbyMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == "" {
		return StandbyAuto
	}
	return s.mode
}

// Since is when the line last turned on; zero while it is off.
func (s *Standby) Since() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.active.Load() {
		return time.Time{}
	}
	return s.since
}

// NewStandby returns a Standby that is off.
func NewStandby(cfg StandbyConfig) (*Standby, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinOn <= 0 {
		cfg.MinOn = time.Minute
	}
	switch {
	case cfg.OnActive <= 0 && cfg.OnLatency <= 0:
		return nil, fmt.Errorf("%w: standby: set OnActive or OnLatency", ErrInvalid)
	case cfg.OnActive > 0 && (cfg.OffActive < 0 || cfg.OffActive >= cfg.OnActive):
		return nil, fmt.Errorf("%w: standby: OffActive must be in [0, OnActive)", ErrInvalid)
	case cfg.OnLatency > 0 && (cfg.OffLatency < 0 || cfg.OffLatency >= cfg.OnLatency):
		return nil, fmt.Errorf("%w: standby: OffLatency must be in [0, OnLatency)", ErrInvalid)
	case len(cfg.Paths) == 0:
		return nil, fmt.Errorf("%w: standby: no Paths to protect", ErrInvalid)
	}
	for _, p := range append(append([]string(nil), cfg.Paths...), cfg.Except...) {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("%w: standby: path %q must start with /", ErrInvalid, p)
		}
	}
	return &Standby{cfg: cfg}, nil
}

// Observe takes the current number of active users and p95 latency and
// returns whether standby mode is now on.
func (s *Standby) Observe(active int, p95 time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == StandbyOn || s.mode == StandbyOff {
		s.applyMode()
		return s.active.Load()
	}
	now := s.cfg.Now()
	c := s.cfg
	if !s.active.Load() {
		if (c.OnActive > 0 && active >= c.OnActive) || (c.OnLatency > 0 && p95 >= c.OnLatency) {
			s.turnOn()
		}
		return s.active.Load()
	}
	calm := (c.OnActive <= 0 || active <= c.OffActive) && (c.OnLatency <= 0 || p95 <= c.OffLatency)
	if calm && now.Sub(s.since) >= c.MinOn {
		s.active.Store(false)
	}
	return s.active.Load()
}

// Begin counts a request in flight until End is called with what it
// returned.
func (s *Standby) Begin() time.Time {
	s.inFlight.Add(1)
	return time.Now()
}

// End ends a request Begin counted and keeps its latency for the next
// reading.
func (s *Standby) End(start time.Time) {
	d := time.Since(start)
	s.inFlight.Add(-1)
	s.recentMu.Lock()
	if len(s.recent) < maxRecent {
		s.recent = append(s.recent, d)
	}
	s.recentMu.Unlock()
}

// load returns the requests in flight and the p95 latency of those ended
// since the last reading.
func (s *Standby) load() (int, time.Duration) {
	s.recentMu.Lock()
	lat := s.recent
	s.recent = make([]time.Duration, 0, cap(lat))
	s.recentMu.Unlock()
	var p95 time.Duration
	if len(lat) > 0 {
		slices.Sort(lat)
		p95 = lat[len(lat)*95/100]
	}
	return int(s.inFlight.Load()), p95
}

// Watch observes the load of the requests counted by Begin and End every
// interval until ctx ends, logging while standby mode is on.
func (s *Standby) Watch(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			active, p95 := s.load()
			if s.Observe(active, p95) {
				log.Warn("standby waiting room changed", "on", s.Active(), "in_flight", active, "p95", p95.String())
			}
		}
	}
}

// Active reports whether standby mode is on.
func (s *Standby) Active() bool { return s.active.Load() }

// Episode counts the times standby mode turned on.
func (s *Standby) Episode() uint64 { return s.episode.Load() }

// Protects reports whether path is behind the standby queue (whether or
// not it is on).
func (s *Standby) Protects(path string) bool {
	for _, p := range s.cfg.Except {
		if underPrefix(path, p) {
			return false
		}
	}
	for _, p := range s.cfg.Paths {
		if underPrefix(path, p) {
			return true
		}
	}
	return false
}

func underPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}
