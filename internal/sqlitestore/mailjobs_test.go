package sqlitestore

import (
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/storetest"
)

func TestMailConformance(t *testing.T) {
	storetest.RunMail(t, func(t *testing.T, now func() time.Time) storetest.MailStore {
		return newTestStore(t, WithClock(now))
	})
}
