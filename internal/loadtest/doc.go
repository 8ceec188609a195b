// Package loadtest is the engine behind `surge load`: it drives a shop over
// HTTP the way a crowd would and says whether the shop held.
//
// A run (Run, with a Config) sends sessions that follow a Scenario, a
// journey of steps read from YAML (the built-in browse and buy journeys, a
// drop's buyers from DropScenario, or a weighted mix of them from
// ParseMix), either on an arrival schedule whatever the target does (the
// open model: a Plan of constant, staged, spike or listed arrival rates)
// or from a fixed number of virtual users (the closed model). Latency is
// measured from when a request was due, not when it was sent, so a slow
// shop cannot hide its slowness by slowing the load (coordinated
// omission). The Result holds per-step latency histograms, status counts,
// a time series and, for drops, each buyer's final answer; Thresholds and
// SLOs judge it, and package report shows it. A run can be split over
// agents on other machines (AgentHandler, RunAgents) whose results are
// merged.
package loadtest
