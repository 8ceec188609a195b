package dropreport

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/surge-commerce/surge/internal/drop"
)

// Report is what happened at one drop.
type Report struct {
	Drop struct {
		ID        string    `json:"id"`
		Slug      string    `json:"slug"`
		Name      string    `json:"name"`
		StartsAt  time.Time `json:"starts_at"`
		Allocated int64     `json:"allocated"`
		Limit     int64     `json:"per_customer_limit"`
	} `json:"drop"`
	Funnel Funnel `json:"funnel"`
	// UnitsSold and Orders count the purchases that stand (pending or
	// paid orders).
	UnitsSold int64 `json:"units_sold"`
	Orders    int64 `json:"orders"`
	// TimeInLine is the time from joining (or from the start, for those
	// who joined before it) to admission, over the admitted visitors who
	// came back to learn it.
	TimeInLine Percentiles `json:"time_in_line"`
	// SoldOutAfter is from the start to the order that took the last
	// allocated unit; nil while units are left.
	SoldOutAfter *Seconds `json:"sold_out_after_seconds"`
	// OrdersPerMinute is the mean from the start to the sell-out (or the
	// last order); PeakOrdersPerMinute the busiest minute after the start.
	OrdersPerMinute     float64 `json:"orders_per_minute"`
	PeakOrdersPerMinute int64   `json:"peak_orders_per_minute"`
	// Refused are the joins and status checks the line turned away, by
	// reason: the bot pressure on it.
	Refused []Refusal `json:"refused"`
	// LimitHits are the buyers who asked for more than the per-customer
	// limit (LimitRequests the times they did).
	LimitHits     int64 `json:"limit_hits"`
	LimitRequests int64 `json:"limit_requests"`
	// LostEvents counts events the shop could not record: when above 0,
	// the counts that come from events are lower bounds.
	LostEvents int64 `json:"lost_events"`
	// LineAt is when the line's counters were last copied from the
	// waiting room (nil: never, so joins, admissions and no-shows are
	// not known).
	LineAt *time.Time `json:"line_counted_at"`
}

// Funnel follows the drop's visitors from the reminder to the order.
type Funnel struct {
	// Notified is nil when nothing counts the reminders sent ("not
	// tracked", which is not zero).
	Notified          *int64 `json:"notified"`
	JoinedBeforeStart int64  `json:"joined_before_start"`
	JoinedAfterStart  int64  `json:"joined_after_start"`
	Admitted          int64  `json:"admitted"`
	NoShows           int64  `json:"no_shows"`
	Added             int64  `json:"added"`
	Bought            int64  `json:"bought"`
	ToldSoldOut       int64  `json:"told_sold_out"`
}

// Percentiles of a duration, in seconds.
type Percentiles struct {
	Samples int      `json:"samples"`
	P50     *Seconds `json:"p50_seconds"`
	P99     *Seconds `json:"p99_seconds"`
}

// Refusal counts the refused requests of one reason.
type Refusal struct {
	Reason   string `json:"reason"`
	Requests int64  `json:"requests"`
	Visitors int64  `json:"visitors"`
}

// Seconds is a duration that writes JSON as a number of seconds.
type Seconds time.Duration

// MarshalJSON writes the seconds with millisecond precision.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%.3f", time.Duration(s).Seconds())), nil
}

// UnmarshalJSON reads a number of seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if _, err := fmt.Sscan(string(b), &f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("seconds: %s is not a number", b)
	}
	*s = Seconds(time.Duration(f * float64(time.Second)))
	return nil
}

// Duration is s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) }

// Build reads the drop's activity from store and makes its report.
// notified may be nil: the funnel then says the reminders are not tracked.
func Build(ctx context.Context, store Store, notified NotifiedCounter, d drop.Drop) (Report, error) {
	a, err := store.DropActivity(ctx, d.ID)
	if err != nil {
		return Report{}, fmt.Errorf("drop %s activity: %w", d.ID, err)
	}
	var n *int64
	if notified != nil {
		k, err := notified.DropNotified(ctx, d.ID)
		if err != nil {
			return Report{}, fmt.Errorf("drop %s reminders sent: %w", d.ID, err)
		}
		n = &k
	}
	return Compute(d, a, n), nil
}

// Compute makes the report of drop d from its activity. notified is nil
// when the reminders are not tracked.
func Compute(d drop.Drop, a Activity, notified *int64) Report {
	var r Report
	r.Drop.ID, r.Drop.Slug, r.Drop.Name, r.Drop.StartsAt, r.Drop.Limit = d.ID, d.Slug, d.Name, d.StartsAt, d.PerCustomerLimit
	for _, it := range d.Items {
		r.Drop.Allocated += it.Allocated
	}
	r.Funnel.Notified = notified
	if a.HasLine {
		at := a.Line.At
		r.LineAt = &at
		r.Funnel.JoinedBeforeStart = int64(a.Line.PreQueue)
		r.Funnel.JoinedAfterStart = int64(a.Line.Joined - min(a.Line.PreQueue, a.Line.Joined))
		r.Funnel.Admitted = int64(a.Line.Admitted)
		r.Funnel.NoShows = int64(a.Line.NoShows)
	}
	reasons := []string{ReasonRateLimit, ReasonProofOfWork, ReasonBadToken}
	refused := map[string]*Refusal{}
	for _, reason := range reasons {
		refused[reason] = &Refusal{Reason: reason}
	}
	for _, t := range a.Tallies {
		switch t.Kind {
		case KindAdded:
			r.Funnel.Added += t.Visitors
		case KindToldSoldOut:
			r.Funnel.ToldSoldOut += t.Visitors
		case KindLimit:
			r.LimitHits += t.Visitors
			r.LimitRequests += t.Events
		case KindLost:
			r.LostEvents += t.Quantity
		case KindRefused:
			if f := refused[t.Reason]; f != nil {
				f.Requests += t.Events
				f.Visitors += t.Visitors
			}
		}
	}
	for _, reason := range reasons {
		r.Refused = append(r.Refused, *refused[reason])
	}
	r.TimeInLine = percentiles(a.Waits)

	buyers := map[string]bool{}
	perMinute := map[int64]int64{}
	var sold int64
	var last time.Time
	for _, p := range a.Purchases {
		buyers[p.Buyer] = true
		r.Orders++
		r.UnitsSold += p.Quantity
		sold += p.Quantity
		last = p.At
		if m := int64(p.At.Sub(d.StartsAt) / time.Minute); p.At.After(d.StartsAt) || p.At.Equal(d.StartsAt) {
			perMinute[m]++
			r.PeakOrdersPerMinute = max(r.PeakOrdersPerMinute, perMinute[m])
		}
		if r.SoldOutAfter == nil && r.Drop.Allocated > 0 && sold >= r.Drop.Allocated {
			s := Seconds(max(0, p.At.Sub(d.StartsAt)))
			r.SoldOutAfter = &s
		}
	}
	r.Funnel.Bought = int64(len(buyers))
	if r.Orders > 0 {
		end := last
		if r.SoldOutAfter != nil {
			end = d.StartsAt.Add(r.SoldOutAfter.Duration())
		}
		// At least a minute: a drop that sold out in ten seconds sold at
		// its order count per minute, not six times that.
		window := max(end.Sub(d.StartsAt), time.Minute)
		var n int
		for _, p := range a.Purchases {
			if !p.At.After(end) {
				n++
			}
		}
		r.OrdersPerMinute = math.Round(float64(n)/window.Minutes()*10) / 10
	}
	return r
}

// percentiles gives the nearest-rank p50 and p99 of ds.
func percentiles(ds []time.Duration) Percentiles {
	p := Percentiles{Samples: len(ds)}
	if len(ds) == 0 {
		return p
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(q float64) *Seconds {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		v := Seconds(s[max(0, min(i, len(s)-1))])
		return &v
	}
	p.P50, p.P99 = rank(0.50), rank(0.99)
	return p
}
