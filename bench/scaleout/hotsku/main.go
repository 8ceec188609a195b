// Command hotsku measures designs for reserving one hot SKU from many
// processes at once against PostgreSQL (and Redis), the way several API
// replicas reserve stock during a drop. Every design is checked for
// exactness after its run: the units reserved equal the units on hand (the
// run has more attempts than units), no unit is reserved twice and nothing
// is left over.
//
// Designs:
//
//   - row: one stock row per SKU; a transaction runs the conditional
//     UPDATE ... SET reserved = reserved + 1 WHERE on_hand - reserved >= 1,
//     inserts the reservation and commits. Every buyer queues on one row
//     lock, held until commit.
//   - buckets: the SKU's units are spread over B rows; a transaction claims
//     one bucket with SELECT ... FOR UPDATE SKIP LOCKED, decrements it,
//     inserts the reservation and commits, so B buyers commit at once.
//   - redis: a Lua script decrements the SKU's counter in Redis (refusing to
//     go below zero); a unit it grants is recorded as a reservation row in
//     PostgreSQL, which stays the record (on a failed insert the unit goes
//     back to Redis). The hot row is never touched.
//
// Usage (the parent starts -procs child processes of itself and sums them):
//
//	hotsku -pg postgres://... -redis redis://... -design row -procs 3 -workers 16 -units 20000
//
// It prints one line per design: "design=row units=N procs=P workers=W
// seconds=S reservations_per_s=R exact=true".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

const sku = "HOT-1"

type options struct {
	pg, redis string
	design    string
	procs     int
	workers   int
	units     int
	buckets   int
	child     bool
	startAt   int64
}

func main() {
	var o options
	flag.StringVar(&o.pg, "pg", os.Getenv("SURGE_TEST_POSTGRES"), "PostgreSQL URL")
	flag.StringVar(&o.redis, "redis", os.Getenv("SURGE_TEST_REDIS"), "Redis URL (design redis)")
	flag.StringVar(&o.design, "design", "row,buckets,redis", "designs to run, comma-separated: row, buckets, redis")
	flag.IntVar(&o.procs, "procs", 3, "processes reserving at once (replicas)")
	flag.IntVar(&o.workers, "workers", 16, "concurrent buyers per process")
	flag.IntVar(&o.units, "units", 20000, "units on hand")
	flag.IntVar(&o.buckets, "buckets", 32, "rows the units are spread over (design buckets)")
	flag.BoolVar(&o.child, "child", false, "internal: run as one reserving process and print its count")
	flag.Int64Var(&o.startAt, "start-at", 0, "internal: unix nanoseconds at which a child starts")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "hotsku:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.pg == "" {
		return errors.New("-pg (or SURGE_TEST_POSTGRES) is required")
	}
	if o.child {
		return child(ctx, o)
	}
	for _, d := range strings.Split(o.design, ",") {
		if d == "redis" && o.redis == "" {
			return errors.New("design redis needs -redis (or SURGE_TEST_REDIS)")
		}
		res, err := parent(ctx, o, d)
		if err != nil {
			return fmt.Errorf("design %s: %w", d, err)
		}
		fmt.Printf("design=%s units=%d procs=%d workers=%d seconds=%.3f reservations_per_s=%.0f exact=%t\n",
			d, o.units, o.procs, o.workers, res.seconds, float64(res.reserved)/res.seconds, res.exact)
		if !res.exact {
			return fmt.Errorf("design %s is not exact: %s", d, res.why)
		}
	}
	return nil
}

// childResult is what one child process reports. Start and end are unix
// nanoseconds, so the parent can time the whole run from the first start
// to the last end, whatever each child's start delay was.
type childResult struct {
	Reserved int   `json:"reserved"`
	SoldOut  int   `json:"sold_out"`
	Start    int64 `json:"start"`
	End      int64 `json:"end"`
}

type result struct {
	reserved int
	seconds  float64
	exact    bool
	why      string
}

// parent sets the design's tables up, runs the children at one start time,
// and checks the outcome in the database.
func parent(ctx context.Context, o options, design string) (result, error) {
	pool, err := pgxpool.New(ctx, o.pg)
	if err != nil {
		return result{}, err
	}
	defer pool.Close()
	if err := setup(ctx, pool, o, design); err != nil {
		return result{}, fmt.Errorf("setup: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	start := time.Now().Add(2 * time.Second) // every child connected and waiting
	outs := make([][]byte, o.procs)
	errs := make([]error, o.procs)
	var wg sync.WaitGroup
	for i := range o.procs {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, self, "-child", "-design", design, "-pg", o.pg, "-redis", o.redis,
				"-workers", fmt.Sprint(o.workers), "-units", fmt.Sprint(o.units), "-buckets", fmt.Sprint(o.buckets),
				"-start-at", fmt.Sprint(start.UnixNano()))
			cmd.Stderr = os.Stderr
			outs[i], errs[i] = cmd.Output()
		})
	}
	wg.Wait()
	var res result
	var first, last int64
	for i := range o.procs {
		if errs[i] != nil {
			return res, fmt.Errorf("child %d: %w", i, errs[i])
		}
		var c childResult
		if err := json.Unmarshal(outs[i], &c); err != nil {
			return res, fmt.Errorf("child %d said %q: %w", i, outs[i], err)
		}
		res.reserved += c.Reserved
		if first == 0 || c.Start < first {
			first = c.Start
		}
		last = max(last, c.End)
	}
	// The rate is over the wall time the SKU took to sell out: a child
	// that started late (a slow exec or connect on a busy machine) does
	// not shorten it.
	res.seconds = float64(last-first) / 1e9
	res.exact, res.why, err = check(ctx, pool, o, design, res.reserved)
	return res, err
}

func setup(ctx context.Context, pool *pgxpool.Pool, o options, design string) error {
	_, err := pool.Exec(ctx, `
		DROP TABLE IF EXISTS hot_stock, hot_buckets, hot_reservations;
		CREATE TABLE hot_stock (sku text PRIMARY KEY, on_hand bigint NOT NULL, reserved bigint NOT NULL DEFAULT 0);
		CREATE TABLE hot_buckets (sku text NOT NULL, bucket int NOT NULL, remaining bigint NOT NULL CHECK (remaining >= 0),
			PRIMARY KEY (sku, bucket));
		CREATE TABLE hot_reservations (id bigserial PRIMARY KEY, sku text NOT NULL, bucket int, quantity bigint NOT NULL,
			created_at timestamptz NOT NULL DEFAULT now());`)
	if err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO hot_stock (sku, on_hand) VALUES ($1, $2)`, sku, o.units); err != nil {
		return err
	}
	if design == "buckets" {
		per, extra := o.units/o.buckets, o.units%o.buckets
		for b := range o.buckets {
			n := per
			if b < extra {
				n++
			}
			if _, err := pool.Exec(ctx, `INSERT INTO hot_buckets VALUES ($1, $2, $3)`, sku, b, n); err != nil {
				return err
			}
		}
	}
	if design == "redis" {
		opt, err := redis.ParseURL(o.redis)
		if err != nil {
			return err
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		return rdb.Set(ctx, redisKey(), o.units, 0).Err()
	}
	return nil
}

func redisKey() string { return "bench:hotsku:{" + sku + "}:available" }

// check compares what the children said with what the database holds.
func check(ctx context.Context, pool *pgxpool.Pool, o options, design string, said int) (bool, string, error) {
	var rows, units int64
	if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(quantity), 0) FROM hot_reservations`).Scan(&rows, &units); err != nil {
		return false, "", err
	}
	if units != int64(o.units) || rows != int64(said) {
		return false, fmt.Sprintf("%d reservation rows for %d units; processes reported %d; %d on hand", rows, units, said, o.units), nil
	}
	switch design {
	case "row":
		var reserved int64
		if err := pool.QueryRow(ctx, `SELECT reserved FROM hot_stock WHERE sku = $1`, sku).Scan(&reserved); err != nil {
			return false, "", err
		}
		if reserved != units {
			return false, fmt.Sprintf("stock row says %d reserved, rows say %d", reserved, units), nil
		}
	case "buckets":
		var left int64
		if err := pool.QueryRow(ctx, `SELECT sum(remaining) FROM hot_buckets WHERE sku = $1`, sku).Scan(&left); err != nil {
			return false, "", err
		}
		if left != 0 {
			return false, fmt.Sprintf("%d units left in buckets", left), nil
		}
	case "redis":
		opt, _ := redis.ParseURL(o.redis)
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		left, err := rdb.Get(ctx, redisKey()).Int64()
		if err != nil {
			return false, "", err
		}
		if left != 0 {
			return false, fmt.Sprintf("redis counter left at %d", left), nil
		}
	}
	return true, "", nil
}

// child reserves one unit at a time with o.workers goroutines until the
// SKU is sold out, and prints its count as JSON.
func child(ctx context.Context, o options) error {
	cfg, err := pgxpool.ParseConfig(o.pg)
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(o.workers)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	var rdb *redis.Client
	if o.design == "redis" {
		opt, err := redis.ParseURL(o.redis)
		if err != nil {
			return err
		}
		opt.PoolSize = o.workers
		rdb = redis.NewClient(opt)
		defer rdb.Close()
	}
	reserve, err := reserver(o.design, pool, rdb)
	if err != nil {
		return err
	}
	// Open every connection before the start so the run measures
	// reserving, not connecting.
	var warm sync.WaitGroup
	for range o.workers {
		warm.Go(func() { _ = pool.Ping(ctx) })
	}
	warm.Wait()
	time.Sleep(time.Until(time.Unix(0, o.startAt)))

	start := time.Now()
	var reserved, soldOut atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for {
				ok, err := reserve(ctx)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				if !ok {
					soldOut.Add(1)
					return
				}
				reserved.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return json.NewEncoder(os.Stdout).Encode(childResult{Reserved: int(reserved.Load()), SoldOut: int(soldOut.Load()),
		Start: start.UnixNano(), End: time.Now().UnixNano()})
}

// reserver returns the design's reserve-one-unit function: true when a
// unit was reserved, false when the SKU is sold out.
func reserver(design string, pool *pgxpool.Pool, rdb *redis.Client) (func(context.Context) (bool, error), error) {
	switch design {
	case "row":
		return func(ctx context.Context) (bool, error) {
			return retry(ctx, func() (bool, error) {
				var ok bool
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					tag, err := tx.Exec(ctx, `UPDATE hot_stock SET reserved = reserved + 1 WHERE sku = $1 AND on_hand - reserved >= 1`, sku)
					if err != nil || tag.RowsAffected() == 0 {
						return err
					}
					ok = true
					_, err = tx.Exec(ctx, `INSERT INTO hot_reservations (sku, quantity) VALUES ($1, 1)`, sku)
					return err
				})
				return ok, err
			})
		}, nil
	case "buckets":
		return func(ctx context.Context) (bool, error) {
			for {
				var got, anyLeft bool
				_, err := retry(ctx, func() (bool, error) {
					got, anyLeft = false, false
					return true, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						var b int
						err := tx.QueryRow(ctx, `SELECT bucket FROM hot_buckets WHERE sku = $1 AND remaining > 0
							ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED`, sku).Scan(&b)
						if errors.Is(err, pgx.ErrNoRows) {
							// Every bucket with units left may be locked by
							// another buyer: only an unlocked look says sold out.
							return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hot_buckets WHERE sku = $1 AND remaining > 0)`, sku).Scan(&anyLeft)
						}
						if err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, `UPDATE hot_buckets SET remaining = remaining - 1 WHERE sku = $1 AND bucket = $2`, sku, b); err != nil {
							return err
						}
						got = true
						_, err = tx.Exec(ctx, `INSERT INTO hot_reservations (sku, bucket, quantity) VALUES ($1, $2, 1)`, sku, b)
						return err
					})
				})
				switch {
				case err != nil:
					return false, err
				case got:
					return true, nil
				case !anyLeft:
					return false, nil
				}
			}
		}, nil
	case "redis":
		take := redis.NewScript(`
local left = redis.call('DECRBY', KEYS[1], ARGV[1])
if left < 0 then
  redis.call('INCRBY', KEYS[1], ARGV[1])
  return -1
end
return left`)
		return func(ctx context.Context) (bool, error) {
			left, err := take.Run(ctx, rdb, []string{redisKey()}, 1).Int64()
			if err != nil {
				return false, err
			}
			if left < 0 {
				return false, nil
			}
			if _, err := pool.Exec(ctx, `INSERT INTO hot_reservations (sku, quantity) VALUES ($1, 1)`, sku); err != nil {
				// The unit was granted but not recorded: give it back.
				_ = rdb.IncrBy(context.WithoutCancel(ctx), redisKey(), 1).Err()
				return false, err
			}
			return true, nil
		}, nil
	}
	return nil, fmt.Errorf("unknown design %q: want row, buckets or redis", design)
}

// retry runs fn again on serialization failures and deadlocks, which
// PostgreSQL may answer under contention and which are safe to repeat.
func retry(ctx context.Context, fn func() (bool, error)) (bool, error) {
	for i := 0; ; i++ {
		ok, err := fn()
		var pe *pgconn.PgError
		if err != nil && i < 10 && errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") {
			continue
		}
		return ok, err
	}
}
