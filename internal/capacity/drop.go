package capacity

import (
	"math"
	"time"

	"github.com/surge-commerce/surge/internal/waitroom"
)

// DropPlan is the waiting room's settings for a drop and what buyers
// should expect.
type DropPlan struct {
	Phase  string `json:"phase"`
	Buyers int64  `json:"buyers"`
	Units  int64  `json:"units"`
	// AdmitPerMinute and ActiveCap are the room's rate_per_minute and
	// max_active: the fastest admission whose add-to-cart and checkout
	// load, with the line's joins and status polls and the ordinary
	// traffic, keeps the phase's API pods at the target utilisation.
	AdmitPerMinute int     `json:"rate_per_minute"`
	ActiveCap      float64 `json:"max_active"`
	APIReplicas    int     `json:"api_replicas"`
	// SellOut is seconds from the drop's start until the last unit is
	// taken (-1: not within the phase).
	SellOut float64 `json:"sell_out_s"`
	// Waits of the buyers who were admitted, in seconds.
	WaitMedian float64 `json:"wait_median_s"`
	WaitMax    float64 `json:"wait_max_s"`
	// Admitted buyers, and those told sold out while in line.
	Admitted    float64 `json:"admitted"`
	ToldSoldOut float64 `json:"told_sold_out"`
	PeakWaiting float64 `json:"peak_waiting"`
	// PeakRequests is the drop's own load at its peak, by class.
	PeakRequests map[string]float64 `json:"peak_requests_per_s"`
	// Line is the line over time: seconds, waiting, admitted per second.
	Line []LinePoint `json:"line"`
}

// LinePoint is one second of the drop's line.
type LinePoint struct {
	T        float64 `json:"t"`
	Waiting  float64 `json:"waiting"`
	Admitted float64 `json:"admitted_per_s"`
	Units    float64 `json:"units_left"`
}

// statusRate is the status polls per second of q buyers waiting in a
// line that admits a buyers per second: the buyer at place k waits k/a
// and polls as the waiting room tells it (waitroom.PollInterval: a third
// of the estimated wait, between 2 s and 30 s). The sum over the places is
// taken over geometrically growing stretches of the line, at most 64,
// each at its middle place, so a line of a million costs what one of a
// hundred does.
func statusRate(q, a float64) float64 {
	if q <= 0 {
		return 0
	}
	perSecond := func(k float64) float64 {
		var wait time.Duration
		if a > 0 {
			wait = time.Duration(k / a * float64(time.Second))
		}
		return 1 / waitroom.PollInterval(wait).Seconds()
	}
	lo := math.Min(q, 1)
	r := lo * perSecond(lo/2)
	ratio := math.Max(1.05, math.Pow(q/lo, 1.0/63))
	for lo < q {
		hi := math.Min(q, lo*ratio)
		r += (hi - lo) * perSecond(math.Sqrt(lo*hi))
		lo = hi
	}
	return r
}

// lineSim runs the line second by second at admission rate a (buyers/s).
func lineSim(d *Drop, phase time.Duration, a float64, keep bool) (dp DropPlan, peakLoad map[string]float64, series []map[string]float64) {
	var q, admitted, arrived, sold float64
	units := float64(d.Units)
	perBuyer := float64(d.Quantity) * d.Conversion
	dp.SellOut = -1
	type cohort struct{ t, n float64 }
	var arrivals []cohort // cumulative arrivals by second, for FIFO waits
	var adm []cohort
	soldOutAt := -1.0
	peakLoad = map[string]float64{}
	for s := 0; s < int(phase.Seconds()); s++ {
		in := d.DropArrivals(time.Duration(s) * time.Second)
		if soldOutAt < 0 {
			q += in
			arrived += in
			arrivals = append(arrivals, cohort{float64(s), arrived})
		}
		var out float64
		if soldOutAt < 0 {
			out = math.Min(q, a)
			if left := (units - sold) / perBuyer; out > left {
				out = left
			}
			q -= out
			admitted += out
			sold += out * perBuyer
			adm = append(adm, cohort{float64(s), admitted})
			if sold >= units-1e-9 {
				soldOutAt = float64(s + 1)
				dp.SellOut = soldOutAt
				dp.ToldSoldOut = q + 0 // everyone still waiting hears it now
			}
		}
		dp.PeakWaiting = math.Max(dp.PeakWaiting, q)
		if keep && (s%5 == 0 || s < 120) {
			dp.Line = append(dp.Line, LinePoint{T: float64(s), Waiting: q, Admitted: out, Units: math.Max(0, units-sold)})
		}
		status := statusRate(q, a)
		if soldOutAt >= 0 {
			q = 0
			status = 0
		}
		load := map[string]float64{DropJoin: in, DropStatus: status, CachedPage: out, AddToCart: out, Checkout: out * d.Conversion}
		for k, v := range load {
			peakLoad[k] = math.Max(peakLoad[k], v)
		}
		if keep {
			series = append(series, load)
		}
	}
	if soldOutAt < 0 {
		dp.ToldSoldOut = 0
	}
	dp.Admitted = admitted
	// FIFO waits: the k-th buyer arrives when the arrivals curve reaches k
	// and is admitted when the admissions curve does.
	when := func(c []cohort, k float64) float64 {
		for _, x := range c {
			if x.n >= k-1e-9 {
				return x.t
			}
		}
		return -1
	}
	if admitted > 0 {
		dp.WaitMedian = math.Max(0, when(adm, admitted/2)-when(arrivals, admitted/2))
		for _, f := range []float64{0.25, 0.5, 0.75, 0.9, 0.99, 1} {
			k := admitted * f
			dp.WaitMax = math.Max(dp.WaitMax, when(adm, k)-when(arrivals, k))
		}
	}
	return dp, peakLoad, series
}

// planDrop picks the admission rate: the fastest the API pods can carry
// on top of the line and the ordinary traffic, found by sizing the pods
// for the rate that sells the units out over the arrival window and then
// filling their headroom.
func (m *model) planDrop(ph Phase, background map[string]float64, _ time.Duration) DropPlan {
	d := ph.Drop
	perBuyer := float64(d.Quantity) * d.Conversion
	buyersNeeded := math.Min(float64(d.Buyers), float64(d.Units)/perBuyer)
	a := math.Max(buyersNeeded/d.Within.D().Seconds(), 1.0/60)
	// Size for a, then admit as fast as the sized pods allow.
	_, load, _ := lineSim(d, ph.For.D(), a, false)
	rates := merge(background, load)
	pp := PhasePlan{Requests: rates}
	m.sizeReplicasOnly(&pp)
	budget := m.e.TargetUtilization * m.apiCPU * float64(pp.APIReplicas)
	// No faster than the buyers the units need, in one second: faster
	// admits nobody more (the units are gone) and would only tell the
	// room a rate and an active cap no drop could use.
	lo, hi := a, math.Max(a, math.Ceil(buyersNeeded))
	for range 50 {
		mid := (lo + hi) / 2
		_, l, _ := lineSim(d, ph.For.D(), mid, false)
		r := merge(background, l)
		if _, why := m.predict(r, pp.APIReplicas); why == "" && m.podCPU(r) <= budget*(1+1e-9) {
			lo = mid
		} else {
			hi = mid
		}
	}
	a = math.Floor(lo*60) / 60
	dp, peak, _ := lineSim(d, ph.For.D(), a, true)
	dp.Phase, dp.Buyers, dp.Units = ph.Name, d.Buyers, d.Units
	dp.AdmitPerMinute = int(math.Round(a * 60))
	dp.ActiveCap = math.Min(math.Ceil(a*d.Shopping.D().Seconds()), math.Ceil(buyersNeeded))
	dp.PeakRequests = peak
	return dp
}

func (m *model) sizeReplicasOnly(pp *PhasePlan) {
	podCores := m.podCPU(pp.Requests)
	if m.fixed {
		pp.APIReplicas = m.e.Pods.Replicas
		return
	}
	pp.APIReplicas = max(1, m.cluster.HPA.MinReplicas, int(math.Ceil(podCores/(m.e.TargetUtilization*m.apiCPU)-1e-9)))
}

func merge(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}
