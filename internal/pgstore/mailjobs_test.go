package pgstore_test

import (
	"testing"
	"time"

	"github.com/surge-commerce/surge/internal/pgstore"
	"github.com/surge-commerce/surge/internal/storetest"
)

func TestMailConformance(t *testing.T) {
	storetest.RunMail(t, func(t *testing.T, now func() time.Time) storetest.MailStore {
		return newTestStore(t, false, func(c *pgstore.Config) { c.Now = now })
	})
}
