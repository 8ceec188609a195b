package money

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, cur string
		want    int64
		wantErr bool
	}{
		{"19.99", "USD", 1999, false},
		{"20", "USD", 2000, false},
		{"0.5", "USD", 50, false},
		{"0.05", "USD", 5, false},
		{"1500", "JPY", 1500, false},
		{"1.234", "KWD", 1234, false},
		{"1.234", "USD", 0, true},
		{"1.5", "JPY", 0, true},
		{"-1.00", "USD", 0, true},
		{"1e3", "USD", 0, true},
		{"", "USD", 0, true},
		{"1.", "USD", 0, true},
		{".5", "USD", 0, true},
		{"NaN", "USD", 0, true},
		{"99999999999999999999", "USD", 0, true},
		{"1.00", "usd", 0, true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, tt.cur)
		if (err != nil) != tt.wantErr {
			t.Errorf("Parse(%q, %q) error = %v, wantErr %v", tt.in, tt.cur, err, tt.wantErr)
			continue
		}
		if err == nil && got.Amount != tt.want {
			t.Errorf("Parse(%q, %q) = %d, want %d", tt.in, tt.cur, got.Amount, tt.want)
		}
	}
}

func TestArithmetic(t *testing.T) {
	usd := func(a int64) Money { return Money{Amount: a, Currency: "USD"} }
	tests := []struct {
		name    string
		op      func() (Money, error)
		want    int64
		wantErr bool
	}{
		{"add", func() (Money, error) { return usd(1999).Add(usd(1)) }, 2000, false},
		{"add mismatch", func() (Money, error) { return usd(1).Add(Money{Amount: 1, Currency: "EUR"}) }, 0, true},
		{"add overflow", func() (Money, error) { return usd(1<<63 - 1).Add(usd(1)) }, 0, true},
		{"mul", func() (Money, error) { return usd(1999).Mul(3) }, 5997, false},
		{"mul zero", func() (Money, error) { return usd(1999).Mul(0) }, 0, false},
		{"mul negative", func() (Money, error) { return usd(1999).Mul(-1) }, 0, true},
		{"mul overflow", func() (Money, error) { return usd(1 << 62).Mul(4) }, 0, true},
		{"tax 8.25% rounds half up", func() (Money, error) { return usd(1000).Percent(825) }, 83, false},
		{"tax 20%", func() (Money, error) { return usd(4999).Percent(2000) }, 1000, false},
		{"tax 0", func() (Money, error) { return usd(4999).Percent(0) }, 0, false},
		{"tax negative", func() (Money, error) { return usd(4999).Percent(-1) }, 0, true},
	}
	for _, tt := range tests {
		got, err := tt.op()
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: error = %v, wantErr %v", tt.name, err, tt.wantErr)
			continue
		}
		if err == nil && got.Amount != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, got.Amount, tt.want)
		}
	}
	if _, err := usd(1).Add(Money{Amount: 1, Currency: "EUR"}); !errors.Is(err, ErrCurrencyMismatch) {
		t.Errorf("mismatch error = %v, want ErrCurrencyMismatch", err)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		m    Money
		want string
	}{
		{Money{1999, "USD"}, "$19.99"},
		{Money{5, "USD"}, "$0.05"},
		{Money{0, "EUR"}, "€0.00"},
		{Money{1500, "JPY"}, "¥1500"},
		{Money{1234, "CHF"}, "12.34 CHF"},
		{Money{1234, "KWD"}, "1.234 KWD"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.m, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"19.99", "0", "1.", "-1", "１", "1.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s, "USD")
		if err != nil {
			return
		}
		if m.Amount < 0 {
			t.Fatalf("Parse(%q) gave negative %d", s, m.Amount)
		}
		back, err := Parse(m.Decimal(), "USD")
		if err != nil || back != m {
			t.Fatalf("round trip %q -> %q -> %v, %v", s, m.Decimal(), back, err)
		}
	})
}
