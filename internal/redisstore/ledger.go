package redisstore

import (
	"context"
	crand "crypto/rand"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/surge-commerce/surge/internal/waitroom"
)

//go:embed ledger.lua
var ledgerLua string

// Ledger is the waitroom.Ledger every replica shares, in Redis. Each call
// is one Lua script that brings the drop up to the caller's clock and
// acts, exactly as waitroom.MemLedger does under its mutex, so replicas
// see one queue.
//
// The one step a script cannot take is the pre-queue draw, which needs a
// real random source: Redis 7 scripts get a fixed math.random seed. A
// 32-byte seed drawn from crypto/rand at Create is stored with the drop;
// the first call after the start finds the draw missing, and the replica
// that made it shuffles in Go (Fisher-Yates over ChaCha8, as MemLedger)
// and sends the permutation back. Every replica computes the same one, so
// a race between them is harmless.
//
// Keys, all under one hash tag so a drop lives in one cluster slot:
//
//	<prefix>wr:{<drop>}:meta      hash: config, flow, clocks and counters
//	<prefix>wr:{<drop>}:visitors  hash: visitor -> seq
//	<prefix>wr:{<drop>}:seats     hash: seq -> "admitted,admittedAt,arrived,released"
//	                                    (only places that were admitted or released)
//	<prefix>wr:{<drop>}:pos2seq   string: the draw, position -> seq, uint32 big-endian
//	<prefix>wr:{<drop>}:seq2pos   string: the draw, seq -> position
type Ledger struct {
	c      *Client
	script *redis.Script
	// drawMu keeps one replica's callers from all shuffling the same
	// pre-queue at the start; the others find it drawn.
	drawMu sync.Mutex
}

var _ waitroom.Ledger = (*Ledger)(nil)

// NewLedger returns the waiting-room ledger kept in c's Redis.
func NewLedger(c *Client) *Ledger {
	return &Ledger{c: c, script: redis.NewScript(ledgerLua)}
}

func (l *Ledger) keys(drop string) []string {
	base := l.c.prefix + "wr:{" + drop + "}:"
	return []string{base + "meta", base + "visitors", base + "seats", base + "pos2seq", base + "seq2pos"}
}

// errEmptyDrop keeps "" out of the keys, where "{}" would be no hash tag.
var errEmptyDrop = errors.New("empty drop name")

// Create implements waitroom.Ledger.
func (l *Ledger) Create(ctx context.Context, drop string, cfg waitroom.QueueConfig) (uint64, error) {
	if drop == "" {
		return 0, fmt.Errorf("create drop: %w", errEmptyDrop)
	}
	cfg.Burst = max(cfg.Burst, 1)
	if cfg.MaxJoins <= 0 {
		cfg.MaxJoins = waitroom.DefaultMaxJoins
	}
	cfg.MaxJoins = min(cfg.MaxJoins, 1<<32-1)
	var rnd [8 + 32]byte
	if _, err := crand.Read(rnd[:]); err != nil {
		return 0, fmt.Errorf("create drop %q: %w", drop, err)
	}
	epoch := binary.LittleEndian.Uint64(rnd[:8]) | 1 // never zero
	hasStart, startS, startNS := 0, int64(0), 0
	if !cfg.Start.IsZero() {
		hasStart, startS, startNS = 1, cfg.Start.Unix(), cfg.Start.Nanosecond()
	}
	res, err := l.script.Run(ctx, l.c.rdb, l.keys(drop), "create",
		strconv.FormatUint(epoch, 10), hex.EncodeToString(rnd[8:]), hasStart, startS, startNS,
		cfg.Burst, cfg.MaxActive, int64(cfg.NoShowWindow), int64(cfg.AccessTTL), cfg.MaxJoins).Slice()
	if err != nil {
		return 0, fmt.Errorf("create drop %q: %w", drop, err)
	}
	r := reply{vals: res}
	got := r.uint64()
	if r.err != nil {
		return 0, fmt.Errorf("create drop %q: %w", drop, r.err)
	}
	return got, nil
}

// Delete implements waitroom.Ledger.
func (l *Ledger) Delete(ctx context.Context, drop string) error {
	if drop == "" {
		return fmt.Errorf("delete drop: %w", waitroom.ErrUnknownDrop)
	}
	res, err := l.script.Run(ctx, l.c.rdb, l.keys(drop), "delete").Slice()
	if err != nil {
		return fmt.Errorf("delete drop %q: %w", drop, err)
	}
	if len(res) > 0 && res[0] == "unknown" {
		return fmt.Errorf("delete %q: %w", drop, waitroom.ErrUnknownDrop)
	}
	return nil
}

// maxDrawAttempts bounds how often a call draws the pre-queue and tries
// again; a second attempt happens only when the drop was recreated
// meanwhile.
const maxDrawAttempts = 4

// run executes a clocked operation, drawing the pre-queue first when the
// script asks for it. It returns the reply past the status and counters
// already decoded.
func (l *Ledger) run(ctx context.Context, drop, op string, now time.Time, args ...any) (string, waitroom.Counters, reply, error) {
	if drop == "" {
		return "", waitroom.Counters{}, reply{}, fmt.Errorf("%s: %w", op, waitroom.ErrUnknownDrop)
	}
	keys := l.keys(drop)
	argv := append([]any{op, now.Unix(), now.Nanosecond()}, args...)
	for range maxDrawAttempts {
		res, err := l.script.Run(ctx, l.c.rdb, keys, argv...).Slice()
		if err != nil {
			return "", waitroom.Counters{}, reply{}, fmt.Errorf("%s in drop %q: %w", op, drop, err)
		}
		r := reply{vals: res}
		status := r.string()
		switch status {
		case "unknown":
			return status, waitroom.Counters{}, r, fmt.Errorf("%s in drop %q: %w", op, drop, waitroom.ErrUnknownDrop)
		case "draw":
			if err := l.draw(ctx, drop, keys, &r); err != nil {
				return status, waitroom.Counters{}, r, err
			}
			continue
		}
		c := r.counters()
		if r.err != nil {
			return status, c, r, fmt.Errorf("%s in drop %q: %w", op, drop, r.err)
		}
		return status, c, r, nil
	}
	return "", waitroom.Counters{}, reply{}, fmt.Errorf("%s in drop %q: pre-queue draw kept changing", op, drop)
}

// draw shuffles the pre-queue the script asked about and stores the
// result, unless another caller has done so meanwhile.
func (l *Ledger) draw(ctx context.Context, drop string, keys []string, r *reply) error {
	epoch, seedHex, n := r.string(), r.string(), r.uint64()
	if r.err != nil {
		return fmt.Errorf("draw drop %q: %w", drop, r.err)
	}
	seed, err := hex.DecodeString(seedHex)
	if err != nil || len(seed) != 32 {
		return fmt.Errorf("draw drop %q: stored seed %q is not 32 bytes of hex", drop, seedHex)
	}
	l.drawMu.Lock()
	defer l.drawMu.Unlock()
	vals, err := l.c.rdb.HMGet(ctx, keys[0], "epoch", "frozen").Result()
	if err != nil {
		return fmt.Errorf("draw drop %q: %w", drop, err)
	}
	if vals[0] != epoch || vals[1] == "1" {
		return nil
	}
	pos2seq, seq2pos := shuffle([32]byte(seed), n)
	res, err := l.script.Run(ctx, l.c.rdb, keys, "draw", epoch, n, pos2seq, seq2pos).Slice()
	if err != nil {
		return fmt.Errorf("draw drop %q: %w", drop, err)
	}
	if len(res) > 0 && res[0] == "unknown" {
		return fmt.Errorf("draw drop %q: %w", drop, waitroom.ErrUnknownDrop)
	}
	return nil
}

// shuffle draws n pre-queue places into positions 1..n exactly as
// MemLedger does (every order equally likely) and returns both directions
// of the permutation as arrays of big-endian uint32.
func shuffle(seed [32]byte, n uint64) (pos2seq, seq2pos []byte) {
	order := make([]uint32, n)
	for i := range order {
		order[i] = uint32(i + 1)
	}
	rand.New(rand.NewChaCha8(seed)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	pos2seq = make([]byte, 4*n)
	seq2pos = make([]byte, 4*n)
	for i, seq := range order {
		binary.BigEndian.PutUint32(pos2seq[4*i:], seq)
		binary.BigEndian.PutUint32(seq2pos[4*(seq-1):], uint32(i+1))
	}
	return pos2seq, seq2pos
}

// Join implements waitroom.Ledger.
func (l *Ledger) Join(ctx context.Context, drop, visitor string, now time.Time) (waitroom.Place, waitroom.Counters, error) {
	status, c, r, err := l.run(ctx, drop, "join", now, visitor)
	if err != nil {
		return waitroom.Place{}, c, err
	}
	switch status {
	case "closed":
		return waitroom.Place{}, c, fmt.Errorf("join %q: %w", drop, waitroom.ErrClosed)
	case "full":
		return waitroom.Place{}, c, fmt.Errorf("join %q: %w", drop, waitroom.ErrQueueFull)
	}
	p := waitroom.Place{Seq: r.uint64(), Position: r.uint64(), PreQueue: r.bool(), Existing: r.bool()}
	if r.err != nil {
		return waitroom.Place{}, c, fmt.Errorf("join %q: %w", drop, r.err)
	}
	return p, c, nil
}

// Counters implements waitroom.Ledger.
func (l *Ledger) Counters(ctx context.Context, drop string, now time.Time) (waitroom.Counters, error) {
	_, c, _, err := l.run(ctx, drop, "counters", now)
	return c, err
}

// SetFlow implements waitroom.Ledger.
func (l *Ledger) SetFlow(ctx context.Context, drop string, f waitroom.Flow, now time.Time) (waitroom.Counters, error) {
	paused := 0
	if f.Paused {
		paused = 1
	}
	_, c, _, err := l.run(ctx, drop, "setflow", now, strconv.FormatFloat(f.RatePerMinute, 'g', -1, 64), paused)
	return c, err
}

// Close implements waitroom.Ledger.
func (l *Ledger) Close(ctx context.Context, drop string, now time.Time) (waitroom.Counters, error) {
	_, c, _, err := l.run(ctx, drop, "close", now)
	return c, err
}

// Position implements waitroom.Ledger.
func (l *Ledger) Position(ctx context.Context, drop string, seq uint64, now time.Time) (uint64, error) {
	status, _, r, err := l.run(ctx, drop, "position", now, seq)
	if err != nil {
		return 0, err
	}
	if status == "noplace" {
		return 0, fmt.Errorf("position of %d in %q: no such place", seq, drop)
	}
	pos := r.uint64()
	if r.err != nil {
		return 0, fmt.Errorf("position of %d in %q: %w", seq, drop, r.err)
	}
	return pos, nil
}

// Seat implements waitroom.Ledger.
func (l *Ledger) Seat(ctx context.Context, drop string, seq uint64, now time.Time) (waitroom.Seat, error) {
	return l.seat(ctx, drop, "seat", seq, now)
}

// Arrive implements waitroom.Ledger.
func (l *Ledger) Arrive(ctx context.Context, drop string, seq uint64, now time.Time) (waitroom.Seat, error) {
	return l.seat(ctx, drop, "arrive", seq, now)
}

// releasedNames maps the script's release codes to waitroom's reasons.
var releasedNames = [...]string{waitroom.ReleasedNone, waitroom.ReleasedDone, waitroom.ReleasedNoShow, waitroom.ReleasedExpired, waitroom.ReleasedLeft}

func (l *Ledger) seat(ctx context.Context, drop, op string, seq uint64, now time.Time) (waitroom.Seat, error) {
	status, _, r, err := l.run(ctx, drop, op, now, seq)
	if err != nil {
		return waitroom.Seat{}, err
	}
	if status == "noplace" {
		return waitroom.Seat{}, fmt.Errorf("%s %d in %q: no such place", op, seq, drop)
	}
	s := waitroom.Seat{Seq: seq, Position: r.uint64()}
	admitted, at := r.bool(), r.int64()
	s.Arrived = r.bool()
	rel := r.uint64()
	origin := r.int64()
	if r.err == nil && rel >= uint64(len(releasedNames)) {
		r.err = fmt.Errorf("release code %d", rel)
	}
	if r.err != nil {
		return waitroom.Seat{}, fmt.Errorf("%s %d in %q: %w", op, seq, drop, r.err)
	}
	s.Released = releasedNames[rel]
	if admitted {
		s.AdmittedAt = time.Unix(origin, at)
	}
	return s, nil
}

// Release implements waitroom.Ledger.
func (l *Ledger) Release(ctx context.Context, drop, visitor string, now time.Time) (bool, waitroom.Counters, error) {
	_, c, r, err := l.run(ctx, drop, "release", now, visitor)
	if err != nil {
		return false, c, err
	}
	ok := r.bool()
	if r.err != nil {
		return false, c, fmt.Errorf("release %q in %q: %w", visitor, drop, r.err)
	}
	return ok, c, nil
}

// reply decodes a script's array reply in order; the first decoding error
// sticks, so callers check once at the end.
type reply struct {
	vals []any
	err  error
}

func (r *reply) next() any {
	if r.err != nil {
		return nil
	}
	if len(r.vals) == 0 {
		r.err = errors.New("short reply from Redis")
		return nil
	}
	v := r.vals[0]
	r.vals = r.vals[1:]
	return v
}

func (r *reply) string() string {
	v := r.next()
	s, ok := v.(string)
	if !ok && r.err == nil {
		r.err = fmt.Errorf("unexpected %T %v in reply from Redis, want a string", v, v)
	}
	return s
}

// int64 reads an integer, or a number the script formatted as a string
// (%.17g) because Redis would have truncated it as a Lua number.
func (r *reply) int64() int64 {
	switch v := r.next().(type) {
	case int64:
		return v
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil && r.err == nil {
			r.err = fmt.Errorf("number %q in reply from Redis: %w", v, err)
		}
		return int64(f)
	default:
		if r.err == nil {
			r.err = fmt.Errorf("unexpected %T %v in reply from Redis, want a number", v, v)
		}
		return 0
	}
}

func (r *reply) uint64() uint64 {
	if len(r.vals) > 0 {
		if s, ok := r.vals[0].(string); ok {
			// Epochs use all 64 bits, past what a float or int64 holds.
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				r.vals = r.vals[1:]
				return u
			}
		}
	}
	return uint64(r.int64())
}

func (r *reply) float64() float64 {
	s := r.string()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("number %q in reply from Redis: %w", s, err)
	}
	return f
}

func (r *reply) bool() bool { return r.int64() != 0 }

// counters decodes the counters every clocked reply carries after its
// status.
func (r *reply) counters() waitroom.Counters {
	var c waitroom.Counters
	c.Epoch = r.uint64()
	c.Started = r.bool()
	c.PreQueue = r.uint64()
	c.Joined = r.uint64()
	c.Frontier = r.uint64()
	c.Admitted = r.uint64()
	c.Active = r.uint64()
	c.Waiting = r.uint64()
	c.Completed = r.uint64()
	c.NoShows = r.uint64()
	c.Expired = r.uint64()
	c.Left = r.uint64()
	c.Flow.RatePerMinute = r.float64()
	c.Flow.Paused = r.bool()
	c.Closed = r.bool()
	return c
}
