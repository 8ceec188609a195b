package waitroom

import "time"

// The room's poll bounds when Config leaves them unset, and the share of
// a buyer's estimated wait it tells them to wait before asking again.
const (
	defaultMinPoll = 2 * time.Second
	defaultMaxPoll = 30 * time.Second
	waitPollShare  = 3
)

// PollInterval is how long a room with the default MinPoll and MaxPoll
// tells a buyer in line, whose estimated wait is wait, to wait before
// asking again (before its jitter, up to 1,023 ms, and the bound the
// drop's no-show window sets): a third of the wait, between 2 s and 30 s.
// The capacity planner counts a line's status polls with it.
func PollInterval(wait time.Duration) time.Duration {
	return min(max(wait/waitPollShare, defaultMinPoll), defaultMaxPoll)
}
