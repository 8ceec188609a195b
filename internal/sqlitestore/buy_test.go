package sqlitestore

// The buy-path behaviour every store shares is tested by
// storetest.RunShop (TestShopConformance); these tests are about how this
// store does it.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestGroupCommitIsolation: a failing write in a batch does not undo the
// others, and every caller learns its own outcome.
func TestGroupCommitIsolation(t *testing.T) {
	s := newTestStore(t)
	if _, err := s.writer.Exec(`CREATE TABLE counters_test (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var okCount atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.write(context.Background(), func(tx wtx) error {
				if _, err := tx.Exec(`INSERT INTO counters_test (n) VALUES (?)`, i); err != nil {
					return err
				}
				if i%3 == 0 {
					return errors.New("refused")
				}
				return nil
			})
			if err == nil {
				okCount.Add(1)
			}
		}()
	}
	wg.Wait()
	var n int64
	if err := s.reader.QueryRow(`SELECT count(*) FROM counters_test`).Scan(&n); err != nil || n != okCount.Load() || n != 133 {
		t.Fatalf("rows %d, ok %d (%v); want 133", n, okCount.Load(), err)
	}
}
