package order

import (
	"strings"
	"testing"
)

func TestTransitions(t *testing.T) {
	all := []Status{StatusPendingPayment, StatusPaid, StatusFulfilled, StatusPaymentFailed, StatusCancelled, StatusExpired}
	allowed := map[[2]Status]bool{
		{StatusPendingPayment, StatusPaid}:          true,
		{StatusPendingPayment, StatusPaymentFailed}: true,
		{StatusPendingPayment, StatusCancelled}:     true,
		{StatusPendingPayment, StatusExpired}:       true,
		{StatusPaid, StatusFulfilled}:               true,
		{StatusPaid, StatusCancelled}:               true,
	}
	for _, from := range all {
		for _, to := range all {
			if got := CanTransition(from, to); got != allowed[[2]Status{from, to}] {
				t.Errorf("CanTransition(%s, %s) = %v", from, to, got)
			}
		}
	}
	for _, s := range all {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
		wantFinal := s == StatusFulfilled || s == StatusPaymentFailed || s == StatusCancelled || s == StatusExpired
		if s.Final() != wantFinal {
			t.Errorf("%s.Final() = %v", s, s.Final())
		}
		if s.HoldsStock() != (s == StatusPendingPayment) {
			t.Errorf("%s.HoldsStock() = %v", s, s.HoldsStock())
		}
	}
	if Status("shipped").Valid() {
		t.Error("unknown status valid")
	}
}

func TestAddress(t *testing.T) {
	good := Address{Name: "Ann Lee", Line1: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "US"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(*Address)
	}{
		{"no name", func(a *Address) { a.Name = "" }},
		{"no line1", func(a *Address) { a.Line1 = " " }},
		{"no city", func(a *Address) { a.City = "" }},
		{"no postal code", func(a *Address) { a.PostalCode = "" }},
		{"lower country", func(a *Address) { a.Country = "us" }},
		{"long country", func(a *Address) { a.Country = "USA" }},
		{"newline", func(a *Address) { a.Line1 = "1 Main\nSt" }},
		{"too long", func(a *Address) { a.City = string(make([]byte, 201)) }},
	}
	for _, tt := range tests {
		a := good
		tt.mod(&a)
		if a.Validate() == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestOpensWith(t *testing.T) {
	tok := NewAccessToken()
	if len(tok) < 26 || tok == NewAccessToken() {
		t.Fatalf("NewAccessToken = %q: want 26+ random characters", tok)
	}
	o := Order{ID: "ord_1", AccessToken: tok}
	for _, tt := range []struct {
		name  string
		o     Order
		token string
		want  bool
	}{
		{"its token", o, tok, true},
		{"another token", o, NewAccessToken(), false},
		{"no token", o, "", false},
		{"other case", o, strings.ToLower(tok), false},
		{"a prefix", o, tok[:len(tok)-1], false},
		{"longer", o, tok + "A", false},
		{"huge", o, strings.Repeat(tok, 1000), false},
		{"order without a token, none given", Order{ID: "ord_2"}, "", false},
		{"order without a token, one given", Order{ID: "ord_2"}, tok, false},
	} {
		if got := tt.o.OpensWith(tt.token); got != tt.want {
			t.Errorf("%s: OpensWith = %v, want %v", tt.name, got, tt.want)
		}
	}
}
