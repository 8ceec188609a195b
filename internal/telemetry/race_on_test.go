//go:build race

package telemetry

// raceEnabled: the race detector makes sync.Pool drop items at random,
// so allocation counts of code using pools (slog's buffers) are noise.
const raceEnabled = true
