package waitroom

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Ticket is a visitor's place in a drop's queue. It travels signed (see
// Keyring), so any replica can check it without a storage hit.
type Ticket struct {
	Drop string
	// Epoch is the incarnation of the drop's queue the ticket belongs to:
	// a drop reopened under the same ID (or a new standby episode) starts
	// a new queue, and older tickets no longer count.
	Epoch   uint64
	Visitor string
	// Seq is the visitor's join order, 1-based.
	Seq uint64
	// Position is the place in line; 0 while it is not drawn yet (pre-queue
	// before the start).
	Position uint64
	// PreQueue says the visitor joined before the start.
	PreQueue bool
	Issued   time.Time
	Expires  time.Time
}

// Access lets one session into a drop's cart and checkout routes until it
// expires or the slot is given up.
type Access struct {
	Drop    string
	Epoch   uint64
	Visitor string
	// Session is the session the token is bound to (as given to
	// VerifyAccess; the token itself holds only a hash of it).
	Session  string
	Seq      uint64
	Position uint64
	Expires  time.Time
}

// challenge is a proof-of-work puzzle handed out by Room.Challenge.
type challenge struct {
	Drop       string
	Visitor    string
	Difficulty int
	Nonce      [8]byte
	Expires    time.Time
}

// Payload encoding: version, kind, then the fields in a fixed order as
// uvarints, length-prefixed strings and fixed-size byte strings. Decoding
// is strict (no trailing bytes, bounded lengths), so each value has
// exactly one encoding.
const (
	payloadVersion byte = 1

	kindTicket    byte = 1
	kindAccess    byte = 2
	kindChallenge byte = 3
	kindGuest     byte = 4

	maxStringLen   = 256
	sessionHashLen = 16
)

var errPayload = errors.New("malformed payload")

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) time(t time.Time) { e.uvarint(uint64(max(0, t.UnixMilli()))) }

type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	// Reject non-minimal encodings so every value has one form.
	if n > 1 && d.b[n-1] == 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.bad || n > maxStringLen || n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) fixed(dst []byte) {
	if d.bad || len(d.b) < len(dst) {
		d.bad = true
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

func (d *decoder) time() time.Time {
	ms := d.uvarint()
	if ms > 1<<50 { // year ~37,000: nothing legitimate
		d.bad = true
		return time.Time{}
	}
	return time.UnixMilli(int64(ms))
}

func (d *decoder) header(kind byte) {
	if len(d.b) < 2 || d.b[0] != payloadVersion || d.b[1] != kind {
		d.bad = true
		return
	}
	d.b = d.b[2:]
}

func (d *decoder) done() error {
	if d.bad || len(d.b) != 0 {
		return errPayload
	}
	return nil
}

func encodeTicket(t Ticket) []byte {
	e := encoder{b: make([]byte, 0, 48+len(t.Drop)+len(t.Visitor))}
	e.b = append(e.b, payloadVersion, kindTicket)
	e.str(t.Drop)
	e.uvarint(t.Epoch)
	e.str(t.Visitor)
	e.uvarint(t.Seq)
	e.uvarint(t.Position)
	flags := uint64(0)
	if t.PreQueue {
		flags = 1
	}
	e.uvarint(flags)
	e.time(t.Issued)
	e.time(t.Expires)
	return e.b
}

func decodeTicket(b []byte) (Ticket, error) {
	d := decoder{b: b}
	d.header(kindTicket)
	var t Ticket
	t.Drop = d.str()
	t.Epoch = d.uvarint()
	t.Visitor = d.str()
	t.Seq = d.uvarint()
	t.Position = d.uvarint()
	switch d.uvarint() {
	case 0:
	case 1:
		t.PreQueue = true
	default:
		d.bad = true
	}
	t.Issued = d.time()
	t.Expires = d.time()
	if err := d.done(); err != nil {
		return Ticket{}, fmt.Errorf("decode ticket: %w", err)
	}
	return t, nil
}

// accessClaims is Access as signed: the session only as a hash, so a
// token in a log does not reveal the session ID.
type accessClaims struct {
	Drop        string
	Epoch       uint64
	Visitor     string
	SessionHash [sessionHashLen]byte
	Seq         uint64
	Position    uint64
	Expires     time.Time
}

func sessionHash(session string) (h [sessionHashLen]byte) {
	sum := sha256.Sum256([]byte("surge-waitroom-session\x00" + session))
	copy(h[:], sum[:])
	return h
}

func encodeAccess(a accessClaims) []byte {
	e := encoder{b: make([]byte, 0, 64+len(a.Drop)+len(a.Visitor))}
	e.b = append(e.b, payloadVersion, kindAccess)
	e.str(a.Drop)
	e.uvarint(a.Epoch)
	e.str(a.Visitor)
	e.b = append(e.b, a.SessionHash[:]...)
	e.uvarint(a.Seq)
	e.uvarint(a.Position)
	e.time(a.Expires)
	return e.b
}

func decodeAccess(b []byte) (accessClaims, error) {
	d := decoder{b: b}
	d.header(kindAccess)
	var a accessClaims
	a.Drop = d.str()
	a.Epoch = d.uvarint()
	a.Visitor = d.str()
	d.fixed(a.SessionHash[:])
	a.Seq = d.uvarint()
	a.Position = d.uvarint()
	a.Expires = d.time()
	if err := d.done(); err != nil {
		return accessClaims{}, fmt.Errorf("decode access token: %w", err)
	}
	return a, nil
}

func encodeChallenge(c challenge) []byte {
	e := encoder{b: make([]byte, 0, 32+len(c.Drop)+len(c.Visitor))}
	e.b = append(e.b, payloadVersion, kindChallenge)
	e.str(c.Drop)
	e.str(c.Visitor)
	e.uvarint(uint64(c.Difficulty))
	e.b = append(e.b, c.Nonce[:]...)
	e.time(c.Expires)
	return e.b
}

func decodeChallenge(b []byte) (challenge, error) {
	d := decoder{b: b}
	d.header(kindChallenge)
	var c challenge
	c.Drop = d.str()
	c.Visitor = d.str()
	diff := d.uvarint()
	if diff > maxPoWDifficulty {
		d.bad = true
	}
	c.Difficulty = int(diff)
	d.fixed(c.Nonce[:])
	c.Expires = d.time()
	if err := d.done(); err != nil {
		return challenge{}, fmt.Errorf("decode challenge: %w", err)
	}
	return c, nil
}

func encodeGuest(id [guestIDLen]byte) []byte {
	return append([]byte{payloadVersion, kindGuest}, id[:]...)
}

func decodeGuest(b []byte) (id [guestIDLen]byte, err error) {
	d := decoder{b: b}
	d.header(kindGuest)
	d.fixed(id[:])
	if err := d.done(); err != nil {
		return id, fmt.Errorf("decode guest: %w", err)
	}
	return id, nil
}

// SignTicket signs t with the keyring's current key.
func (kr *Keyring) SignTicket(t Ticket) string { return kr.sign(encodeTicket(t)) }

// ParseTicket checks token's signature and decodes it. It does not check
// expiry nor what the ticket is bound to; Room.Status does.
func (kr *Keyring) ParseTicket(token string) (Ticket, error) {
	p, err := kr.open(token)
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrBadTicket, err)
	}
	t, err := decodeTicket(p)
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrBadTicket, err)
	}
	return t, nil
}

func (kr *Keyring) signAccess(a accessClaims) string { return kr.sign(encodeAccess(a)) }

func (kr *Keyring) parseAccess(token string) (accessClaims, error) {
	p, err := kr.open(token)
	if err != nil {
		return accessClaims{}, fmt.Errorf("%w: %v", ErrBadAccess, err)
	}
	a, err := decodeAccess(p)
	if err != nil {
		return accessClaims{}, fmt.Errorf("%w: %v", ErrBadAccess, err)
	}
	return a, nil
}
