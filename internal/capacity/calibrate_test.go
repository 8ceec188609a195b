package capacity

import (
	"slices"
	"testing"

	"github.com/surge-commerce/surge/internal/loadtest"
)

// TestClassRunsParse: every class calibration drives is a scenario
// surge load accepts, and the steps that judge it are in it (the drop's
// status class once polled four steps of one name, which no scenario
// may have).
func TestClassRunsParse(t *testing.T) {
	f := &shopFacts{category: "women", product: "linen-shirt", word: "linen", sku: "SKU-1"}
	for class, r := range classRuns(f, "drop_1") {
		sc, err := loadtest.ParseScenario(class+".yaml", []byte(r.scenario))
		if err != nil {
			t.Errorf("%s: %v", class, err)
			continue
		}
		var names []string
		for _, st := range sc.Steps {
			names = append(names, st.Name)
		}
		for _, s := range r.stepNames {
			if !slices.Contains(names, s) {
				t.Errorf("%s: judged by step %q, which the scenario (%v) lacks", class, s, names)
			}
		}
	}
}
