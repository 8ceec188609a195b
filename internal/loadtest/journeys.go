package loadtest

import (
	"embed"
	"fmt"
	"strconv"
	"strings"
)

//go:embed journeys/*.yaml
var journeyFiles embed.FS

// Journeys lists the built-in Surge journeys.
var Journeys = []string{"browse", "buy", "drop", "get"}

// Journey returns a built-in journey by name: browse (home, category,
// product, with think time), buy (product, cart, checkout with an
// idempotency key) or get (one GET of the target, no think time). The
// drop buyer needs to know its drop: see DropScenario and ParseMix.
func Journey(name string) (*Scenario, error) {
	return journey(name, DropOptions{})
}

func journey(name string, drop DropOptions) (*Scenario, error) {
	switch name {
	case "get":
		return GetScenario(), nil
	case "drop":
		return DropScenario(drop)
	}
	src, err := journeyFiles.ReadFile("journeys/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("unknown journey %q (want one of %s)", name, strings.Join(Journeys, ", "))
	}
	return ParseScenario("journey "+name, src)
}

// Weighted is a scenario and its share of the sessions.
type Weighted struct {
	Scenario *Scenario
	Weight   int
}

// ParseMix parses "browse=80,buy=20" into built-in journeys with weights. A
// single name without a weight ("browse") is the whole mix. drop is the
// drop the drop journey's buyers queue for, if the mix has it.
func ParseMix(s string, drop DropOptions) ([]Weighted, error) {
	var out []Weighted
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, hasWeight := strings.Cut(part, "=")
		weight := 1
		if hasWeight {
			n, err := strconv.Atoi(strings.TrimSpace(w))
			if err != nil || n < 0 {
				return nil, fmt.Errorf("mix %q: weight of %s must be a whole number >= 0", s, name)
			}
			weight = n
		}
		name = strings.TrimSpace(name)
		if seen[name] {
			return nil, fmt.Errorf("mix %q: %s appears twice", s, name)
		}
		seen[name] = true
		sc, err := journey(name, drop)
		if err != nil {
			return nil, err
		}
		if weight > 0 {
			out = append(out, Weighted{sc, weight})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("mix %q: no journey with a positive weight", s)
	}
	return out, nil
}
