package natsbus

import (
	"errors"
	"testing"
)

// TestFaultRunWaitsForARepeatedFault: one failed health check, such as
// nats-server's readiness check timing out on a starved CPU, does not
// restart the server; a fault seen confirmChecks times in a row does, and
// stays confirmed until a check passes.
func TestFaultRunWaitsForARepeatedFault(t *testing.T) {
	spurious := errors.New("failed to be ready for connections after 1ms: ")
	for _, tc := range []struct {
		name    string
		checks  []error
		restart []bool
	}{
		{"healthy", []error{nil, nil, nil}, []bool{false, false, false}},
		{"one spurious failure", []error{spurious, nil, nil}, []bool{false, false, false}},
		{"spurious failures apart", []error{spurious, spurious, nil, spurious, spurious, nil}, []bool{false, false, false, false, false, false}},
		{"a lasting fault", []error{spurious, spurious, spurious, spurious, nil, spurious}, []bool{false, false, true, true, false, false}},
	} {
		var f faultRun
		for i, err := range tc.checks {
			if got := f.observe(err); got != tc.restart[i] {
				t.Errorf("%s: check %d (%v): restart %v, want %v", tc.name, i, err, got, tc.restart[i])
			}
		}
	}
}
