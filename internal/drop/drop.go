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
	if r.NoShowWindow == 0 {
		r.NoShowWindow = Duration(2 * time.Minute)
	}
	if r.AccessTTL == 0 {
		r.AccessTTL = Duration(10 * time.Minute)
	}
	if d.PerCustomerLimit == 0 {
		d.PerCustomerLimit = 2
	}
}

// Validate checks a drop before it is stored.
func (d Drop) Validate() error {
	if !catalog.ValidSlug(d.Slug) {
		return fmt.Errorf("%w: slug %q: lower-case letters, digits and single hyphens", ErrInvalid, d.Slug)
	}
	if strings.TrimSpace(d.Name) == "" || len(d.Name) > 200 {
		return fmt.Errorf("%w: name: 1-200 characters", ErrInvalid)
	}
	if d.StartsAt.IsZero() {
		return fmt.Errorf("%w: starts_at: required (RFC 3339)", ErrInvalid)
	}
	if d.EndsAt != nil && !d.EndsAt.After(d.StartsAt) {
		return fmt.Errorf("%w: ends_at: must be after starts_at", ErrInvalid)
	}
	if d.PerCustomerLimit < 1 || d.PerCustomerLimit > 99 {
		return fmt.Errorf("%w: per_customer_limit: 1 to 99", ErrInvalid)
	}
	if len(d.Items) == 0 || len(d.Items) > 50 {
		return fmt.Errorf("%w: items: 1 to 50 SKUs", ErrInvalid)
	}
	seen := map[string]bool{}
	for _, it := range d.Items {
		if !catalog.ValidSKU(it.SKU) || seen[it.SKU] {
			return fmt.Errorf("%w: items: SKU %q invalid or listed twice", ErrInvalid, it.SKU)
		}
		seen[it.SKU] = true
		if it.Allocated < 1 {
			return fmt.Errorf("%w: items: %s allocated must be at least 1", ErrInvalid, it.SKU)
		}
	}
	r := d.Room
	if r.RatePerMinute < 1 || r.MaxActive < 1 || r.PreQueueOpens < 0 || r.NoShowWindow <= 0 || r.AccessTTL <= 0 {
		return fmt.Errorf("%w: room: rate_per_minute and max_active must be positive, windows positive", ErrInvalid)
	}
	if r.PoWDifficulty < 0 || r.PoWDifficulty > 28 {
		return fmt.Errorf("%w: room.pow_difficulty: 0 to 28 bits", ErrInvalid)
	}
	if r.AdaptiveErrorRate < 0 || r.AdaptiveErrorRate > 1 {
		return fmt.Errorf("%w: room.adaptive_error_rate: 0 to 1", ErrInvalid)
	}
	return nil
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
