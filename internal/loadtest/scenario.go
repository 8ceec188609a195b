package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scenario is a journey a simulated user takes: steps run in order, each a
// request built from templates, with its own checks, extractions and think
// time. Every session (one user's visit) has its own variables and, unless
// Cookies is false, its own cookie jar.
type Scenario struct {
	Name       string
	BaseURL    string // used when the run has no --target
	Cookies    bool
	Steps      []*Step
	Thresholds []string
	Source     []byte // the YAML it was parsed from, shipped to agents
	// Line, when set, is the site's waiting line, which the scenario's
	// users wait in as a browser does (see WaitingLine).
	Line *WaitingLine

	vars map[string]string
	drop *DropOptions // set for the drop buyer, whose way through the steps is decided in Go
}

// Step is one request of a scenario.
type Step struct {
	Name   string
	Method string
	Think  Think // pause after the step, before the next one

	url      text
	headers  []header
	body     *text
	extract  []extractor
	check    check
	needBody bool
	line     int
}

// Think is a pause drawn uniformly from [Min, Max].
type Think struct{ Min, Max time.Duration }

// Pick draws a pause.
func (t Think) Pick() time.Duration {
	if t.Max <= t.Min {
		return t.Min
	}
	return t.Min + rand.N(t.Max-t.Min+1)
}

// ParseThink parses "2s" or a range "1s-3s". "0" or "" is no pause.
func ParseThink(s string) (Think, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return Think{}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil || a < 0 {
		return Think{}, fmt.Errorf("think time %q: want a duration like 2s or a range like 1s-3s", s)
	}
	if !isRange {
		return Think{a, a}, nil
	}
	b, err := time.ParseDuration(strings.TrimSpace(hi))
	if err != nil || b < a {
		return Think{}, fmt.Errorf("think time %q: want a range like 1s-3s, low end first", s)
	}
	return Think{a, b}, nil
}

func (t Think) String() string {
	if t.Max > t.Min {
		return t.Min.String() + "-" + t.Max.String()
	}
	return t.Min.String()
}

type header struct {
	name  string
	value text
}

// text is a string that may be a template. Static strings skip template
// execution entirely, so a plain GET costs no templating at all.
type text struct {
	static string
	t      *template.Template
}

func (x *text) isStatic() bool { return x.t == nil }

func (x *text) render(buf *bytes.Buffer, vars map[string]string) (string, error) {
	if x.t == nil {
		return x.static, nil
	}
	buf.Reset()
	if err := x.t.Execute(buf, vars); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// templateFuncs are available in every template.
var templateFuncs = template.FuncMap{
	"uuid": newUUID,
	"randInt": func(lo, hi int) int {
		if hi <= lo {
			return lo
		}
		return lo + rand.IntN(hi-lo+1)
	},
	"email": func() string { return fmt.Sprintf("load+%016x@example.com", rand.Uint64()) },
	"now":   func() int64 { return time.Now().Unix() },
	// pick chooses one of its arguments at random: pick "linen" "wool".
	"pick": func(first string, rest ...string) string {
		if i := rand.IntN(len(rest) + 1); i > 0 {
			return rest[i-1]
		}
		return first
	},
}

func newUUID() string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// builtinVars are set in every session.
var builtinVars = []string{"session", "vu", "base_url"}

// compileText parses s as a template when it contains "{{" and checks that
// every variable it reads is known at that point of the scenario.
func compileText(s string, known map[string]bool) (text, error) {
	if !strings.Contains(s, "{{") {
		return text{static: s}, nil
	}
	t, err := template.New("").Funcs(templateFuncs).Option("missingkey=error").Parse(s)
	if err != nil {
		return text{}, errors.New(strings.TrimPrefix(err.Error(), "template: :"))
	}
	var unknown []string
	walkFields(t.Root, func(name string) {
		if !known[name] && !slices.Contains(unknown, name) {
			unknown = append(unknown, name)
		}
	})
	if len(unknown) > 0 {
		return text{}, fmt.Errorf("uses {{.%s}}, but no vars entry or earlier step extracts %s", unknown[0], unknown[0])
	}
	return text{t: t}, nil
}

func walkFields(n parse.Node, f func(string)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				walkFields(c, f)
			}
		}
	case *parse.ActionNode:
		walkFields(n.Pipe, f)
	case *parse.PipeNode:
		if n != nil {
			for _, c := range n.Cmds {
				walkFields(c, f)
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walkFields(a, f)
		}
	case *parse.FieldNode:
		f(n.Ident[0])
	case *parse.IfNode:
		walkFields(n.Pipe, f)
		walkFields(n.List, f)
		walkFields(n.ElseList, f)
	case *parse.RangeNode:
		walkFields(n.Pipe, f)
		walkFields(n.List, f)
		walkFields(n.ElseList, f)
	case *parse.WithNode:
		walkFields(n.Pipe, f)
		walkFields(n.List, f)
		walkFields(n.ElseList, f)
	}
}

// The file form of a scenario. Fields that need a line number in error
// messages are yaml.Node or have their own unmarshalers.
type fileScenario struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	BaseURL     string            `yaml:"base_url"`
	Cookies     *bool             `yaml:"cookies"`
	Think       string            `yaml:"think"`
	Vars        map[string]string `yaml:"vars"`
	Headers     map[string]string `yaml:"headers"`
	Thresholds  []string          `yaml:"thresholds"`
	Line        *fileLine         `yaml:"line"`
	Steps       []fileStep        `yaml:"steps"`

	// A rehearsal's parts (see File).
	Journeys []fileJourney `yaml:"journeys"`
	Load     *fileLoad     `yaml:"load"`
	Probes   []string      `yaml:"probes"`
	Drop     *fileDrop     `yaml:"drop"`
	Reminder *fileReminder `yaml:"reminder"`
	Phases   []filePhase   `yaml:"phases"`
	Hooks    []fileHook    `yaml:"hooks"`
}

type fileStep struct {
	Name    string            `yaml:"name"`
	Method  string            `yaml:"method"`
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Body    *string           `yaml:"body"`
	Think   *string           `yaml:"think"`
	Extract []fileExtract     `yaml:"extract"`
	Check   fileCheck         `yaml:"check"`
	line    int
}

type fileExtract struct {
	Name   string `yaml:"name"`
	JSON   string `yaml:"json"`
	Regex  string `yaml:"regex"`
	Header string `yaml:"header"`
	Cookie string `yaml:"cookie"`
	Pick   string `yaml:"pick"`
	line   int
}

type fileCheck struct {
	Status       statusList `yaml:"status"`
	BodyContains stringList `yaml:"body_contains"`
	JSON         stringList `yaml:"json"`
	line         int
}

// strictDecode decodes a mapping node into v after rejecting keys other
// than allowed; yaml.v3 does not apply KnownFields inside custom decoders.
func strictDecode(n *yaml.Node, what string, v any, allowed ...string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s must be a mapping", n.Line, what)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(allowed, k.Value) {
			return fmt.Errorf("line %d: unknown %s field %q (want one of %s)", k.Line, what, k.Value, strings.Join(allowed, ", "))
		}
	}
	return n.Decode(v)
}

func (s *fileStep) UnmarshalYAML(n *yaml.Node) error {
	type plain fileStep
	s.line = n.Line
	return strictDecode(n, "step", (*plain)(s), "name", "method", "url", "headers", "body", "think", "extract", "check")
}

func (e *fileExtract) UnmarshalYAML(n *yaml.Node) error {
	type plain fileExtract
	e.line = n.Line
	return strictDecode(n, "extract", (*plain)(e), "name", "json", "regex", "header", "cookie", "pick")
}

func (c *fileCheck) UnmarshalYAML(n *yaml.Node) error {
	type plain fileCheck
	c.line = n.Line
	return strictDecode(n, "check", (*plain)(c), "status", "body_contains", "json")
}

// stringList accepts one string or a list of them.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = []string{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
	}
	*l = s
	return nil
}

// statusList accepts 200, "2xx", "200-299" or a list of those.
type statusList []statusRange

type statusRange struct{ lo, hi int }

func (l *statusList) UnmarshalYAML(n *yaml.Node) error {
	var items []string
	if err := (*stringList)(&items).UnmarshalYAML(n); err != nil {
		return err
	}
	for _, it := range items {
		r, err := parseStatus(it)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*l = append(*l, r)
	}
	return nil
}

func parseStatus(s string) (statusRange, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if len(s) == 3 && strings.HasSuffix(s, "xx") && s[0] >= '1' && s[0] <= '5' {
		c := int(s[0]-'0') * 100
		return statusRange{c, c + 99}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(lo)
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.Atoi(hi)
	}
	if err1 != nil || err2 != nil || a < 100 || b > 599 || b < a {
		return statusRange{}, fmt.Errorf("status %q: want a code like 200, a class like 2xx or a range like 200-299", s)
	}
	return statusRange{a, b}, nil
}

// ParseScenario parses a scenario file of one journey (its own steps);
// name is used in error messages, which carry the line of the problem
// ("shop.yaml:12: ..."). A file that mixes journeys is read with
// ParseFile.
func ParseScenario(name string, src []byte) (*Scenario, error) {
	f, err := ParseFile(name, src)
	if err != nil {
		return nil, err
	}
	if f.single == nil {
		return nil, fmt.Errorf("%s: a mix of journeys, not one journey's steps", name)
	}
	return f.single, nil
}

// decodeFile reads the YAML of a scenario file strictly.
func decodeFile(name string, src []byte) (fileScenario, error) {
	var f fileScenario
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if err == io.EOF {
			return f, fmt.Errorf("%s: empty scenario file", name)
		}
		return f, fmt.Errorf("%s:%s", name, yamlMessage(err))
	}
	return f, nil
}

var yamlTypeRE = regexp.MustCompile(` (into|in type) [\[\]*]*loadtest\.\w+`)

// yamlMessage turns a yaml.v3 error into "LINE: message". The library
// leaves the line out when the problem is on the first line.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg, _, _ = strings.Cut(msg, "\n") // the first problem is enough
	msg = strings.ReplaceAll(msg, " in type loadtest.fileScenario", " (not a scenario setting)")
	msg = yamlTypeRE.ReplaceAllString(msg, "")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		return rest
	}
	return "1: " + msg
}

// lineErr is an error at a line of the file; the file name goes in front.
func lineErr(line int, format string, args ...any) error {
	return fmt.Errorf("%d: "+format, append([]any{line}, args...)...)
}

var stepNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func compileScenario(f fileScenario) (*Scenario, error) {
	sc := &Scenario{Name: f.Name, BaseURL: f.BaseURL, Cookies: true, Thresholds: f.Thresholds, vars: f.Vars}
	if sc.Name == "" {
		sc.Name = "scenario"
	}
	if f.Cookies != nil {
		sc.Cookies = *f.Cookies
	}
	if len(f.Steps) == 0 {
		return nil, lineErr(1, "no steps: a scenario needs at least one step with a url")
	}
	think, err := ParseThink(f.Think)
	if err != nil {
		return nil, lineErr(1, "%v", err)
	}
	for _, t := range f.Thresholds {
		if _, err := ParseThreshold(t); err != nil {
			return nil, lineErr(1, "%v", err)
		}
	}
	if sc.Steps, err = compileSteps(f.Steps, think, f.Headers, f.Vars); err != nil {
		return nil, err
	}
	return sc, nil
}

// compileSteps compiles a journey's steps: each pauses think unless it
// says otherwise, and sends headers (its own win).
func compileSteps(fsteps []fileStep, think Think, headers, vars map[string]string) ([]*Step, error) {
	var err error
	var steps []*Step
	known := map[string]bool{}
	for _, v := range builtinVars {
		known[v] = true
	}
	for k := range vars {
		known[k] = true
	}
	names := map[string]bool{}
	for i, fs := range fsteps {
		st := &Step{Name: fs.Name, Method: strings.ToUpper(fs.Method), Think: think, line: fs.line}
		if st.Name == "" {
			st.Name = fmt.Sprintf("step%d", i+1)
		}
		if !stepNameRE.MatchString(st.Name) {
			return nil, lineErr(fs.line, "step name %q: use letters, digits, '.', '_' and '-'", st.Name)
		}
		if names[st.Name] {
			return nil, lineErr(fs.line, "step name %q is used twice", st.Name)
		}
		names[st.Name] = true
		if st.Method == "" {
			st.Method = http.MethodGet
		}
		if !regexp.MustCompile(`^[A-Z]+$`).MatchString(st.Method) {
			return nil, lineErr(fs.line, "step %q: method %q is not an HTTP method", st.Name, fs.Method)
		}
		if fs.URL == "" {
			return nil, lineErr(fs.line, "step %q: missing url", st.Name)
		}
		if st.url, err = compileText(fs.URL, known); err != nil {
			return nil, lineErr(fs.line, "step %q: url: %v", st.Name, err)
		}
		hdrs := map[string]string{}
		for k, v := range headers {
			hdrs[k] = v
		}
		for k, v := range fs.Headers {
			hdrs[k] = v
		}
		for _, k := range sortedStrings(hdrs) {
			t, err := compileText(hdrs[k], known)
			if err != nil {
				return nil, lineErr(fs.line, "step %q: header %s: %v", st.Name, k, err)
			}
			st.headers = append(st.headers, header{http.CanonicalHeaderKey(k), t})
		}
		if fs.Body != nil {
			t, err := compileText(*fs.Body, known)
			if err != nil {
				return nil, lineErr(fs.line, "step %q: body: %v", st.Name, err)
			}
			st.body = &t
		}
		if fs.Think != nil {
			if st.Think, err = ParseThink(*fs.Think); err != nil {
				return nil, lineErr(fs.line, "step %q: %v", st.Name, err)
			}
		}
		st.check = check{status: fs.Check.Status, contains: fs.Check.BodyContains}
		for _, p := range fs.Check.JSON {
			path, err := parsePath(p)
			if err != nil {
				return nil, lineErr(fs.Check.line, "step %q: check json: %v", st.Name, err)
			}
			st.check.json = append(st.check.json, jsonCheck{p, path})
		}
		st.needBody = len(st.check.contains) > 0 || len(st.check.json) > 0
		for _, fe := range fs.Extract {
			ex, err := compileExtract(fe)
			if err != nil {
				return nil, lineErr(fe.line, "step %q: extract %s: %v", st.Name, fe.Name, err)
			}
			st.extract = append(st.extract, ex)
			st.needBody = st.needBody || ex.path != nil || ex.re != nil
		}
		for _, ex := range st.extract {
			known[ex.name] = true
		}
		steps = append(steps, st)
	}
	return steps, nil
}

func sortedStrings(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// WithThink returns a copy of the scenario whose steps all pause t.
func (s *Scenario) WithThink(t Think) *Scenario {
	c := *s
	c.Steps = make([]*Step, len(s.Steps))
	for i, st := range s.Steps {
		cp := *st
		cp.Think = t
		c.Steps[i] = &cp
	}
	return &c
}

// GetScenario is the default journey: one GET of the target URL, no
// cookies, no templating: the cheapest request the engine can make, for
// comparisons with wrk and k6.
func GetScenario() *Scenario {
	return &Scenario{Name: "get", Steps: []*Step{{Name: "get", Method: http.MethodGet, url: text{static: ""}}}}
}
