package waitroom

import (
	"crypto/sha256"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Proof of work, hashcash style: Room.Challenge hands out a signed,
// time-bounded challenge bound to the drop and the visitor; the client
// finds a nonce such that SHA-256(challenge + ":" + nonce) starts with
// the challenge's number of zero bits, and joins with
// challenge + ":" + nonce. Checking costs one hash and one MAC; solving
// costs about 2^difficulty hashes, for every identity a bot makes up.

// maxPoWDifficulty bounds difficulty: 2^32 hashes is already minutes.
const maxPoWDifficulty = 32

// challengeTTL is how long a challenge may be solved and used.
const challengeTTL = 5 * time.Minute

// maxNonceLen bounds the nonce a client may send.
const maxNonceLen = 32

// SolvePoW finds a solution to challenge at difficulty and returns it in
// the form Join expects (challenge + ":" + nonce). It takes about
// 2^difficulty SHA-256 hashes; tests and the load tester use it, browsers
// do the same in JavaScript.
func SolvePoW(challenge string, difficulty int) string {
	buf := make([]byte, 0, len(challenge)+1+16)
	buf = append(buf, challenge...)
	buf = append(buf, ':')
	prefix := len(buf)
	for n := uint64(0); ; n++ {
		buf = strconv.AppendUint(buf[:prefix], n, 36)
		if leadingZeroBits(sha256.Sum256(buf)) >= difficulty {
			return string(buf)
		}
	}
}

// leadingZeroBits counts the zero bits at the start of h.
func leadingZeroBits(h [sha256.Size]byte) int {
	n := 0
	for _, b := range h {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// verifyPoW checks solution (challenge + ":" + nonce) for drop and
// visitor at now, needing at least difficulty zero bits.
func (kr *Keyring) verifyPoW(solution, drop, visitor string, difficulty int, now time.Time) error {
	i := strings.LastIndexByte(solution, ':')
	if i < 0 {
		return fmt.Errorf("%w: want challenge:nonce", ErrBadPoW)
	}
	tok, nonce := solution[:i], solution[i+1:]
	if len(nonce) == 0 || len(nonce) > maxNonceLen {
		return fmt.Errorf("%w: nonce length", ErrBadPoW)
	}
	p, err := kr.open(tok)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadPoW, err)
	}
	c, err := decodeChallenge(p)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadPoW, err)
	}
	switch {
	case c.Drop != drop:
		return fmt.Errorf("%w: challenge for another drop", ErrBadPoW)
	case c.Visitor != visitor:
		return fmt.Errorf("%w: challenge for another visitor", ErrBadPoW)
	case !now.Before(c.Expires):
		return fmt.Errorf("%w: challenge expired", ErrBadPoW)
	case c.Difficulty < difficulty:
		return fmt.Errorf("%w: challenge easier than required", ErrBadPoW)
	}
	if leadingZeroBits(sha256.Sum256([]byte(solution))) < c.Difficulty {
		return fmt.Errorf("%w: not enough leading zero bits", ErrBadPoW)
	}
	return nil
}
