package capacity

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// procCPU is a process's CPU seconds from /proc/PID/stat: its own user and
// system time, plus its reaped children's when children is set.
func procCPU(pid int, children bool) (float64, int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unreadable", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unreadable", pid)
	}
	// After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	var ticks float64
	idx := []int{11, 12}
	if children {
		idx = append(idx, 13, 14)
	}
	for _, k := range idx {
		v, err := strconv.ParseFloat(f[k], 64)
		if err != nil {
			return 0, 0, err
		}
		ticks += v
	}
	ppid, _ := strconv.Atoi(f[1])
	return ticks / clockTicks, ppid, nil
}

// engineMeter reads the CPU the engines outside the replica have used.
type engineMeter struct {
	db    *pgx.Conn
	redis *redis.Client
	pids  map[string]int // component -> process, read from /proc
}

// engineCPU is cumulative CPU seconds per component, and Redis's commands.
type engineCPU struct {
	Database, NATS, Redis, RedisOps float64
	DBConns                         int
}

func (m *engineMeter) read(ctx context.Context) (engineCPU, error) {
	var out engineCPU
	if m.db != nil {
		// Every PostgreSQL process of the server: the backends and the
		// background processes listed in pg_stat_activity, plus what the
		// postmaster has reaped from backends that ended. Only a server
		// on this machine can be read this way.
		rows, err := m.db.Query(ctx, "SELECT pid, coalesce(backend_type, ''), coalesce(application_name, '') FROM pg_stat_activity")
		if err != nil {
			return out, fmt.Errorf("--db-url: %w", err)
		}
		post := 0
		for rows.Next() {
			var pid int
			var typ, app string
			if err := rows.Scan(&pid, &typ, &app); err != nil {
				rows.Close()
				return out, err
			}
			cpu, ppid, err := procCPU(pid, false)
			if err != nil {
				continue // ended since the query
			}
			out.Database += cpu
			post = ppid
			if typ == "client backend" && app != "surge plan calibrate" {
				out.DBConns++
			}
		}
		rows.Close()
		if post > 1 {
			cpu, _, err := procCPU(post, true)
			if err != nil {
				return out, fmt.Errorf("--db-url: PostgreSQL is not on this machine (no /proc/%d): its CPU cannot be read", post)
			}
			out.Database += cpu
		}
	}
	if m.redis != nil {
		info, err := m.redis.Info(ctx, "cpu", "stats").Result()
		if err != nil {
			return out, fmt.Errorf("--redis-url: %w", err)
		}
		for _, l := range strings.Split(info, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
			if !ok {
				continue
			}
			f, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "used_cpu_sys", "used_cpu_user":
				out.Redis += f
			case "total_commands_processed":
				out.RedisOps = f
			}
		}
	}
	for comp, pid := range m.pids {
		cpu, _, err := procCPU(pid, true)
		if err != nil {
			return out, fmt.Errorf("--pid %s=%d: %w", comp, pid, err)
		}
		switch comp {
		case "database":
			out.Database += cpu
		case "nats":
			out.NATS += cpu
		case "redis":
			out.Redis += cpu
		}
	}
	return out, nil
}

func (m *engineMeter) close(ctx context.Context) {
	if m.db != nil {
		m.db.Close(ctx)
	}
	if m.redis != nil {
		m.redis.Close()
	}
}
