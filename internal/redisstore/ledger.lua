-- One waiting-room drop, changed atomically: the same algorithm as
-- waitroom.MemLedger, step for step. ledger.go documents the keys and the
-- reply layout.
--
-- KEYS: meta, visitors, seats, pos2seq, seq2pos (one hash tag: one slot).
-- ARGV[1] is the operation; the clocked ones then take now as Unix
-- seconds and nanoseconds, then their own arguments.
--
-- Times are kept as nanoseconds since the drop's origin (the whole second
-- of the first clock reading it saw), not since 1970: Lua numbers are
-- doubles, exact to the nanosecond only below 2^53 ns (104 days).

local kmeta, kvisitors, kseats, kpos2seq, kseq2pos = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local op = ARGV[1]

local REL_NONE, REL_DONE, REL_NOSHOW, REL_EXPIRED, REL_LEFT = 0, 1, 2, 3, 4

-- The numeric fields of meta. origin, clock and accrued are absent until
-- the first clocked call.
local FIELDS = {
  'has_start', 'start_s', 'start_ns', 'burst', 'max_active', 'no_show', 'ttl', 'max_joins',
  'rate', 'paused', 'closed', 'origin', 'clock', 'accrued', 'frozen', 'prequeue', 'joined',
  'frontier', 'credits', 'active', 'noshow_cur', 'expire_cur',
  'admitted', 'completed', 'no_shows', 'expired', 'left', 'left_waiting',
}

-- %.17g round-trips every double, where tostring keeps only 14 digits.
local function fmt(x) return string.format('%.17g', x) end

local epoch, seed, d

local function load()
  local v = redis.call('HMGET', kmeta, 'epoch', 'seed', unpack(FIELDS))
  if not v[1] then return false end
  epoch, seed, d = v[1], v[2], {}
  for i, f in ipairs(FIELDS) do d[f] = tonumber(v[i + 2]) end
  return true
end

local function save()
  local args = {}
  for _, f in ipairs(FIELDS) do
    if d[f] ~= nil then
      args[#args + 1] = f
      args[#args + 1] = fmt(d[f])
    end
  end
  redis.call('HSET', kmeta, unpack(args))
end

local function at(s, ns) return (s - d.origin) * 1e9 + ns end

local function started(now)
  return d.has_start == 0 or now >= at(d.start_s, d.start_ns)
end

-- A seat is "admitted,admittedAt,arrived,released"; a place with no entry
-- is waiting, which keeps the hash to the places that have had news.
local function get_seat(seq)
  local v = redis.call('HGET', kseats, seq)
  if not v then return { adm = 0, at = 0, arr = 0, rel = REL_NONE } end
  local adm, t, arr, rel = string.match(v, '^(%d),([^,]+),(%d),(%d)$')
  return { adm = tonumber(adm), at = tonumber(t), arr = tonumber(arr), rel = tonumber(rel) }
end

local function put_seat(seq, s)
  redis.call('HSET', kseats, seq, s.adm .. ',' .. fmt(s.at) .. ',' .. s.arr .. ',' .. s.rel)
end

-- The draw is two arrays of big-endian uint32, read one entry at a time.
local function u32(key, i)
  local b1, b2, b3, b4 = string.byte(redis.call('GETRANGE', key, (i - 1) * 4, i * 4 - 1), 1, 4)
  return ((b1 * 256 + b2) * 256 + b3) * 256 + b4
end

local function seq_at(pos)
  if pos <= d.prequeue then return u32(kpos2seq, pos) end
  return pos
end

local function position(seq)
  if seq <= d.prequeue then
    if d.frozen == 0 then return 0 end
    return u32(kseq2pos, seq)
  end
  return seq
end

local function release(seq, s, why)
  s.rel = why
  put_seat(seq, s)
  d.active = d.active - 1
  if why == REL_DONE then
    d.completed = d.completed + 1
  elseif why == REL_NOSHOW then
    d.no_shows = d.no_shows + 1
  elseif why == REL_EXPIRED then
    d.expired = d.expired + 1
  end
end

-- Positions are admitted in order and never earlier than the one before,
-- so each sweep is a cursor that stops at the first position not due yet.
local function sweep(now)
  if d.no_show > 0 then
    while d.noshow_cur < d.frontier do
      local seq = seq_at(d.noshow_cur + 1)
      local s = get_seat(seq)
      if s.adm == 1 and now - s.at < d.no_show then break end
      if s.adm == 1 and s.arr == 0 and s.rel == REL_NONE then release(seq, s, REL_NOSHOW) end
      d.noshow_cur = d.noshow_cur + 1
    end
  end
  if d.ttl > 0 then
    while d.expire_cur < d.frontier do
      local seq = seq_at(d.expire_cur + 1)
      local s = get_seat(seq)
      if s.adm == 1 and now - s.at < d.ttl then break end
      if s.adm == 1 and s.rel == REL_NONE then release(seq, s, REL_EXPIRED) end
      d.expire_cur = d.expire_cur + 1
    end
  end
end

-- admit moves the frontier as far as credit, cap and line allow; places
-- given up before their turn are skipped for free. Saved credit never
-- exceeds the burst.
local function admit(now)
  if not started(now) or d.frozen == 0 then return end
  while d.closed == 0 and d.paused == 0 and d.frontier < d.joined do
    local seq = seq_at(d.frontier + 1)
    local s = get_seat(seq)
    if s.rel ~= REL_NONE then
      d.frontier = d.frontier + 1
      d.left_waiting = d.left_waiting - 1
    else
      if d.credits < 1 or (d.max_active > 0 and d.active >= d.max_active) then break end
      d.credits = d.credits - 1
      d.frontier = d.frontier + 1
      d.active = d.active + 1
      d.admitted = d.admitted + 1
      s.adm, s.at = 1, now
      put_seat(seq, s)
    end
  end
  d.credits = math.min(d.credits, d.burst)
end

-- advance brings the drop up to now. It returns false, having changed
-- nothing, when the pre-queue must be drawn first (by the caller, which
-- has a real random source and sends the draw back with op "draw").
local function advance(now)
  if not started(now) then return true end
  if d.frozen == 0 then
    if d.prequeue > 0 then return false end
    d.frozen = 1
  end
  sweep(now)
  if d.accrued == nil then
    d.accrued = now
    if d.has_start == 1 then d.accrued = at(d.start_s, d.start_ns) end
  end
  local dt = now - d.accrued
  if dt > 0 then
    d.credits = d.credits + d.rate * dt / 6e10
    d.accrued = now
  end
  admit(now)
  return true
end

local function reply(status, ...)
  local r = { status, epoch, d.frozen, d.prequeue, d.joined, d.frontier, d.admitted, d.active,
    d.joined - d.frontier - d.left_waiting, d.completed, d.no_shows, d.expired, d.left,
    fmt(d.rate), d.paused, d.closed }
  for _, v in ipairs({ ... }) do r[#r + 1] = v end
  return r
end

local function seat_reply(seq, s)
  return reply('ok', position(seq), s.adm, fmt(s.at), s.arr, s.rel, fmt(d.origin))
end

if op == 'create' then
  local cfg = {
    has_start = tonumber(ARGV[4]), start_s = tonumber(ARGV[5]), start_ns = tonumber(ARGV[6]),
    burst = tonumber(ARGV[7]), max_active = tonumber(ARGV[8]), no_show = tonumber(ARGV[9]),
    ttl = tonumber(ARGV[10]), max_joins = tonumber(ARGV[11]),
  }
  if load() then
    -- The start moves only while the draw is not due: once a call has
    -- seen the start, the pre-queue is fixed.
    local due = d.frozen == 1 or (d.clock ~= nil and (d.has_start == 0 or d.clock >= at(d.start_s, d.start_ns)))
    for f, v in pairs(cfg) do
      if due and (f == 'has_start' or f == 'start_s' or f == 'start_ns') then v = d[f] end
      d[f] = v
    end
    save()
    return { epoch }
  end
  epoch, seed, d = ARGV[2], ARGV[3], cfg
  for _, f in ipairs({ 'rate', 'paused', 'closed', 'frozen', 'prequeue', 'joined', 'frontier', 'active',
    'noshow_cur', 'expire_cur', 'admitted', 'completed', 'no_shows', 'expired', 'left', 'left_waiting' }) do
    d[f] = 0
  end
  d.credits = d.burst
  save()
  redis.call('HSET', kmeta, 'epoch', epoch, 'seed', seed)
  return { epoch }
end

if op == 'delete' then
  if redis.call('EXISTS', kmeta) == 0 then return { 'unknown' } end
  redis.call('UNLINK', kmeta, kvisitors, kseats, kpos2seq, kseq2pos)
  return { 'ok' }
end

if not load() then return { 'unknown' } end

if op == 'draw' then
  -- ARGV: epoch, pre-queue size, pos2seq, seq2pos. Every replica computes
  -- the same draw from the stored seed, so the first to arrive wins and
  -- the rest are no-ops.
  if epoch ~= ARGV[2] or d.prequeue ~= tonumber(ARGV[3]) then return { 'stale' } end
  if d.frozen == 0 then
    redis.call('SET', kpos2seq, ARGV[4])
    redis.call('SET', kseq2pos, ARGV[5])
    redis.call('HSET', kmeta, 'frozen', 1)
  end
  return { 'ok' }
end

local s, ns = tonumber(ARGV[2]), tonumber(ARGV[3])
if d.origin == nil then d.origin = s end
local now = at(s, ns)
if d.clock ~= nil and now < d.clock then now = d.clock end
d.clock = now
if not advance(now) then
  -- Recording the clock fixes the pre-queue: every later call sees the
  -- start has passed, so no join can slip in before the draw lands.
  redis.call('HSET', kmeta, 'origin', fmt(d.origin), 'clock', fmt(d.clock))
  return { 'draw', epoch, seed, d.prequeue }
end

if op == 'join' then
  local visitor = ARGV[4]
  local seq = tonumber(redis.call('HGET', kvisitors, visitor))
  if seq and get_seat(seq).rel == REL_NONE then
    save()
    return reply('ok', seq, position(seq), seq <= d.prequeue and 1 or 0, 1)
  end
  if d.closed == 1 then
    save()
    return reply('closed')
  end
  if d.joined >= d.max_joins then
    save()
    return reply('full')
  end
  d.joined = d.joined + 1
  seq = d.joined
  redis.call('HSET', kvisitors, visitor, seq)
  if d.frozen == 0 then d.prequeue = d.prequeue + 1 end
  admit(now)
  save()
  return reply('ok', seq, position(seq), seq <= d.prequeue and 1 or 0, 0)
end

if op == 'counters' then
  save()
  return reply('ok')
end

if op == 'setflow' then
  d.rate = math.max(0, tonumber(ARGV[4]))
  d.paused = tonumber(ARGV[5])
  admit(now)
  save()
  return reply('ok')
end

if op == 'close' then
  d.closed = 1
  save()
  return reply('ok')
end

if op == 'position' or op == 'seat' or op == 'arrive' then
  local seq = tonumber(ARGV[4])
  if seq < 1 or seq > d.joined then
    save()
    return reply('noplace')
  end
  if op == 'position' then
    save()
    return reply('ok', position(seq))
  end
  local st = get_seat(seq)
  if op == 'arrive' and st.adm == 1 and st.rel == REL_NONE then
    st.arr = 1
    put_seat(seq, st)
  end
  save()
  return seat_reply(seq, st)
end

if op == 'release' then
  local seq = tonumber(redis.call('HGET', kvisitors, ARGV[4]))
  local st = seq and get_seat(seq)
  if not st or st.rel ~= REL_NONE then
    save()
    return reply('ok', 0)
  end
  if st.adm == 1 then
    release(seq, st, REL_DONE)
  else
    st.rel = REL_LEFT
    put_seat(seq, st)
    d.left = d.left + 1
    d.left_waiting = d.left_waiting + 1
  end
  admit(now)
  save()
  return reply('ok', 1)
end

return redis.error_reply('unknown ledger operation ' .. tostring(op))
