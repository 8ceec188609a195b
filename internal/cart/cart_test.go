package cart

import (
	"errors"
	"testing"

	"github.com/surge-commerce/surge/internal/money"
)

func TestPrice(t *testing.T) {
	usd := func(a int64) money.Money { return money.Money{Amount: a, Currency: "USD"} }
	offers := map[string]Offer{
		"A": {SKU: "A", Price: usd(1999), Available: 5, Active: true},
		"B": {SKU: "B", Price: usd(500), Available: 0, Active: true},
		"D": {SKU: "D", Price: usd(100), Active: false},
	}
	tests := []struct {
		name    string
		pricing Pricing
		lines   []Line
		want    Totals
		items   int
	}{
		{"empty cart ships free", Pricing{Currency: "USD", TaxBasisPoints: 825, ShippingFlat: 500}, nil,
			Totals{Subtotal: usd(0), Tax: usd(0), Shipping: usd(0), Total: usd(0)}, 0},
		{"tax and flat shipping", Pricing{Currency: "USD", TaxBasisPoints: 825, ShippingFlat: 500}, []Line{{"A", 2}, {"B", 1}},
			Totals{ItemCount: 3, Subtotal: usd(4498), Tax: usd(371), Shipping: usd(500), Total: usd(5369)}, 2},
		{"free over threshold", Pricing{Currency: "USD", ShippingFlat: 500, FreeShippingOver: 4000}, []Line{{"A", 3}},
			Totals{ItemCount: 3, Subtotal: usd(5997), Tax: usd(0), Shipping: usd(0), Total: usd(5997)}, 1},
		{"just under threshold pays", Pricing{Currency: "USD", ShippingFlat: 500, FreeShippingOver: 4000}, []Line{{"A", 2}},
			Totals{ItemCount: 2, Subtotal: usd(3998), Tax: usd(0), Shipping: usd(500), Total: usd(4498)}, 1},
		{"withdrawn and unknown skus dropped", Pricing{Currency: "USD"}, []Line{{"D", 1}, {"X", 1}, {"A", 1}},
			Totals{ItemCount: 1, Subtotal: usd(1999), Tax: usd(0), Shipping: usd(0), Total: usd(1999)}, 1},
	}
	for _, tt := range tests {
		items, got, err := tt.pricing.Price(tt.lines, offers)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got != tt.want || len(items) != tt.items {
			t.Errorf("%s: totals %+v (%d items), want %+v (%d)", tt.name, got, len(items), tt.want, tt.items)
		}
	}
	if _, _, err := (Pricing{Currency: "EUR"}).Price([]Line{{"A", 1}}, offers); err == nil {
		t.Error("currency mismatch accepted")
	}
	if _, _, err := (Pricing{Currency: "USD"}).Price([]Line{{"A", 1 << 62}}, offers); !errors.Is(err, ErrTooLarge) {
		t.Errorf("overflow: %v, want ErrTooLarge", err)
	}
}

func TestPricingValidate(t *testing.T) {
	for _, p := range []Pricing{{Currency: "usd"}, {Currency: "USD", TaxBasisPoints: -1}, {Currency: "USD", TaxBasisPoints: 10001}, {Currency: "USD", ShippingFlat: -5}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := (Pricing{Currency: "USD", TaxBasisPoints: 825}).Validate(); err != nil {
		t.Error(err)
	}
}
