package catalog

// StockLedger is the stock picture of one SKU next to what its reservations
// say it should be, for invariant checks: Reserved must equal
// HeldByReservations, Sold must equal SoldByReservations, and
// Reserved+Sold must never pass OnHand.
type StockLedger struct {
	OnHand, Reserved, Sold int64
	HeldByReservations     int64
	SoldByReservations     int64
}
