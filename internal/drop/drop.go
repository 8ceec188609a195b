// Package drop holds limited releases: a set of SKUs with allocated
// quantities that go on sale at a set time, behind a waiting room, with a
// per-customer limit.
package drop

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/surge-commerce/surge/internal/catalog"
	"github.com/surge-commerce/surge/internal/waitroom"
)

// Domain errors.
var (
	// ErrNotFound means no such drop.
	ErrNotFound = errors.New("drop not found")
	// ErrInvalid wraps a malformed drop; the message names the field.
	ErrInvalid = errors.New("invalid drop")
	// ErrConflict means the slug is taken or a SKU is in another open drop.
	ErrConflict = errors.New("drop conflict")
	// ErrOverLimit means the buyer would exceed the per-customer limit.
	ErrOverLimit = errors.New("over the per-customer limit")
	// ErrNoAccess means a drop SKU was bought without a valid waiting-room
	// access token for this session.
	ErrNoAccess = errors.New("waiting-room access required")
)

// State is where a drop is in its life.
type State string

// Drop states, from the clock and the closed flag.
const (
	StateScheduled State = "scheduled" // before the start (the pre-queue may be open)
	StateLive      State = "live"
	StateClosed    State = "closed"
)

// Item is one SKU and how many units the drop sells.
type Item struct {
	SKU       string `json:"sku"`
	Allocated int64  `json:"allocated"`
}

// Room holds the waiting-room settings of a drop.
type Room struct {
	// PreQueueOpens is how long before the start visitors may join; all of
	// them get a random position at the start.
	PreQueueOpens Duration `json:"prequeue_opens"`
	// RatePerMinute is how many visitors are admitted per minute.
	RatePerMinute int `json:"rate_per_minute"`
	// MaxActive caps admitted visitors who have not finished.
	MaxActive int `json:"max_active"`
	// NoShowWindow frees the slot of an admitted visitor who does not come.
	NoShowWindow Duration `json:"no_show_window"`
	// AccessTTL is how long an admission lets a visitor shop.
	AccessTTL Duration `json:"access_ttl"`
	// PoWDifficulty, if above 0, asks joiners for a proof of work of that
	// many leading zero bits.
	PoWDifficulty int `json:"pow_difficulty"`
	// AdaptiveLatency, if set, steers the admission rate so checkout p95
	// stays near it; AdaptiveErrorRate caps the checkout error ratio.
	AdaptiveLatency   Duration `json:"adaptive_latency,omitempty"`
	AdaptiveErrorRate float64  `json:"adaptive_error_rate,omitempty"`
}

// Drop is a limited release.
type Drop struct {
	ID               string     `json:"id"`
	Slug             string     `json:"slug"`
	Name             string     `json:"name"`
	Description      string     `json:"description"`
	StartsAt         time.Time  `json:"starts_at"`
	EndsAt           *time.Time `json:"ends_at,omitempty"`
	PerCustomerLimit int64      `json:"per_customer_limit"`
	Items            []Item     `json:"items"`
	Room             Room       `json:"room"`
	Closed           bool       `json:"closed"`
	CreatedAt        time.Time  `json:"created_at"`
}

// StateAt says where the drop is at now.
func (d Drop) StateAt(now time.Time) State {
	switch {
	case d.Closed || (d.EndsAt != nil && !now.Before(*d.EndsAt)):
		return StateClosed
	case now.Before(d.StartsAt):
		return StateScheduled
	}
	return StateLive
}

// HasSKU reports whether the drop sells sku.
func (d Drop) HasSKU(sku string) bool {
	for _, it := range d.Items {
		if it.SKU == sku {
			return true
		}
	}
	return false
}

// Defaults fills unset room settings with values suited to a drop of a few
// thousand units.
func (d *Drop) Defaults() {
	r := &d.Room
	if r.PreQueueOpens == 0 {
		r.PreQueueOpens = Duration(15 * time.Minute)
	}
	if r.RatePerMinute == 0 {
		r.RatePerMinute = 6000
	}
	if r.MaxActive == 0 {
		r.MaxActive = 2000
	}
	if r.AccessTTL == 0 {
		r.AccessTTL = Duration(10 * time.Minute)
	}
	if r.NoShowWindow == 0 {
		// Never longer than the access it waits for.
		r.NoShowWindow = min(Duration(2*time.Minute), r.AccessTTL)
	}
	if d.PerCustomerLimit == 0 {
		d.PerCustomerLimit = 2
	}
}

// Bounds of what a drop may be set to. Anything outside them is refused
// before it is stored (the admin API answers 422 naming the field), so a
// stored drop can always be opened, read back as written, and counted
// without overflow.
const (
	MaxNameLen          = 200
	MaxDescriptionLen   = 20000
	MaxItems            = 50
	MaxAllocated        = 1_000_000 // units of one SKU
	MaxPerCustomerLimit = 99        // a cart line holds at most 99
	MaxRatePerMinute    = 1_000_000
	MaxActive           = 1_000_000
	MaxPreQueueOpens    = 24 * time.Hour
	MinWindow           = time.Second // no_show_window and access_ttl
	MaxAccessTTL        = time.Hour   // the access cookie lives an hour
	MaxPoWDifficulty    = 28
	MinAdaptiveLatency  = 10 * time.Millisecond
	MaxAdaptiveLatency  = time.Minute
)

// Times a drop may start and end within: the stores keep them to the
// nanosecond in 64 bits, which reach the year 2262 (a later time would
// wrap around and be read back as a time in the past).
var (
	earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	latest   = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Validate checks a drop before it is stored, and before it is opened at
// start: every field within its bounds, and the waiting room able to open
// it with these settings (RoomSpec). The error wraps ErrInvalid and names
// the field as the JSON API spells it.
func (d Drop) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	inTime := func(t time.Time) bool { return !t.Before(earliest) && t.Before(latest) }
	dur := func(field string, v Duration, lo, hi time.Duration) error {
		if time.Duration(v) < lo || time.Duration(v) > hi {
			return bad(field, "%s to %s, got %s", lo, hi, time.Duration(v))
		}
		return nil
	}
	switch {
	case !catalog.ValidSlug(d.Slug):
		return bad("slug", "%q: lower-case letters, digits and single hyphens", d.Slug)
	case strings.TrimSpace(d.Name) == "" || len(d.Name) > MaxNameLen:
		return bad("name", "1 to %d characters", MaxNameLen)
	case len(d.Description) > MaxDescriptionLen:
		return bad("description", "at most %d characters", MaxDescriptionLen)
	case d.StartsAt.IsZero():
		return bad("starts_at", "required (RFC 3339)")
	case !inTime(d.StartsAt):
		return bad("starts_at", "from %s to before %s", earliest.Format(time.DateOnly), latest.Format(time.DateOnly))
	case d.EndsAt != nil && !d.EndsAt.After(d.StartsAt):
		return bad("ends_at", "must be after starts_at")
	case d.EndsAt != nil && !inTime(*d.EndsAt):
		return bad("ends_at", "before %s", latest.Format(time.DateOnly))
	case d.PerCustomerLimit < 1 || d.PerCustomerLimit > MaxPerCustomerLimit:
		return bad("per_customer_limit", "1 to %d", MaxPerCustomerLimit)
	case len(d.Items) == 0 || len(d.Items) > MaxItems:
		return bad("items", "1 to %d SKUs", MaxItems)
	}
	seen := map[string]bool{}
	for i, it := range d.Items {
		if !catalog.ValidSKU(it.SKU) || seen[it.SKU] {
			return bad(fmt.Sprintf("items[%d].sku", i), "%q invalid or listed twice", it.SKU)
		}
		seen[it.SKU] = true
		if it.Allocated < 1 || it.Allocated > MaxAllocated {
			return bad(fmt.Sprintf("items[%d].allocated", i), "%s: 1 to %d units", it.SKU, MaxAllocated)
		}
	}
	r := d.Room
	switch {
	case r.RatePerMinute < 1 || r.RatePerMinute > MaxRatePerMinute:
		return bad("room.rate_per_minute", "1 to %d", MaxRatePerMinute)
	case r.MaxActive < 1 || r.MaxActive > MaxActive:
		return bad("room.max_active", "1 to %d", MaxActive)
	case r.PoWDifficulty < 0 || r.PoWDifficulty > MaxPoWDifficulty:
		return bad("room.pow_difficulty", "0 to %d bits", MaxPoWDifficulty)
	case r.AdaptiveErrorRate < 0 || r.AdaptiveErrorRate >= 1:
		return bad("room.adaptive_error_rate", "0 to below 1")
	case r.AdaptiveLatency != 0 && (time.Duration(r.AdaptiveLatency) < MinAdaptiveLatency || time.Duration(r.AdaptiveLatency) > MaxAdaptiveLatency):
		return bad("room.adaptive_latency", "0 (off) or %s to %s", MinAdaptiveLatency, MaxAdaptiveLatency)
	}
	if err := dur("room.prequeue_opens", r.PreQueueOpens, 0, MaxPreQueueOpens); err != nil {
		return err
	}
	if err := dur("room.access_ttl", r.AccessTTL, MinWindow, MaxAccessTTL); err != nil {
		return err
	}
	if w := time.Duration(r.NoShowWindow); w < MinWindow || w > time.Duration(r.AccessTTL) {
		return bad("room.no_show_window", "%s up to room.access_ttl (%s), got %s", MinWindow, time.Duration(r.AccessTTL), w)
	}
	// The room's own rules, so that no drop is stored that it would
	// refuse to open. The checks above name the field for each of them;
	// this one only catches a rule added to the room and not here.
	spec := d.RoomSpec()
	if spec.ID == "" {
		spec.ID = "new" // not stored yet: the store names it
	}
	if err := spec.Validate(); err != nil {
		return bad("room", "%v", err)
	}
	return nil
}

// RoomSpec turns the drop's settings into its waiting room's.
func (d Drop) RoomSpec() waitroom.DropSpec {
	sp := waitroom.DropSpec{
		ID: d.ID, Start: d.StartsAt, PreQueueOpens: time.Duration(d.Room.PreQueueOpens),
		RatePerMinute: d.Room.RatePerMinute, MaxActive: d.Room.MaxActive,
		NoShowWindow: time.Duration(d.Room.NoShowWindow), AccessTTL: time.Duration(d.Room.AccessTTL),
		PoWDifficulty: d.Room.PoWDifficulty,
	}
	if d.EndsAt != nil {
		sp.End = *d.EndsAt
	}
	if d.Room.AdaptiveLatency > 0 || d.Room.AdaptiveErrorRate > 0 {
		sp.Adaptive = &waitroom.AdaptiveTargets{Latency: time.Duration(d.Room.AdaptiveLatency), ErrorRate: d.Room.AdaptiveErrorRate}
	}
	return sp
}

// Store keeps drops.
type Store interface {
	// CreateDrop stores d and allocates its stock: each SKU's on hand is
	// set so that exactly Allocated units are available.
	CreateDrop(ctx context.Context, d Drop) (Drop, error)
	Drops(ctx context.Context) ([]Drop, error)
	DropByID(ctx context.Context, id string) (Drop, error)
	DropBySlug(ctx context.Context, slug string) (Drop, error)
	CloseDrop(ctx context.Context, id string) (Drop, error)
	// Available sums what the drop's SKUs have left (on hand - reserved -
	// sold): zero means sold out for everyone waiting.
	Available(ctx context.Context, id string) (int64, error)
	// OpenDropForSKUs returns the open (not closed) drop selling any of
	// skus, if there is one: the Gate asks it for every cart change and
	// checkout, so it reads what was just written.
	OpenDropForSKUs(ctx context.Context, skus []string) (Drop, bool, error)
}

// Duration is a time.Duration that reads and writes JSON as "90s".
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON reads "90s", "15m" and the like.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %s: want a positive value such as \"90s\" or \"15m\"", b)
	}
	*d = Duration(v)
	return nil
}
