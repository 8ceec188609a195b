package loadtest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is a scenario file. The simplest has one journey's steps; a
// rehearsal's also mixes journeys (its own and built-in ones), says the
// load it runs at (scaled with --scale and --time-scale), which health
// endpoints to probe every second, a drop to put on sale first, named
// phases for thresholds, requests to send at moments of the run
// (hooks), a drop reminder mailed in the middle of the run (reminder),
// and the thresholds it must meet beyond the SLO file's.
type File struct {
	Name        string
	Description string
	Load        *LoadSpec
	Probes      []string // paths on the server's admin listener: /livez
	Drop        *DropSetup
	Reminder    *ReminderSpec
	Phases      []PhaseSpec
	Hooks       []HookSpec
	Thresholds  []string
	Line        *WaitingLine // the site's waiting line, which every journey but drop and get waits in
	Source      []byte

	single   *Scenario // the file's own steps, when it has no journeys list
	journeys []fileJourneySpec
}

type fileJourneySpec struct {
	weight  int
	builtin string    // browse, buy, drop, get
	think   *Think    // a built-in journey's pause between steps
	sc      *Scenario // a journey of the file's own steps
}

// The file forms of a rehearsal's parts.
type fileJourney struct {
	Name    string            `yaml:"name"`
	Weight  *int              `yaml:"weight"`
	Use     string            `yaml:"use"`
	Think   *string           `yaml:"think"`
	Headers map[string]string `yaml:"headers"`
	Steps   []fileStep        `yaml:"steps"`
	line    int
}

func (j *fileJourney) UnmarshalYAML(n *yaml.Node) error {
	type plain fileJourney
	j.line = n.Line
	return strictDecode(n, "journey", (*plain)(j), "name", "weight", "use", "think", "headers", "steps")
}

type fileLoad struct {
	Rate        string `yaml:"rate"`
	Stages      string `yaml:"stages"`
	Spike       string `yaml:"spike"`
	Arrivals    string `yaml:"arrivals"`
	VUs         int    `yaml:"vus"`
	Think       string `yaml:"think"`
	Duration    string `yaml:"duration"`
	MaxInFlight int    `yaml:"max_in_flight"`
	Timeout     string `yaml:"timeout"`
	Grace       string `yaml:"grace"`
	line        int
}

func (l *fileLoad) UnmarshalYAML(n *yaml.Node) error {
	type plain fileLoad
	l.line = n.Line
	return strictDecode(n, "load", (*plain)(l), "rate", "stages", "spike", "arrivals", "vus", "think", "duration",
		"max_in_flight", "timeout", "grace")
}

type fileDrop struct {
	Units         int64  `yaml:"units"`
	Limit         int64  `yaml:"limit"`
	Quantity      int    `yaml:"quantity"`
	Starts        string `yaml:"starts"`
	RatePerMinute int    `yaml:"rate_per_minute"`
	MaxActive     int    `yaml:"max_active"`
	PoWDifficulty int    `yaml:"pow_difficulty"`
	line          int
}

func (d *fileDrop) UnmarshalYAML(n *yaml.Node) error {
	type plain fileDrop
	d.line = n.Line
	return strictDecode(n, "drop", (*plain)(d), "units", "limit", "quantity", "starts", "rate_per_minute", "max_active", "pow_difficulty")
}

type fileReminder struct {
	Subscribers int    `yaml:"subscribers"`
	At          string `yaml:"at"`
	line        int
}

func (r *fileReminder) UnmarshalYAML(n *yaml.Node) error {
	type plain fileReminder
	r.line = n.Line
	return strictDecode(n, "reminder", (*plain)(r), "subscribers", "at")
}

// ReminderSpec is a mail job a rehearsal runs next to its load (see
// ReminderSetup): the drop's subscribers, before scaling, and when its
// reminder is sent.
type ReminderSpec struct {
	ReminderSetup
	At Moment
}

type filePhase struct {
	Name string `yaml:"name"`
	From string `yaml:"from"`
	To   string `yaml:"to"`
	line int
}

func (p *filePhase) UnmarshalYAML(n *yaml.Node) error {
	type plain filePhase
	p.line = n.Line
	return strictDecode(n, "phase", (*plain)(p), "name", "from", "to")
}

type fileHook struct {
	Name    string            `yaml:"name"`
	At      string            `yaml:"at"`
	Method  string            `yaml:"method"`
	URL     string            `yaml:"url"`
	Body    string            `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	Admin   bool              `yaml:"admin"`
	line    int
}

func (h *fileHook) UnmarshalYAML(n *yaml.Node) error {
	type plain fileHook
	h.line = n.Line
	return strictDecode(n, "hook", (*plain)(h), "name", "at", "method", "url", "body", "headers", "admin")
}

// Moment is a time in a run: a duration since the start, or a share of
// the run's planned duration ("50%").
type Moment struct {
	D     time.Duration
	Share float64 // 0..1 when set
}

func parseMoment(s string) (Moment, error) {
	s = strings.TrimSpace(s)
	if num, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 || f > 100 {
			return Moment{}, fmt.Errorf("%q: want a share of the run from 0%% to 100%% or a duration", s)
		}
		return Moment{Share: f / 100}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return Moment{}, fmt.Errorf("%q: want a duration like 90s or a share of the run like 50%%", s)
	}
	return Moment{D: d}, nil
}

// At is the moment in a run that lasts total, with durations scaled.
func (m Moment) At(total time.Duration, timeScale float64) time.Duration {
	if m.Share > 0 || m.D == 0 {
		return time.Duration(m.Share * float64(total))
	}
	return time.Duration(float64(m.D) * timeScale)
}

// PhaseSpec is a named window of the run.
type PhaseSpec struct {
	Name     string
	From, To Moment
}

// HookSpec is a hook whose moment depends on the run's length.
type HookSpec struct {
	Hook
	When Moment
}

// ParseFile parses a scenario file; name is used in error messages,
// which carry the line of the problem ("shop.yaml:12: ...").
func ParseFile(name string, src []byte) (*File, error) {
	f, err := decodeFile(name, src)
	if err != nil {
		return nil, err
	}
	out, err := compileFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", name, err)
	}
	out.Source = src
	return out, nil
}

func compileFile(f fileScenario) (*File, error) {
	out := &File{Name: f.Name, Description: strings.TrimSpace(f.Description), Probes: f.Probes, Thresholds: f.Thresholds}
	if out.Name == "" {
		out.Name = "scenario"
	}
	for _, t := range f.Thresholds {
		if _, err := ParseThreshold(t); err != nil {
			return nil, lineErr(1, "%v", err)
		}
	}
	line, err := compileLine(f.Line)
	if err != nil {
		return nil, err
	}
	if line != nil && f.Cookies != nil && !*f.Cookies {
		return nil, lineErr(f.Line.line, "line: a waiting line admits a visitor by cookie: leave cookies on")
	}
	if line != nil {
		steps := f.Steps
		for _, j := range f.Journeys {
			steps = append(steps, j.Steps...)
		}
		for _, st := range steps {
			if st.Name == lineStat {
				return nil, lineErr(st.line, "step %q: the line page's requests are recorded as %q: name the step otherwise", st.Name, lineStat)
			}
		}
	}
	out.Line = line
	for _, p := range f.Probes {
		if !strings.HasPrefix(p, "/") {
			return nil, lineErr(1, "probe %q: want a path on the admin listener, like /readyz", p)
		}
	}
	switch {
	case len(f.Steps) > 0 && len(f.Journeys) > 0:
		return nil, lineErr(1, "steps and journeys: a file has one journey's steps or a list of journeys, not both")
	case len(f.Steps) > 0:
		sc, err := compileScenario(f)
		if err != nil {
			return nil, err
		}
		sc.Line = line
		out.single = sc
		out.journeys = []fileJourneySpec{{weight: 1, sc: sc}}
	case len(f.Journeys) > 0:
		if err := out.compileJourneys(f); err != nil {
			return nil, err
		}
	default:
		return nil, lineErr(1, "no steps: a scenario needs at least one step with a url (or a list of journeys)")
	}
	if f.Load != nil {
		l, err := compileLoad(*f.Load)
		if err != nil {
			return nil, lineErr(f.Load.line, "load: %v", err)
		}
		out.Load = &l
	}
	if f.Drop != nil {
		d := DropSetup{Units: f.Drop.Units, Limit: f.Drop.Limit, Quantity: f.Drop.Quantity, RatePerMinute: f.Drop.RatePerMinute,
			MaxActive: f.Drop.MaxActive, PoWDifficulty: f.Drop.PoWDifficulty}
		if f.Drop.Starts != "" {
			var err error
			if d.Starts, err = time.ParseDuration(f.Drop.Starts); err != nil || d.Starts < 0 {
				return nil, lineErr(f.Drop.line, "drop: starts %q: want a duration after the run's start, like 30s", f.Drop.Starts)
			}
		}
		if d.Units < 1 || d.Limit < 0 || d.Limit > 99 || d.Quantity < 0 || d.RatePerMinute < 0 || d.MaxActive < 0 || d.PoWDifficulty < 0 || d.PoWDifficulty > 28 {
			return nil, lineErr(f.Drop.line, "drop: units at least 1, limit 0 to 99, pow_difficulty 0 to 28, the rest not negative")
		}
		if !out.hasBuiltin("drop") {
			return nil, lineErr(f.Drop.line, "drop: no journey buys it: add {use: drop} to the journeys")
		}
		out.Drop = &d
	}
	if r := f.Reminder; r != nil {
		if r.Subscribers < 1 || r.Subscribers > MaxReminderSubscribers {
			return nil, lineErr(r.line, "reminder: subscribers must be 1 to %d", MaxReminderSubscribers)
		}
		if r.At == "" {
			return nil, lineErr(r.line, "reminder: at is required: when the reminder is sent, like 50%% or 3m")
		}
		at, err := parseMoment(r.At)
		if err != nil {
			return nil, lineErr(r.line, "reminder: at %v", err)
		}
		out.Reminder = &ReminderSpec{ReminderSetup: ReminderSetup{Subscribers: r.Subscribers}, At: at}
	}
	names := map[string]bool{}
	for _, p := range f.Phases {
		if !phaseNameRE.MatchString(p.Name) || names[p.Name] {
			return nil, lineErr(p.line, "phase %q: a unique name of letters, digits, '.', '_' and '-'", p.Name)
		}
		names[p.Name] = true
		from, err1 := parseMoment(p.From)
		to, err2 := parseMoment(p.To)
		if err := errors.Join(err1, err2); err != nil {
			return nil, lineErr(p.line, "phase %s: %v", p.Name, err)
		}
		out.Phases = append(out.Phases, PhaseSpec{Name: p.Name, From: from, To: to})
	}
	for _, h := range f.Hooks {
		at, err := parseMoment(h.At)
		if err != nil {
			return nil, lineErr(h.line, "hook %s: at %v", h.Name, err)
		}
		method := strings.ToUpper(h.Method)
		if method == "" {
			method = "POST"
		}
		if h.Name == "" || h.URL == "" {
			return nil, lineErr(h.line, "hook: name and url are required")
		}
		out.Hooks = append(out.Hooks, HookSpec{Hook: Hook{Name: h.Name, Method: method, URL: h.URL, Body: h.Body, Headers: h.Headers, Admin: h.Admin}, When: at})
	}
	return out, nil
}

func (f *File) compileJourneys(fs fileScenario) error {
	think, err := ParseThink(fs.Think)
	if err != nil {
		return lineErr(1, "%v", err)
	}
	cookies := true
	if fs.Cookies != nil {
		cookies = *fs.Cookies
	}
	seen := map[string]bool{}
	for _, j := range fs.Journeys {
		spec := fileJourneySpec{weight: 1}
		if j.Weight != nil {
			if *j.Weight < 0 {
				return lineErr(j.line, "journey %s: weight must be 0 or more", j.Name)
			}
			spec.weight = *j.Weight
		}
		name := j.Name
		if name == "" {
			name = j.Use
		}
		if !stepNameRE.MatchString(name) || seen[name] {
			return lineErr(j.line, "journey %q: a unique name of letters, digits, '.', '_' and '-'", name)
		}
		seen[name] = true
		jt := think
		if j.Think != nil {
			if jt, err = ParseThink(*j.Think); err != nil {
				return lineErr(j.line, "journey %s: %v", name, err)
			}
		}
		switch {
		case j.Use != "" && len(j.Steps) > 0:
			return lineErr(j.line, "journey %s: use a built-in journey or give steps, not both", name)
		case j.Use != "":
			if name != j.Use {
				return lineErr(j.line, "journey %s: a built-in journey keeps its name (%s)", name, j.Use)
			}
			switch j.Use {
			case "browse", "buy", "drop", "get":
			default:
				return lineErr(j.line, "journey %s: unknown built-in journey %q (want one of %s)", name, j.Use, strings.Join(Journeys, ", "))
			}
			spec.builtin = j.Use
			if j.Think != nil || fs.Think != "" {
				spec.think = &jt
			}
		case len(j.Steps) > 0:
			headers := map[string]string{}
			for k, v := range fs.Headers {
				headers[k] = v
			}
			for k, v := range j.Headers {
				headers[k] = v
			}
			steps, err := compileSteps(j.Steps, jt, headers, fs.Vars)
			if err != nil {
				return err
			}
			spec.sc = &Scenario{Name: name, BaseURL: fs.BaseURL, Cookies: cookies, Steps: steps, vars: fs.Vars}
		default:
			return lineErr(j.line, "journey %s: give steps, or use a built-in journey (%s)", name, strings.Join(Journeys, ", "))
		}
		f.journeys = append(f.journeys, spec)
	}
	return nil
}

func (f *File) hasBuiltin(name string) bool {
	for _, j := range f.journeys {
		if j.builtin == name && j.weight > 0 {
			return true
		}
	}
	return false
}

// UsesDrop reports whether the file's journeys include the drop buyer.
func (f *File) UsesDrop() bool { return f.hasBuiltin("drop") }

// Mix is the file's journeys with their weights; drop is the drop the
// drop journey's buyers queue for, if the mix has it.
func (f *File) Mix(drop DropOptions) ([]Weighted, error) {
	var out []Weighted
	for _, j := range f.journeys {
		if j.weight == 0 {
			continue
		}
		sc := j.sc
		if sc == nil {
			var err error
			if sc, err = journey(j.builtin, drop); err != nil {
				return nil, err
			}
			if j.think != nil && j.builtin != "get" && j.builtin != "drop" {
				sc = sc.WithThink(*j.think)
			}
		}
		if f.Line != nil && sc.drop == nil && j.builtin != "get" {
			// The drop buyer follows its drop's own line; get sends no
			// cookies.
			c := *sc
			c.Line = f.Line
			sc = &c
		}
		out = append(out, Weighted{sc, j.weight})
	}
	if len(out) == 0 {
		return nil, errors.New("the journey mix has no positive weight")
	}
	return out, nil
}

// LoadSpec is a load profile as flags or a file's load section say it,
// before scaling.
type LoadSpec struct {
	Rate, Stages, Spike, Arrivals string
	VUs                           int
	Think                         string // closed model: pause between a user's visits
	Duration                      time.Duration
	MaxInFlight                   int
	Timeout, Grace                time.Duration
}

func compileLoad(l fileLoad) (LoadSpec, error) {
	out := LoadSpec{Rate: l.Rate, Stages: l.Stages, Spike: l.Spike, Arrivals: l.Arrivals, VUs: l.VUs, Think: l.Think, MaxInFlight: l.MaxInFlight}
	for _, d := range []struct {
		s  string
		to *time.Duration
	}{{l.Duration, &out.Duration}, {l.Timeout, &out.Timeout}, {l.Grace, &out.Grace}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil || v <= 0 {
			return out, fmt.Errorf("%q is not a positive duration", d.s)
		}
		*d.to = v
	}
	_, err := out.Build(1, 1)
	return out, err
}

// Built is a load profile ready to run.
type Built struct {
	Plan     Plan // open model; nil for the closed model
	VUs      int
	Think    Think
	Duration time.Duration
	Profile  string // how it reads in the report
}

// Build scales the profile: scale multiplies the traffic (rates, users,
// arrivals), timeScale the durations (a spike's step and hold, stages,
// the window of arrivals, the run).
func (l LoadSpec) Build(scale, timeScale float64) (Built, error) {
	var b Built
	if scale <= 0 || timeScale <= 0 || math.IsInf(scale, 0) || math.IsInf(timeScale, 0) {
		return b, fmt.Errorf("scale %v and time scale %v: want positive factors", scale, timeScale)
	}
	n := 0
	for _, p := range []string{l.Rate, l.Stages, l.Spike, l.Arrivals} {
		if p != "" {
			n++
		}
	}
	if l.VUs > 0 {
		n++
	}
	if n != 1 {
		return b, errors.New("want exactly one load profile: rate, stages, spike, arrivals or vus")
	}
	dur := time.Duration(float64(l.Duration) * timeScale)
	stretch := func(p Plan) Plan {
		out := make(Plan, len(p))
		for i, s := range p {
			out[i] = Segment{Dur: time.Duration(float64(s.Dur) * timeScale), From: s.From * scale, To: s.To * scale}
		}
		return out
	}
	var err error
	switch {
	case l.Rate != "":
		r, err := ParseRate(l.Rate)
		if err != nil {
			return b, err
		}
		if l.Duration <= 0 {
			return b, errors.New("a rate needs a duration")
		}
		b.Plan = ConstantPlan(r*scale, dur)
		b.Profile = fmt.Sprintf("rate %s/s for %s", trimF(r*scale), dur)
	case l.Stages != "":
		p, err := ParseStages(l.Stages)
		if err != nil {
			return b, err
		}
		b.Plan = stretch(p)
		b.Profile = "stages " + b.Plan.stagesString()
	case l.Spike != "":
		p, err := ParseSpike(l.Spike, l.Duration)
		if err != nil {
			return b, err
		}
		b.Plan = stretch(p)
		b.Profile = "spike " + spikeString(l.Spike, scale, timeScale, l.Duration)
	case l.Arrivals != "":
		p, err := ParseArrivals(l.Arrivals)
		if err != nil {
			return b, err
		}
		// The same people (times scale) in a window timeScale as long.
		b.Plan = make(Plan, len(p))
		for i, s := range p {
			b.Plan[i] = Segment{Dur: time.Duration(float64(s.Dur) * timeScale), From: s.From * scale / timeScale, To: s.To * scale / timeScale}
		}
		b.Profile = fmt.Sprintf("arrivals n=%d,within=%s", b.Plan.Count(), b.Plan.Duration())
		if strings.Contains(l.Arrivals, "front") {
			b.Profile += ",shape=front"
		}
	default:
		if l.Duration <= 0 {
			return b, errors.New("virtual users need a duration")
		}
		b.VUs = max(1, int(math.Round(float64(l.VUs)*scale)))
		b.Duration = dur
		if b.Think, err = ParseThink(l.Think); err != nil {
			return b, err
		}
		b.Profile = fmt.Sprintf("%d users, think %s, for %s", b.VUs, b.Think, dur)
		return b, nil
	}
	if l.Think != "" {
		return b, errors.New("think: only for the closed model (vus); journeys pause between steps with their own think")
	}
	b.Duration = b.Plan.Duration()
	return b, nil
}

func trimF(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(f, 'f', 3, 64), "0"), ".")
}

func (p Plan) stagesString() string {
	var parts []string
	for _, s := range p {
		parts = append(parts, s.Dur.String()+":"+trimF(s.To))
	}
	return strings.Join(parts, ",")
}

// spikeString is a spike profile with its rate scaled and its times
// stretched, as the user would have written it.
func spikeString(spec string, scale, timeScale float64, total time.Duration) string {
	kv, _ := keyValues("spike", spec, "base", "x", "at", "hold", "after")
	var parts []string
	for _, k := range []string{"base", "x", "at", "hold", "after"} {
		v, ok := kv[k]
		if !ok {
			continue
		}
		switch k {
		case "base":
			r, _ := ParseRate(v)
			v = trimF(r * scale)
		case "at", "hold", "after":
			d, _ := time.ParseDuration(v)
			v = time.Duration(float64(d) * timeScale).String()
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

// ScaleDrop scales a drop: scale multiplies its units and the line's
// capacity, timeScale its start; the line admits at a rate that sells out
// in proportion.
func (d DropSetup) ScaleDrop(scale, timeScale float64) DropSetup {
	out := d
	up := func(v int64) int64 { return max(1, int64(math.Round(float64(v)*scale))) }
	out.Units = up(d.Units)
	if d.MaxActive > 0 {
		out.MaxActive = int(up(int64(d.MaxActive)))
	}
	if d.RatePerMinute > 0 {
		out.RatePerMinute = max(1, int(math.Round(float64(d.RatePerMinute)*scale/timeScale)))
	}
	out.Starts = time.Duration(float64(d.Starts) * timeScale)
	return out
}
