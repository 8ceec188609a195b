package loadtest

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const shopScenario = `# A generic shop: log in, find a product, buy it.
name: shop
cookies: true
think: 10ms
vars:
  user: alice
headers:
  User-Agent: surge-load-test
thresholds:
  - p99<2s
  - buy:errors<1%
steps:
  - name: login
    method: post
    url: /login
    headers:
      Content-Type: application/json
    body: '{"user":"{{.user}}"}'
    extract:
      - name: token
        header: X-Token
      - name: sid
        cookie: sid
  - name: list
    url: /api/products?owner={{.user}}
    headers:
      Authorization: Bearer {{.token}}
    check:
      status: [200, 2xx]
      body_contains: items
      json: items[0].sku
    extract:
      - name: sku
        json: items[*].sku
        pick: last
      - name: price
        regex: '"price":(\d+)'
  - name: buy
    method: POST
    url: /api/orders
    think: 0s-5ms
    headers:
      Idempotency-Key: '{{uuid}}'
      Content-Type: application/json
    body: |
      {"sku":"{{.sku}}","price":{{.price}},"session":"{{.sid}}","n":{{randInt 1 3}}}
    check:
      status: 201
`

// shopServer is the server shopScenario talks to; it records what buy
// received.
type shopServer struct {
	mu     sync.Mutex
	orders []string
	keys   map[string]bool
}

func (s *shopServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/login":
		b, _ := io.ReadAll(r.Body)
		if string(b) != `{"user":"alice"}` || r.Header.Get("User-Agent") != "surge-load-test" {
			http.Error(w, "bad login "+string(b), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Token", "tok-1")
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "cookie-42", Path: "/"})
	case "/api/products":
		if r.Header.Get("Authorization") != "Bearer tok-1" || r.URL.Query().Get("owner") != "alice" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"items":[{"sku":"A-1","price":100},{"sku":"B-2","price":250}]}`)
	case "/api/orders":
		c, err := r.Cookie("sid")
		key := r.Header.Get("Idempotency-Key")
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil || c.Value != "cookie-42" || s.keys[key] || len(key) != 36 {
			http.Error(w, "bad order", http.StatusBadRequest)
			return
		}
		s.keys[key] = true
		s.orders = append(s.orders, string(b))
		w.WriteHeader(http.StatusCreated)
	default:
		http.NotFound(w, r)
	}
}

func TestScenarioEndToEnd(t *testing.T) {
	sc, err := ParseScenario("shop.yaml", []byte(shopScenario))
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Steps) != 3 || sc.Steps[0].Method != "POST" || sc.Steps[1].Think != (Think{10 * time.Millisecond, 10 * time.Millisecond}) ||
		sc.Steps[2].Think != (Think{0, 5 * time.Millisecond}) || len(sc.Thresholds) != 2 {
		t.Fatalf("parsed: %+v", sc)
	}
	srv := &shopServer{keys: map[string]bool{}}
	target := newTarget(t, srv)
	r := mustRun(t, Config{Target: target, Mix: []Weighted{{sc, 1}}, Plan: ConstantPlan(40, 500*time.Millisecond), Duration: 500 * time.Millisecond})
	if r.Total.Errors != 0 || r.Completed != 20 {
		t.Fatalf("%d errors %v, %d completed of 20", r.Total.Errors, r.Total.Failures, r.Completed)
	}
	want := regexp.MustCompile(`^\{"sku":"B-2","price":100,"session":"cookie-42","n":[123]\}\n$`)
	for _, o := range srv.orders {
		if !want.MatchString(o) {
			t.Fatalf("order body %q", o)
		}
	}
}

func TestChecksAndExtractionFailures(t *testing.T) {
	target := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			http.NotFound(w, r)
		default:
			io.WriteString(w, `{"items":[]}`)
		}
	}))
	tests := []struct{ yaml, failure string }{
		{"steps: [{url: /missing}]", "status 404"},
		{"steps: [{url: /missing, check: {status: 4xx}}]", ""},
		{"steps: [{url: /, check: {body_contains: [items, price]}}]", `body lacks "price"`},
		{"steps: [{url: /, check: {json: 'items[0]'}}]", "json lacks items[0]"},
		{"steps: [{url: /, extract: [{name: sku, json: 'items[*].sku'}]}]", "extract sku: no match"},
		{"steps: [{url: /, extract: [{name: x, header: X-Nope}]}]", "extract x: no match"},
	}
	for _, tt := range tests {
		sc, err := ParseScenario("t.yaml", []byte(tt.yaml))
		if err != nil {
			t.Fatalf("%s: %v", tt.yaml, err)
		}
		r := mustRun(t, Config{Target: target, Mix: []Weighted{{sc, 1}}, Plan: ConstantPlan(10, 100*time.Millisecond), Duration: 100 * time.Millisecond})
		if tt.failure == "" {
			if r.Total.Errors != 0 {
				t.Errorf("%s: failures %v", tt.yaml, r.Total.Failures)
			}
			continue
		}
		if r.Total.Failures[tt.failure] != 1 || r.Total.Errors != 1 {
			t.Errorf("%s: failures %v, want one %q", tt.yaml, r.Total.Failures, tt.failure)
		}
	}
}

func TestScenarioErrors(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"", "t.yaml: empty scenario file"},
		{"name: x\n", "t.yaml:1: no steps"},
		{"name: x\nstepz: []\n", "t.yaml:2: field stepz not found"},
		{"steps:\n  - url: /\n    methd: GET\n", `t.yaml:3: unknown step field "methd"`},
		{"steps:\n  - name: a\n  - url: /\n", `t.yaml:2: step "a": missing url`},
		{"steps:\n  - url: /\n    method: 'G T'\n", `t.yaml:2: step "step1": method "G T" is not an HTTP method`},
		{"steps:\n  - url: /a/{{.sku}}\n", `t.yaml:2: step "step1": url: uses {{.sku}}, but no vars entry or earlier step extracts sku`},
		{"steps:\n  - url: /\n    body: '{{.x'\n", `t.yaml:2: step "step1": body: 1: `},
		{"steps:\n  - url: /\n    extract:\n      - name: a\n        json: x\n        regex: y\n", "t.yaml:4: step \"step1\": extract a: want exactly one of json, regex, header or cookie"},
		{"steps:\n  - url: /\n    extract:\n      - name: 9a\n        json: x\n", `t.yaml:4: step "step1": extract 9a: name "9a"`},
		{"steps:\n  - url: /\n    extract:\n      - {name: a, json: 'x[', pick: first}\n", `t.yaml:4: step "step1": extract a: JSON path "x[": missing ]`},
		{"steps:\n  - url: /\n    extract:\n      - {name: a, regex: '(', pick: first}\n", `extract a: regex: error parsing regexp`},
		{"steps:\n  - url: /\n    extract:\n      - {name: a, json: x, pick: any}\n", `pick "any"`},
		{"steps:\n  - url: /\n    check:\n      status: 700\n", "t.yaml:4: status \"700\""},
		{"steps:\n  - url: /\n    check:\n      stat: 200\n", `t.yaml:4: unknown check field "stat"`},
		{"steps:\n  - url: /\n    think: soon\n", `t.yaml:2: step "step1": think time "soon"`},
		{"think: 3s-1s\nsteps:\n  - url: /\n", `t.yaml:1: think time "3s-1s"`},
		{"thresholds: [p99<fast]\nsteps:\n  - url: /\n", `t.yaml:1: threshold "p99<fast"`},
		{"steps:\n  - {name: a, url: /}\n  - {name: a, url: /}\n", `t.yaml:3: step name "a" is used twice`},
		{"steps:\n  - {name: 'a b', url: /}\n", `t.yaml:2: step name "a b"`},
		{"steps: [\n", "t.yaml:1: did not find expected node content"},
		{"steps: [{url: /, check: {json: a[0]}}]", "t.yaml:1: did not find expected ',' or '}'"},
		{"\tsteps: []", "t.yaml:1: found character that cannot start any token"},
		{"steps:\n  - url: /\n  url: x\n", "t.yaml:1: did not find expected '-' indicator"},
		{"steps: 3\n", "t.yaml:1: cannot unmarshal !!int"},
	}
	for _, tt := range tests {
		_, err := ParseScenario("t.yaml", []byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q:\n got  %v\n want %q", tt.yaml, err, tt.want)
		}
	}
}

func TestTemplateVariablesFlowForward(t *testing.T) {
	// A variable extracted by a step is usable by later steps only.
	ok := "steps:\n  - url: /\n    extract: [{name: a, header: X}]\n  - url: /{{.a}}\n"
	if _, err := ParseScenario("t.yaml", []byte(ok)); err != nil {
		t.Error(err)
	}
	bad := "steps:\n  - url: /{{.a}}\n    extract: [{name: a, header: X}]\n"
	if _, err := ParseScenario("t.yaml", []byte(bad)); err == nil {
		t.Error("a step used its own extraction")
	}
	builtins := "steps:\n  - url: '{{.base_url}}/x?s={{.session}}&v={{.vu}}&r={{randInt 1 9}}&t={{now}}&e={{email | urlquery}}'\n"
	if _, err := ParseScenario("t.yaml", []byte(builtins)); err != nil {
		t.Error(err)
	}
}

func TestJSONPath(t *testing.T) {
	doc := `{"items":[{"slug":"a","variants":[{"sku":"a1","available":0},{"sku":"a2","available":3},{"sku":"a3","available":1}]},{"slug":"b","variants":[]}],"n":3,"ok":true,"o":{"k":null}}`
	tests := map[string][]string{
		"items[*].slug":                       {"a", "b"},
		"items[0].slug":                       {"a"},
		"items[-1].slug":                      {"b"},
		"items[*].variants[*].sku":            {"a1", "a3"},
		"items[0].variants[?available>0].sku": {"a2", "a3"},
		"items[0].variants[?available>1].sku": {"a2"},
		"items[0].variants[?available>5].sku": nil,
		"n":                                   {"3"},
		"ok":                                  {"true"},
		"o":                                   {`{"k":null}`},
		"items[5].slug":                       nil,
		"nope.deeper":                         nil,
		"items[0].variants[1].sku":            {"a2"},
	}
	for path, want := range tests {
		ex, err := compileExtract(fileExtract{Name: "v", JSON: path})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var got []string
		for _, pick := range []string{"first", "last"} {
			ex.pick = pick
			v, err := ex.apply(nil, []byte(doc), nil)
			if err == nil {
				got = append(got, v)
			}
		}
		if want == nil {
			if got != nil {
				t.Errorf("%s: got %v, want no match", path, got)
			}
			continue
		}
		if got[0] != want[0] || got[1] != want[len(want)-1] {
			t.Errorf("%s: first/last %v, want %v", path, got, want)
		}
	}
	for _, bad := range []string{"", "a..b", "a.", "a[x]", "]", "a[0", "[0].", "a[?b]", "a[?>1]", "a[?b>x]"} {
		if _, err := parsePath(bad); err == nil {
			t.Errorf("parsePath(%q): no error", bad)
		}
	}
}

func TestBuiltinJourneysParse(t *testing.T) {
	for _, name := range []string{"browse", "buy", "get"} {
		if _, err := Journey(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Journey("drop"); err == nil || !strings.Contains(err.Error(), "--drop") {
		t.Errorf("drop without a drop: %v", err)
	}
	if mix, err := ParseMix("drop", DropOptions{ID: "drop_1", SKU: "CC-42"}); err != nil || mix[0].Scenario.drop.Quantity != 1 {
		t.Errorf("drop: %+v %v", mix, err)
	}
	for _, bad := range []DropOptions{{SKU: "X"}, {ID: "a/b", SKU: "X"}, {ID: "d"}, {ID: "d", SKU: "X", Quantity: -1}} {
		if _, err := DropScenario(bad); err == nil {
			t.Errorf("DropScenario(%+v): no error", bad)
		}
	}
	mix, err := ParseMix("browse=80,buy=20,get=0", DropOptions{})
	if err != nil || len(mix) != 2 || mix[0].Weight != 80 || mix[1].Scenario.Name != "buy" {
		t.Errorf("mix: %+v %v", mix, err)
	}
	for _, bad := range []string{"", "browse=x", "nope=1", "browse=1,browse=2", "get=0"} {
		if _, err := ParseMix(bad, DropOptions{}); err == nil {
			t.Errorf("ParseMix(%q): no error", bad)
		}
	}
}

// FuzzParseScenario feeds arbitrary files to the parser: it must return a
// scenario or an error naming the file, never panic, and every scenario it
// accepts must build its requests.
func FuzzParseScenario(f *testing.F) {
	f.Add([]byte(shopScenario))
	for _, name := range []string{"browse", "buy"} {
		b, _ := journeyFiles.ReadFile("journeys/" + name + ".yaml")
		f.Add(b)
	}
	f.Add([]byte("steps:\n  - url: /{{.x}}\n"))
	f.Add([]byte("steps: [{url: /, extract: [{name: a, json: 'a[*].b'}]}]"))
	f.Add([]byte("steps:\n  - url: /\n    check: {status: [2xx, 301-302]}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		sc, err := ParseScenario("f.yaml", src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		e := &engine{cfg: Config{Mix: []Weighted{{sc, 1}}}}
		e.urls = [][]string{make([]string, len(sc.Steps))}
		s := &session{vars: map[string]string{}}
		for k, v := range sc.vars {
			s.vars[k] = v
		}
		for _, st := range sc.Steps {
			for _, ex := range st.extract {
				s.vars[ex.name] = "v"
			}
			for _, v := range builtinVars {
				s.vars[v] = "1"
			}
		}
		var buf bytes.Buffer
		for _, st := range sc.Steps {
			// Rendering may fail (a template can call a function with bad
			// arguments) but must not panic.
			_, _ = st.url.render(&buf, s.vars)
		}
	})
}
