package waitroom

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Key is one HMAC-SHA256 signing key.
type Key struct {
	// ID names the key inside every token it signs: 1 to 16 of A-Z a-z
	// 0-9 '-' '_'.
	ID string
	// Secret is at least 32 random bytes.
	Secret []byte
}

// MinSecretLen is the shortest secret a Key may have.
const MinSecretLen = 32

// Keyring signs with its current key and verifies with any of its keys,
// so keys can be rotated without logging anybody out of the queue: deploy
// the new key as an older one everywhere, then make it current, then
// drop the old one after the longest ticket lifetime.
type Keyring struct {
	current *ringKey
	keys    map[string]*ringKey
}

type ringKey struct {
	id   string
	pool sync.Pool // of hash.Hash (HMAC-SHA256 with this key)
}

// NewKeyring returns a keyring signing with current and also verifying
// with older.
func NewKeyring(current Key, older ...Key) (*Keyring, error) {
	kr := &Keyring{keys: make(map[string]*ringKey)}
	for i, k := range append([]Key{current}, older...) {
		if !validKeyID(k.ID) {
			return nil, fmt.Errorf("%w: key id %q: want 1 to 16 of A-Z a-z 0-9 - _", ErrInvalid, k.ID)
		}
		if len(k.Secret) < MinSecretLen {
			return nil, fmt.Errorf("%w: key %q: secret shorter than %d bytes", ErrInvalid, k.ID, MinSecretLen)
		}
		if _, dup := kr.keys[k.ID]; dup {
			return nil, fmt.Errorf("%w: key id %q given twice", ErrInvalid, k.ID)
		}
		secret := append([]byte(nil), k.Secret...)
		rk := &ringKey{id: k.ID}
		rk.pool.New = func() any { return hmac.New(sha256.New, secret) }
		kr.keys[k.ID] = rk
		if i == 0 {
			kr.current = rk
		}
	}
	return kr, nil
}

// ParseKeyring reads a keyring from configuration text:
// "id:base64secret,id:base64secret,...", the first being the current key.
// Secrets are standard or URL base64, padded or not.
func ParseKeyring(s string) (*Keyring, error) {
	var keys []Key
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, b64, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("%w: keyring entry %q: want id:base64secret", ErrInvalid, id)
		}
		secret, err := decodeAnyBase64(b64)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrInvalid, id, err)
		}
		keys = append(keys, Key{ID: id, Secret: secret})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: keyring: no keys", ErrInvalid)
	}
	return NewKeyring(keys[0], keys[1:]...)
}

func decodeAnyBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// CurrentID is the ID of the key new tokens are signed with.
func (kr *Keyring) CurrentID() string { return kr.current.id }

func validKeyID(id string) bool {
	return len(id) <= 16 && ValidDropID(id)
}

// Token layout: kid "." base64url(payload) "." base64url(HMAC-SHA256 over
// everything before the second dot). The payload starts with a version and
// a kind byte, so a ticket can never pass for an access token or a
// challenge, and the kid is covered by the MAC.
const (
	macLen      = sha256.Size
	macB64Len   = 43 // base64.RawURLEncoding.EncodedLen(macLen)
	maxTokenLen = 1024
)

var b64 = base64.RawURLEncoding.Strict()

// sign returns the token for payload, signed with the current key.
func (kr *Keyring) sign(payload []byte) string {
	k := kr.current
	n := len(k.id) + 1 + b64.EncodedLen(len(payload))
	buf := make([]byte, n, n+1+macB64Len)
	copy(buf, k.id)
	buf[len(k.id)] = '.'
	b64.Encode(buf[len(k.id)+1:], payload)
	var mac [macLen]byte
	k.mac(mac[:0], buf)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, mac[:])
	return string(buf)
}

var errToken = errors.New("malformed token")

// open checks token's signature and returns its payload.
func (kr *Keyring) open(token string) ([]byte, error) {
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: too long", errToken)
	}
	dot1 := strings.IndexByte(token, '.')
	dot2 := strings.LastIndexByte(token, '.')
	if dot1 < 0 || dot2 == dot1 {
		return nil, errToken
	}
	k := kr.keys[token[:dot1]]
	if k == nil {
		return nil, fmt.Errorf("%w: unknown key", errToken)
	}
	macText := token[dot2+1:]
	if len(macText) != macB64Len {
		return nil, errToken
	}
	var got, want [macLen]byte
	if n, err := b64.Decode(got[:], []byte(macText)); err != nil || n != macLen {
		return nil, errToken
	}
	k.mac(want[:0], []byte(token[:dot2]))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return nil, fmt.Errorf("%w: bad signature", errToken)
	}
	payload, err := b64.DecodeString(token[dot1+1 : dot2])
	if err != nil {
		return nil, errToken
	}
	return payload, nil
}

func (k *ringKey) mac(dst, msg []byte) []byte {
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(msg)
	dst = h.Sum(dst)
	k.pool.Put(h)
	return dst
}
