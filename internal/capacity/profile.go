// Package capacity is Surge's capacity planner: a cost model measured on a
// running shop (the profile), events described as arrival profiles, the
// plan that turns one into the other (replicas per component and phase, the
// waiting room's admission rate, a pre-scaling timeline), a simulation of
// the Kubernetes HPA against the same arrivals, and the manifests that
// apply the plan. Everything here but calibration is pure computation.
package capacity

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"time"

	"go.yaml.in/yaml/v3"
)

// The request classes calibration measures and plans are made of.
const (
	CachedPage   = "cached_page"   // a page or catalog read served from the full-page cache
	UncachedPage = "uncached_page" // a category page rendered from the database (a filter the cache has not seen)
	Search       = "search"        // a search results page (full-text query, not cached)
	AddToCart    = "add_to_cart"   // POST /api/v1/cart/items, a new guest session each
	Checkout     = "checkout"      // POST /api/v1/checkout with the order pipeline's work (payment, stock, mail)
	DropJoin     = "drop_join"     // POST /api/v1/drops/{id}/queue/join
	DropStatus   = "drop_status"   // GET /api/v1/drops/{id}/queue
)

// Classes lists every request class in the order calibration runs them
// (each later one may subtract the cost of earlier ones).
var Classes = []string{CachedPage, UncachedPage, Search, AddToCart, Checkout, DropJoin, DropStatus}

// Components a request spends CPU in.
type Components struct {
	API      float64 `yaml:"api" json:"api"`
	Worker   float64 `yaml:"worker" json:"worker"`
	Database float64 `yaml:"database" json:"database"`
	NATS     float64 `yaml:"nats" json:"nats"`
	Redis    float64 `yaml:"redis" json:"redis"`
}

// Add returns c + o×f.
func (c Components) Add(o Components, f float64) Components {
	return Components{c.API + o.API*f, c.Worker + o.Worker*f, c.Database + o.Database*f, c.NATS + o.NATS*f, c.Redis + o.Redis*f}
}

func (c Components) atLeastZero() Components {
	return Components{max(c.API, 0), max(c.Worker, 0), max(c.Database, 0), max(c.NATS, 0), max(c.Redis, 0)}
}

// Total is the CPU over every component.
func (c Components) Total() float64 { return c.API + c.Worker + c.Database + c.NATS + c.Redis }

// Profile is a capacity profile: what each request class costs on one
// replica, measured by `surge plan calibrate`, never typed in.
type Profile struct {
	Version int       `yaml:"version" json:"version"`
	Taken   time.Time `yaml:"taken" json:"taken"`
	Machine Machine   `yaml:"machine" json:"machine"`
	Target  Target    `yaml:"target" json:"target"`
	// Classes holds the cost of each request class that was measured.
	Classes map[string]*ClassCost `yaml:"classes" json:"classes"`
	Memory  Memory                `yaml:"memory" json:"memory"`
	Conns   Connections           `yaml:"connections" json:"connections"`
	// Unmeasured names each class calibration was asked for but could not
	// measure, and why; a plan whose mix needs one says so.
	Unmeasured map[string]string `yaml:"not_measured,omitempty" json:"not_measured,omitempty"`
	// Notes say what else was not measured and why.
	Notes []string `yaml:"notes,omitempty" json:"notes,omitempty"`
}

// Machine is where the profile was taken.
type Machine struct {
	Host     string  `yaml:"host" json:"host"`
	OS       string  `yaml:"os" json:"os"`
	CPUModel string  `yaml:"cpu_model" json:"cpu_model"`
	CPUs     int     `yaml:"cpus" json:"cpus"`
	LoadAvg  float64 `yaml:"load_average" json:"load_average"` // 1-minute, when calibration started
	Planner  string  `yaml:"planner_version" json:"planner_version"`
}

// Target is the replica that was measured.
type Target struct {
	URL     string `yaml:"url" json:"url"`
	Version string `yaml:"version" json:"version"` // surge_build_info or the Server header, "unknown" when neither says
	// Cores is the CPU the replica could use: its GOMAXPROCS, which Go
	// sets from the CPUs the process may run on (taskset, cgroup quota).
	Cores float64 `yaml:"cores" json:"cores"`
	// Embedded lists the components that ran inside the replica's process
	// (the embedded SQLite, NATS and in-process session store): their CPU
	// is measured apart from the API's by CPU profile, but it loads the
	// same cores.
	Embedded []string `yaml:"embedded,omitempty" json:"embedded,omitempty"`
	// Worker says whether the order pipeline ran in the API process
	// (role all) or in its own, measured through --worker-admin.
	Worker string `yaml:"worker" json:"worker"`
}

// ClassCost is what one request of a class costs, and how the replica
// behaved as its rate went up.
type ClassCost struct {
	CPU Components `yaml:"cpu_seconds" json:"cpu_seconds"` // per request
	// Requests counts the requests of this class the figures rest on.
	Requests int64 `yaml:"requests" json:"requests"`
	// Events is NATS messages published per request; RedisOps is Redis
	// commands per request (0 when Redis was not measured).
	Events   float64 `yaml:"events_per_request" json:"events_per_request"`
	RedisOps float64 `yaml:"redis_ops_per_request" json:"redis_ops_per_request"`
	// SLO is the p99 the knee was judged against.
	SLO Duration `yaml:"slo_p99" json:"slo_p99"`
	// KneeRate is the highest rate (requests/s on this replica) at which
	// p99 stayed within SLO with under 1% errors; KneeUtilization is the
	// replica's CPU use there (of Target.Cores). Saturated says the steps
	// reached past the knee; false means the knee is at least KneeRate.
	KneeRate        float64 `yaml:"knee_rate" json:"knee_rate"`
	KneeUtilization float64 `yaml:"knee_utilization" json:"knee_utilization"`
	Saturated       bool    `yaml:"saturated" json:"saturated"`
	Steps           []Step  `yaml:"steps" json:"steps"`
}

// Step is one rate of the stepped load.
type Step struct {
	Offered     float64 `yaml:"offered" json:"offered"`         // requests/s of this class sent
	Achieved    float64 `yaml:"achieved" json:"achieved"`       // answered requests/s
	P99         float64 `yaml:"p99_ms" json:"p99_ms"`           // of this class's requests
	ErrorRate   float64 `yaml:"error_rate" json:"error_rate"`   // 0..1
	Utilization float64 `yaml:"utilization" json:"utilization"` // the replica's CPU, of Target.Cores
}

// Memory is what the replica holds per visitor.
type Memory struct {
	BaseBytes          float64 `yaml:"base_bytes" json:"base_bytes"`                           // live heap at rest
	PerSessionBytes    float64 `yaml:"per_session_bytes" json:"per_session_bytes"`             // per active shopping session (a cart)
	PerWaitingBuyer    float64 `yaml:"per_waiting_buyer_bytes" json:"per_waiting_buyer_bytes"` // per buyer in a drop's line
	ResidentPeakBytes  float64 `yaml:"resident_peak_bytes" json:"resident_peak_bytes"`
	MeasuredSessions   int64   `yaml:"measured_sessions" json:"measured_sessions"`
	MeasuredWaitingBuy int64   `yaml:"measured_waiting_buyers" json:"measured_waiting_buyers"`
}

// Connections is what one replica holds open.
type Connections struct {
	IdleFDs int `yaml:"idle_fds" json:"idle_fds"` // open files and sockets at rest
	PeakFDs int `yaml:"peak_fds" json:"peak_fds"` // at the highest step
	// DBPool is the connections the replica opened to PostgreSQL (from
	// pg_stat_activity, with --db-url); 0 when not measured.
	DBPool int `yaml:"db_pool" json:"db_pool"`
}

// Duration is a time.Duration that reads and writes as "300ms".
type Duration time.Duration

// MarshalYAML writes the duration as Go spells it.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalYAML reads "300ms", "1m30s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: duration %q: want e.g. 300ms or 2m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration in seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%g", time.Duration(d).Seconds()), nil
}

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ReadProfile reads and checks a profile file.
func ReadProfile(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := ParseProfile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// ParseProfile decodes a profile; unknown fields are errors.
func ParseProfile(b []byte) (*Profile, error) {
	var p Profile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	return &p, p.validate()
}

func (p *Profile) validate() error {
	var errs []error
	if p.Version != 1 {
		errs = append(errs, fmt.Errorf("version %d: this planner reads version 1", p.Version))
	}
	if p.Target.Cores <= 0 || p.Target.Cores > 1024 {
		errs = append(errs, fmt.Errorf("target.cores %g: want 0 < cores <= 1024", p.Target.Cores))
	}
	if len(p.Classes) == 0 {
		errs = append(errs, errors.New("classes: none measured"))
	}
	for name := range p.Unmeasured {
		if !known(name) {
			errs = append(errs, fmt.Errorf("not_measured.%s: unknown class (want one of %v)", name, Classes))
		}
	}
	for name, c := range p.Classes {
		if !known(name) {
			errs = append(errs, fmt.Errorf("classes.%s: unknown class (want one of %v)", name, Classes))
			continue
		}
		if err := c.check(); err != nil {
			errs = append(errs, fmt.Errorf("classes.%s%w", name, err))
		}
	}
	return errors.Join(errs...)
}

// check says what is out of range in one class's figures; its errors
// start with the field's path below the class.
func (c *ClassCost) check() error {
	if c == nil {
		return errors.New(": empty")
	}
	for _, v := range []float64{c.CPU.API, c.CPU.Worker, c.CPU.Database, c.CPU.NATS, c.CPU.Redis} {
		if v < 0 || v > 60 || math.IsNaN(v) {
			return fmt.Errorf(".cpu_seconds: %g out of range (0 to 60 s per request)", v)
		}
	}
	if c.CPU.Total() <= 0 {
		return errors.New(".cpu_seconds: all zero")
	}
	if !(c.KneeRate >= 0 && c.KneeUtilization >= 0 && c.KneeUtilization <= 64) {
		return errors.New(": knee out of range")
	}
	for i, st := range c.Steps {
		if !(st.Utilization >= 0 && st.Utilization <= 64 && st.P99 >= 0 && st.ErrorRate >= 0 && st.ErrorRate <= 1) {
			return fmt.Errorf(".steps[%d]: out of range", i)
		}
	}
	return nil
}

func known(class string) bool {
	for _, c := range Classes {
		if c == class {
			return true
		}
	}
	return false
}

// Write stores the profile as YAML.
func (p *Profile) Write(path string) error {
	b, err := p.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Marshal is the profile as YAML with a header saying where it came from.
func (p *Profile) Marshal() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Surge capacity profile, measured by `surge plan calibrate` on %s\n# against %s (%s). Every figure is a measurement; see docs/capacity.md.\n",
		p.Machine.Host, p.Target.URL, p.Target.Version)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// Cost is the CPU one request of class costs, and whether it was measured.
func (p *Profile) Cost(class string) (Components, bool) {
	c, ok := p.Classes[class]
	if !ok || c == nil {
		return Components{}, false
	}
	return c.CPU, true
}

// ReplicaCPU is what one request of class costs the replica's own cores:
// the API (and the worker when it runs in the same process) plus the
// components embedded in it.
func (p *Profile) ReplicaCPU(class string) float64 {
	c, _ := p.Cost(class)
	v := c.API
	if p.Target.Worker == "in-process" {
		v += c.Worker
	}
	for _, e := range p.Target.Embedded {
		switch e {
		case "database":
			v += c.Database
		case "nats":
			v += c.NATS
		case "redis":
			v += c.Redis
		}
	}
	return v
}

// MeasuredClasses lists the classes the profile has, in calibration order.
func (p *Profile) MeasuredClasses() []string {
	var out []string
	for _, c := range Classes {
		if _, ok := p.Classes[c]; ok {
			out = append(out, c)
		}
	}
	return out
}

// p99At interpolates a class's p99 (ms) at replica utilisation u from its
// steps; beyond the last step it reports +Inf when the class saturated.
func (c *ClassCost) p99At(u float64) float64 {
	st := append([]Step(nil), c.Steps...)
	sort.Slice(st, func(i, j int) bool { return st[i].Utilization < st[j].Utilization })
	if len(st) == 0 {
		return 0
	}
	if u <= st[0].Utilization {
		return st[0].P99
	}
	for i := 1; i < len(st); i++ {
		if u <= st[i].Utilization {
			a, b := st[i-1], st[i]
			f := (u - a.Utilization) / (b.Utilization - a.Utilization)
			return a.P99 + f*(b.P99-a.P99)
		}
	}
	last := st[len(st)-1]
	if c.Saturated || u >= 1 {
		return inf
	}
	return last.P99
}
