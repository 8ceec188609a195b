package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/surge-commerce/surge/internal/shop"
	"github.com/surge-commerce/surge/internal/sqlitestore"
)

// durabilityFlags say how far the embedded database waits for the disk
// before an order is acknowledged.
type durabilityFlags struct {
	SQLiteSync string
}

func (d *durabilityFlags) add(f *pflag.FlagSet) {
	f.StringVar(&d.SQLiteSync, "sqlite-synchronous", string(sqlitestore.SyncFull),
		"embedded database: full syncs the log at every commit, so an acknowledged order survives an OS crash or power loss (group commit shares one sync among concurrent writes); normal survives only a crash of the process (for measurements)")
}

func (d durabilityFlags) validate() error {
	if _, err := sqlitestore.ParseSynchronous(d.SQLiteSync); err != nil {
		return fmt.Errorf("--sqlite-synchronous: %w", err)
	}
	return nil
}

func (d durabilityFlags) apply(sc *shop.Config) {
	sc.SQLiteSynchronous, _ = sqlitestore.ParseSynchronous(d.SQLiteSync) // checked by validate
}
