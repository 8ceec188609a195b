// Package money represents prices as integer minor units with an ISO 4217
// currency code, so that floating-point rounding can never change a total.
package money

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrCurrencyMismatch is returned when arithmetic mixes two currencies.
var ErrCurrencyMismatch = errors.New("currency mismatch")

// ErrOverflow is returned when a result would not fit in an int64 of
// minor units.
var ErrOverflow = errors.New("amount overflow")

// Money is an amount in minor units (cents for USD) of one currency.
// The zero value is not a valid price; use New or Parse.
type Money struct {
	// Amount is in minor units: 1999 means 19.99 for a two-decimal currency.
	Amount int64 `json:"amount"`
	// Currency is an upper-case ISO 4217 code such as "USD".
	Currency string `json:"currency"`
}

// minorDigits lists currencies whose minor unit is not two digits.
var minorDigits = map[string]int{
	"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2,
	"BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3,
}

// Digits reports how many decimal digits the currency's minor unit has.
func Digits(currency string) int {
	if d, ok := minorDigits[currency]; ok {
		return d
	}
	return 2
}

// ValidCurrency reports whether code looks like an ISO 4217 code: three
// upper-case ASCII letters.
func ValidCurrency(code string) bool {
	if len(code) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if code[i] < 'A' || code[i] > 'Z' {
			return false
		}
	}
	return true
}

// New returns amount minor units of currency, rejecting a malformed code or a
// negative amount (prices and totals in a shop are never negative).
func New(amount int64, currency string) (Money, error) {
	if !ValidCurrency(currency) {
		return Money{}, fmt.Errorf("currency %q: must be a three-letter ISO 4217 code", currency)
	}
	if amount < 0 {
		return Money{}, fmt.Errorf("amount %d: must not be negative", amount)
	}
	return Money{Amount: amount, Currency: currency}, nil
}

// Parse reads a decimal string such as "19.99" or "20" in currency. It
// refuses more fractional digits than the currency has rather than rounding.
func Parse(s, currency string) (Money, error) {
	if !ValidCurrency(currency) {
		return Money{}, fmt.Errorf("currency %q: must be a three-letter ISO 4217 code", currency)
	}
	digits := Digits(currency)
	whole, frac, hasDot := strings.Cut(strings.TrimSpace(s), ".")
	if whole == "" || (hasDot && frac == "") || len(frac) > digits {
		return Money{}, fmt.Errorf("parse %q: want a non-negative decimal with at most %d fractional digits", s, digits)
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return Money{}, fmt.Errorf("parse %q: want a non-negative decimal with at most %d fractional digits", s, digits)
			}
		}
	}
	frac += strings.Repeat("0", digits-len(frac))
	v, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return Money{}, fmt.Errorf("parse %q: %w", s, err)
	}
	return Money{Amount: v, Currency: currency}, nil
}

// Add returns m+o; both must be in the same currency.
func (m Money) Add(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, fmt.Errorf("add %s to %s: %w", o.Currency, m.Currency, ErrCurrencyMismatch)
	}
	sum := m.Amount + o.Amount
	if (sum > m.Amount) != (o.Amount > 0) {
		return Money{}, fmt.Errorf("add %d to %d: %w", o.Amount, m.Amount, ErrOverflow)
	}
	return Money{Amount: sum, Currency: m.Currency}, nil
}

// Mul returns m multiplied by a non-negative integer quantity.
func (m Money) Mul(qty int64) (Money, error) {
	if qty < 0 {
		return Money{}, fmt.Errorf("multiply by %d: quantity must not be negative", qty)
	}
	if qty != 0 && m.Amount > (1<<63-1)/qty {
		return Money{}, fmt.Errorf("multiply %d by %d: %w", m.Amount, qty, ErrOverflow)
	}
	return Money{Amount: m.Amount * qty, Currency: m.Currency}, nil
}

// Percent returns m times basisPoints/10000, rounded half away from zero, for
// tax rates such as 825 (8.25%). Integer arithmetic keeps it exact.
func (m Money) Percent(basisPoints int64) (Money, error) {
	if basisPoints < 0 {
		return Money{}, fmt.Errorf("percent %d: must not be negative", basisPoints)
	}
	if basisPoints != 0 && m.Amount > (1<<63-1)/basisPoints {
		return Money{}, fmt.Errorf("percent of %d: %w", m.Amount, ErrOverflow)
	}
	return Money{Amount: (m.Amount*basisPoints + 5000) / 10000, Currency: m.Currency}, nil
}

// Decimal renders the amount without a currency sign: "19.99".
func (m Money) Decimal() string {
	d := Digits(m.Currency)
	neg := m.Amount < 0
	a := m.Amount
	if neg {
		a = -a
	}
	s := strconv.FormatInt(a, 10)
	if d > 0 {
		if len(s) <= d {
			s = strings.Repeat("0", d-len(s)+1) + s
		}
		s = s[:len(s)-d] + "." + s[len(s)-d:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

var symbols = map[string]string{"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$"}

// String renders the amount for people: "$19.99", or "19.99 CHF" for a
// currency without a well-known symbol.
func (m Money) String() string {
	if sym, ok := symbols[m.Currency]; ok {
		return sym + m.Decimal()
	}
	return m.Decimal() + " " + m.Currency
}
