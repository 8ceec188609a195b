package shop

import (
	"errors"
	"strings"
)

// simulatedTokenizer stands in until the simulated payment provider is
// wired: it accepts Luhn-valid numbers and keeps only the last four digits.
type simulatedTokenizer struct{}

func (simulatedTokenizer) Tokenize(card string) (string, string, error) {
	card = strings.ReplaceAll(card, " ", "")
	if len(card) < 12 || len(card) > 19 {
		return "", "", errors.New("not a card number")
	}
	sum := 0
	for i := len(card) - 1; i >= 0; i-- {
		d := int(card[i] - '0')
		if d < 0 || d > 9 {
			return "", "", errors.New("not a card number")
		}
		if (len(card)-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	if sum%10 != 0 {
		return "", "", errors.New("not a valid card number")
	}
	return "pm_sim_" + card[len(card)-4:], card[len(card)-4:], nil
}
