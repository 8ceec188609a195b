package shop

import (
	"github.com/surge-commerce/surge/internal/ops"
)

// RegisterHealth adds the readiness checks of the dependencies role uses
// to h.
//
// Readiness fails only for what is local to this process: the embedded
// SQLite database. A shared dependency (PostgreSQL, Redis, the NATS
// cluster) is down for every replica at once, and failing readiness on
// all of them would take the load balancer's whole pool out, cached pages
// and browse included, while checkout could wait. Such an outage, and any
// trouble with the event bus or a stuck outbox (orders wait there for
// it), makes the replica degraded: /readyz says what is off and stays 200.
func (s *Shop) RegisterHealth(h *ops.Health, role Role) {
	if s.sharedDB {
		h.AddDegradedCheck("database", "accounts, cart, checkout and orders (cached pages and the catalog on read replicas still served)", s.Store.Ping)
	} else {
		h.AddCheck("database", s.Store.Ping)
	}
	if s.Redis != nil {
		h.AddDegradedCheck("redis", "sessions, cart, checkout and the waiting room", s.Redis.Ping)
	}
	if s.Room != nil {
		h.AddDegradedCheck("drops", "the line and sale of each drop named", s.DropLines.Check)
	}
	if s.Bus != nil {
		h.AddDegradedCheck("event bus", "payment and confirmation of new orders (they wait in the outbox)", s.Bus.Ping)
	}
	if role == RoleAll || role == RoleAPI {
		h.AddDegradedCheck("outbox", "payment and confirmation of new orders", s.relay.Check(s.outboxMaxLag))
	}
}
