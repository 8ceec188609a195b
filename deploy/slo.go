package deploy

import _ "embed"

// SLOFile is slo/surge.yaml, the objectives, built into the binary so that
// the operations page (/ops) judges the shop by the same objectives its
// alerts use.
//
//go:embed slo/surge.yaml
var SLOFile []byte
