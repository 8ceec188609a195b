package loadtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// extractor takes one value out of a response into a session variable.
type extractor struct {
	name   string
	path   []pathElem     // from the JSON body
	re     *regexp.Regexp // from the body, first group (or whole match)
	header string
	cookie string
	pick   string // first, last or random, when several values match
}

var varNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func compileExtract(f fileExtract) (extractor, error) {
	ex := extractor{name: f.Name, header: f.Header, cookie: f.Cookie, pick: f.Pick}
	if !varNameRE.MatchString(f.Name) {
		return ex, fmt.Errorf("name %q: want a variable name like sku or order_id", f.Name)
	}
	sources := 0
	for _, s := range []string{f.JSON, f.Regex, f.Header, f.Cookie} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return ex, errors.New("want exactly one of json, regex, header or cookie")
	}
	switch ex.pick {
	case "":
		ex.pick = "first"
	case "first", "last", "random":
	default:
		return ex, fmt.Errorf("pick %q: want first, last or random", f.Pick)
	}
	var err error
	if f.JSON != "" {
		if ex.path, err = parsePath(f.JSON); err != nil {
			return ex, err
		}
	}
	if f.Regex != "" {
		if ex.re, err = regexp.Compile(f.Regex); err != nil {
			return ex, fmt.Errorf("regex: %v", err)
		}
	}
	return ex, nil
}

// apply extracts the value from a response. body is nil when no body was
// read; the caller reads it whenever a step has body extractors.
func (ex *extractor) apply(resp *http.Response, body []byte, jar http.CookieJar) (string, error) {
	var vals []string
	switch {
	case ex.path != nil:
		var doc any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return "", fmt.Errorf("body is not JSON: %v", err)
		}
		for _, v := range walkPath(doc, ex.path) {
			vals = append(vals, jsonString(v))
		}
	case ex.re != nil:
		for _, m := range ex.re.FindAllSubmatch(body, -1) {
			if len(m) > 1 {
				vals = append(vals, string(m[1]))
			} else {
				vals = append(vals, string(m[0]))
			}
		}
	case ex.header != "":
		vals = resp.Header.Values(ex.header)
	case ex.cookie != "":
		for _, c := range resp.Cookies() {
			if c.Name == ex.cookie {
				vals = append(vals, c.Value)
			}
		}
		if len(vals) == 0 && jar != nil {
			for _, c := range jar.Cookies(resp.Request.URL) {
				if c.Name == ex.cookie {
					vals = append(vals, c.Value)
				}
			}
		}
	}
	if len(vals) == 0 {
		return "", errors.New("no match")
	}
	switch ex.pick {
	case "last":
		return vals[len(vals)-1], nil
	case "random":
		return vals[rand.IntN(len(vals))], nil
	}
	return vals[0], nil
}

func jsonString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case nil:
		return ""
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// pathElem is one step into a JSON document: an object key, an array
// index, every element of an array, or the elements whose numeric field
// is above a bound.
type pathElem struct {
	key   string
	index int
	kind  byte // 'k' key, 'i' index, '*' all elements, 'f' filter key>index
}

// parsePath parses paths such as "items[*].slug", "variants[0].sku",
// "order.id" or "variants[?available>0].sku" (the elements whose numeric
// field is above a whole number).
func parsePath(p string) ([]pathElem, error) {
	if strings.TrimSpace(p) == "" {
		return nil, errors.New("empty JSON path")
	}
	var out []pathElem
	s := p
	for s != "" {
		switch {
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return nil, fmt.Errorf("JSON path %q: missing ]", p)
			}
			in := s[1:end]
			if f, ok := strings.CutPrefix(in, "?"); ok {
				key, bound, ok := strings.Cut(f, ">")
				n, err := strconv.Atoi(bound)
				if !ok || key == "" || err != nil {
					return nil, fmt.Errorf("JSON path %q: filter [%s]: want [?field>N]", p, in)
				}
				out = append(out, pathElem{kind: 'f', key: key, index: n})
			} else if in == "*" {
				out = append(out, pathElem{kind: '*'})
			} else {
				n, err := strconv.Atoi(in)
				if err != nil {
					return nil, fmt.Errorf("JSON path %q: [%s] is not an index or *", p, in)
				}
				out = append(out, pathElem{kind: 'i', index: n})
			}
			s = s[end+1:]
			if strings.HasPrefix(s, ".") {
				s = s[1:]
				if s == "" || s[0] == '.' || s[0] == '[' {
					return nil, fmt.Errorf("JSON path %q: empty key", p)
				}
			}
		default:
			end := strings.IndexAny(s, ".[]")
			if end < 0 {
				end = len(s)
			}
			if end == 0 || end < len(s) && s[end] == ']' {
				return nil, fmt.Errorf("JSON path %q: unexpected %q", p, s[end:end+1])
			}
			out = append(out, pathElem{kind: 'k', key: s[:end]})
			s = s[end:]
			if strings.HasPrefix(s, ".") {
				s = s[1:]
				if s == "" || s[0] == '.' || s[0] == '[' {
					return nil, fmt.Errorf("JSON path %q: empty key", p)
				}
			}
		}
	}
	return out, nil
}

func walkPath(v any, path []pathElem) []any {
	if len(path) == 0 {
		return []any{v}
	}
	e, rest := path[0], path[1:]
	switch e.kind {
	case 'k':
		if m, ok := v.(map[string]any); ok {
			if c, ok := m[e.key]; ok {
				return walkPath(c, rest)
			}
		}
	case 'i':
		if a, ok := v.([]any); ok {
			i := e.index
			if i < 0 {
				i += len(a)
			}
			if i >= 0 && i < len(a) {
				return walkPath(a[i], rest)
			}
		}
	case '*':
		if a, ok := v.([]any); ok {
			var out []any
			for _, c := range a {
				out = append(out, walkPath(c, rest)...)
			}
			return out
		}
	case 'f':
		if a, ok := v.([]any); ok {
			var out []any
			for _, c := range a {
				if m, ok := c.(map[string]any); ok && above(m[e.key], e.index) {
					out = append(out, walkPath(c, rest)...)
				}
			}
			return out
		}
	}
	return nil
}

// above reports whether a decoded JSON number is greater than n.
func above(v any, n int) bool {
	switch x := v.(type) {
	case float64:
		return x > float64(n)
	case json.Number:
		f, err := x.Float64()
		return err == nil && f > float64(n)
	}
	return false
}

// check decides whether a response counts as a success.
type check struct {
	status   []statusRange // empty: any status below 400
	contains []string
	json     []jsonCheck
}

type jsonCheck struct {
	expr string
	path []pathElem
}

// failure returns why the response fails the check, or "".
func (c *check) failure(status int, body []byte) string {
	ok := len(c.status) == 0 && status < 400
	for _, r := range c.status {
		ok = ok || (status >= r.lo && status <= r.hi)
	}
	if !ok {
		return "status " + strconv.Itoa(status)
	}
	for _, s := range c.contains {
		if !bytes.Contains(body, []byte(s)) {
			return "body lacks " + strconv.Quote(s)
		}
	}
	if len(c.json) > 0 {
		var doc any
		if json.Unmarshal(body, &doc) != nil {
			return "body is not JSON"
		}
		for _, j := range c.json {
			found := false
			for _, v := range walkPath(doc, j.path) {
				found = found || v != nil
			}
			if !found {
				return "json lacks " + j.expr
			}
		}
	}
	return ""
}
