package drop

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestDefaultsAreValid: any access time in bounds, given alone, gets
// defaults the drop (and its waiting room) accept.
func TestDefaultsAreValid(t *testing.T) {
	for _, access := range []time.Duration{MinWindow, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, MaxAccessTTL} {
		d := Drop{Slug: "d", Name: "D", StartsAt: time.Now(), Items: []Item{{SKU: "S-1", Allocated: 1}},
			Room: Room{AccessTTL: Duration(access)}}
		d.Defaults()
		if err := d.Validate(); err != nil {
			t.Errorf("access_ttl %s with defaults: %v", access, err)
		}
		if err := d.RoomSpec().Validate(); err == nil {
			t.Errorf("a spec without an ID passed the room's validation")
		}
	}
}

// TestValidateNamesTheField: each refusal wraps ErrInvalid and names the
// field as the JSON API spells it.
func TestValidateNamesTheField(t *testing.T) {
	valid := func() Drop {
		d := Drop{Slug: "d", Name: "D", StartsAt: time.Now(), Items: []Item{{SKU: "S-1", Allocated: 1}}}
		d.Defaults()
		return d
	}
	far := time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)
	for field, change := range map[string]func(d *Drop){
		"slug":                     func(d *Drop) { d.Slug = "Bad Slug" },
		"starts_at":                func(d *Drop) { d.StartsAt = far },
		"ends_at":                  func(d *Drop) { e := far; d.EndsAt = &e },
		"items[0].allocated":       func(d *Drop) { d.Items[0].Allocated = 1 << 62 },
		"room.no_show_window":      func(d *Drop) { d.Room.NoShowWindow = d.Room.AccessTTL + 1 },
		"room.access_ttl":          func(d *Drop) { d.Room.AccessTTL = Duration(2 * time.Hour) },
		"room.rate_per_minute":     func(d *Drop) { d.Room.RatePerMinute = 1 << 40 },
		"room.adaptive_error_rate": func(d *Drop) { d.Room.AdaptiveErrorRate = 1 },
	} {
		d := valid()
		change(&d)
		if err := d.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), field+":") {
			t.Errorf("%s: %v; want ErrInvalid naming it", field, err)
		}
	}
}
