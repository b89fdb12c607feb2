"""The Redis side of the ACD: one Lua script, one atomic decision per call (see engine.py).

It mirrors :mod:`acd.policy` step for step; key layout under the prefix ``P``:

- ``P skills`` hash skill → ``target|after0,after1,…|readykey0,readykey1,…``
- ``P a:<agent>`` hash: st, rs (reason), call, idle, keys, gen (综合席), tiers
  (``skill:tier:target,…``, the general steps left to ``gh``)
- ``P c:<call>`` hash: sk, pr, arr, varr, st, ag, tin (tiers holding it), rk (re-entry key),
  off (offered at: later than arr for a call that was queued), ans (answered at), est (the
  wait estimated when it was queued, written by the router),
  cb (1: a callback, no channel) and tries (its failed callbacks); st ``retry``: a failed
  callback waiting for its ``k|call`` timer
- ``P cbcfg`` hash: ring (extra ring time of a callback offer), retries, after (retry wait)
- ``P h:<skill>`` hash: handle time (talk + wrap-up) moving average per agent (field = agent
  id) and for the skill (field ``*``), updated when a call ends
- ``P g:<skill>`` hash: the observed time per place (``acd.estimate.next_gap``), updated when
  a call is answered: ``last`` (that answer's time), ``gap`` (the moving gap between answers
  while the queue was not empty), ``n`` (gaps counted)
- ``P q:<skill>:<tier>`` zset of waiting calls by virtual arrival
- ``P r:<readykey>`` zset of ready agents by idle-since; ``P staff`` hash readykey → logged in;
  ``P low`` hash skill → its lowest specialist tier with someone logged in
- ``P gh:<target>`` zset skill → head of its general-step queue, per service-level target
  (``P gts`` lists the targets): a 综合席 agent reads a few heads, not every skill's queue
- ``P due`` zset of timers: ``p|call|tier`` escalation, ``w|agent`` wrap-up, ``r|agent`` ring,
  ``k|call`` a failed callback's return to its place
- ``P lease`` the routers' leader lease ``<token>|<name>`` (``acd/lease.py``), checked when
  the op comes as ``op|token``;
- ``P re:<key>`` re-entry places; ``P log`` stream of every change; ``P n:agent:<id>``,
  ``P n:skill:<skill>`` counters (with ``est_n``, ``est_abs_err``: answered calls that had
  an estimate, and the sum of its absolute errors).
Numbers cross into Redis as ``%.17g`` so scores round-trip exactly.  The moving averages'
weights come from :mod:`acd.estimate` (one definition for the engine and the simulator).
"""

from acd.estimate import GAP_ALPHA, HANDLE_ALPHA, MAX_GAP_S

_SCRIPT = r"""
local P = KEYS[1]
local op, fence = string.match(ARGV[1], '^([^|]*)|?(.*)$')
local now = tonumber(ARGV[2])
local ring_s = tonumber(ARGV[3])
local wrapup_s = tonumber(ARGV[4])
local reentry_s = tonumber(ARGV[5])
local offers = {}
-- handle times: weight of the newest call in the moving averages (``P h:<skill>``)
local HANDLE_ALPHA = @HANDLE_ALPHA@
-- observed time per place (``P g:<skill>``): weight of the newest gap, largest value believed
local GAP_ALPHA, MAX_GAP = @GAP_ALPHA@, @MAX_GAP@

-- Several routers (acd/lease.py): the leader sends its lease token as ``op|token``; a
-- deposed leader's late decision is refused before it changes anything.
if fence ~= '' then
  local held = redis.call('GET', P .. 'lease')
  if not held or string.match(held, '^(%d+)|') ~= fence then
    return redis.error_reply('REFUSED fenced: token ' .. fence .. ' does not hold the lease')
  end
end

-- numbers as text, each formatted once per call (not seeded with ARGV[2]: a tier number equal
-- to ``now`` would then come out as now's text, e.g. '1.0', and break the timers' members)
local ftext = {}
local function f(x)
  local t = ftext[x]
  if t == nil then
    t = string.format('%.17g', x)
    ftext[x] = t
  end
  return t
end
local PATTERN = {[','] = '([^,]+)', ['|'] = '([^|]+)'}
local function split(s, sep)
  local out = {}
  if s == nil or s == false or s == '' then return out end
  for part in string.gmatch(s, PATTERN[sep]) do out[#out + 1] = part end
  return out
end
local function refuse(msg) return redis.error_reply('REFUSED ' .. msg) end

local cache = {}
local function skill(s)
  local c = cache[s]
  if c then return c end
  local raw = redis.call('HGET', P .. 'skills', s)
  local parts = split(raw, '|')
  c = {T = tonumber(parts[1]), Tt = parts[1], after = {}, keys = split(parts[3], ','), gen = -1}
  for i, a in ipairs(split(parts[2], ',')) do c.after[i] = tonumber(a) end
  if c.keys[#c.keys] == 'G' then c.gen = #c.keys - 1 end
  cache[s] = c
  return c
end

local function log(ev, ...)
  redis.call('XADD', P .. 'log', '*', 't', f(now), 'ev', ev, ...)
end

-- quiet: the caller logs an event that names the new state (offer → reserved, answer → on_call);
-- further field/value pairs are written with the state
local function set_state(aid, st, reason, cid, quiet, ...)
  redis.call('HSET', P .. 'a:' .. aid, 'st', st, 'rs', reason, 'call', cid, ...)
  if not quiet then log('state', 'agent', aid, 'state', st, 'reason', reason) end
end

local lows = {}
local function eff(s, tier)
  local low = lows[s]
  if low == nil then
    low = tonumber(redis.call('HGET', P .. 'low', s) or '99')
    lows[s] = low
  end
  if low < tier then return tier end
  return 0
end

-- The 综合席 index: per service-level target, each skill's head call at its general step.
local function gindex(s)
  local sk = skill(s)
  if sk.gen < 0 then return end
  local head = redis.call('ZRANGE', P .. 'q:' .. s .. ':' .. f(eff(s, sk.gen)), 0, 0, 'WITHSCORES')
  if head[1] then
    redis.call('ZADD', P .. 'gh:' .. sk.Tt, head[2], s)
  else
    redis.call('ZREM', P .. 'gh:' .. sk.Tt, s)
  end
end

local function update_low(keys)
  for _, key in ipairs(keys) do
    if key ~= 'G' then
      local s = string.match(key, '^(.*):%d+$')
      local sk = skill(s)
      local low = 99
      for t = #sk.keys, 1, -1 do
        local k = sk.keys[t]
        local n = tonumber(redis.call('HGET', P .. 'staff', k) or '0')
        if k ~= 'G' and n > 0 then low = t - 1 end
      end
      redis.call('HSET', P .. 'low', s, low)
      lows[s] = nil
      gindex(s)
    end
  end
end

-- Is the call in the queue 综合席 agents read for its skill (so the gh index may change)?
local function in_general(s, tin)
  local g = skill(s).gen
  return g >= 0 and eff(s, g) < tin
end

local function unqueue(cid, s, tin)
  tin = tin or tonumber(redis.call('HGET', P .. 'c:' .. cid, 'tin'))
  for t = 0, tin - 1 do redis.call('ZREM', P .. 'q:' .. s .. ':' .. f(t), cid) end
  redis.call('ZREM', P .. 'due', 'p|' .. cid .. '|' .. f(tin))
  if in_general(s, tin) then gindex(s) end
end

-- Put the call in each further tier whose step time has come; one timer for the next.
local function advance(cid, s, tin, arr, varr, extra)
  local sk = skill(s)
  for t = tin, #sk.after - 1 do
    local at = arr + sk.after[t + 1]
    if now < at then
      redis.call('ZADD', P .. 'due', f(at), 'p|' .. cid .. '|' .. f(t))
      break
    end
    redis.call('ZADD', P .. 'q:' .. s .. ':' .. f(t), varr, cid)
    tin = t + 1
  end
  if extra then
    redis.call('HSET', P .. 'c:' .. cid, 'tin', f(tin), unpack(extra))
  else
    redis.call('HSET', P .. 'c:' .. cid, 'tin', f(tin))
  end
  if in_general(s, tin) then gindex(s) end
  return tin
end

local function leave_ready(aid)
  for _, key in ipairs(split(redis.call('HGET', P .. 'a:' .. aid, 'keys'), ',')) do
    redis.call('ZREM', P .. 'r:' .. key, aid)
  end
end

-- fresh: the agent has just become ready and is in no ready set yet; s, tin: the call's skill
-- and tiers when the caller knows them
local function offer(cid, aid, fresh, s, tin)
  local cb
  if s == nil then
    local c = redis.call('HMGET', P .. 'c:' .. cid, 'sk', 'tin', 'cb')
    s, tin, cb = c[1], tonumber(c[2]), c[3]
  else
    cb = redis.call('HGET', P .. 'c:' .. cid, 'cb')
  end
  unqueue(cid, s, tin)
  if not fresh then leave_ready(aid) end
  redis.call('HSET', P .. 'c:' .. cid, 'st', 'reserved', 'ag', aid, 'off', ARGV[2])
  set_state(aid, 'reserved', '', cid, true)
  local ring = ring_s
  if cb == '1' then
    ring = ring + tonumber(redis.call('HGET', P .. 'cbcfg', 'ring') or '0')
  end
  redis.call('ZADD', P .. 'due', f(now + ring), 'r|' .. aid)
  log('offer', 'agent', aid, 'call', cid, 'skill', s, 'state', 'reserved')
  redis.call('HINCRBY', P .. 'n:agent:' .. aid, 'offered', '1')
  redis.call('HINCRBY', P .. 'n:skill:' .. s, 'offered', '1')
  offers[#offers + 1] = cid
  offers[#offers + 1] = aid
end

local function match_call(cid, s, tin)
  local sk = skill(s)
  for t = 0, #sk.after - 1 do
    if eff(s, t) < tin then
      local head = redis.call('ZRANGE', P .. 'r:' .. sk.keys[t + 1], 0, 0)
      if head[1] then
        offer(cid, head[1], false, s, tin)
        return true
      end
    end
  end
  return false
end

-- The agent's most urgent eligible call (nil if none) and its ready keys (text).
local function match_agent(aid)
  local a = redis.call('HMGET', P .. 'a:' .. aid, 'tiers', 'gen', 'keys')
  local items = split(a[1], ',')
  local skills, tiers, targets, unknown = {}, {}, {}, {}
  for i, item in ipairs(items) do
    local s, t, T = string.match(item, '^(.-):(%d+):(.*)$')
    skills[i], tiers[i], targets[i] = s, tonumber(t), tonumber(T)
    if lows[s] == nil then unknown[#unknown + 1] = s end
  end
  if #unknown > 0 then  -- one read of the lowest staffed tiers for all the agent's skills
    local got = redis.call('HMGET', P .. 'low', unpack(unknown))
    for i, s in ipairs(unknown) do lows[s] = tonumber(got[i] or '99') end
  end
  local best, best_u = nil, 0
  for i, s in ipairs(skills) do
    local head = redis.call('ZRANGE', P .. 'q:' .. s .. ':' .. f(eff(s, tiers[i])), 0, 0,
      'WITHSCORES')
    if head[1] then
      local u = (now - tonumber(head[2])) / targets[i]
      if best == nil or u > best_u then best, best_u = head[1], u end
    end
  end
  if a[2] == '1' then  -- a 综合席 agent: the most urgent head of every skill's general step
    for _, Tt in ipairs(redis.call('SMEMBERS', P .. 'gts')) do
      local head = redis.call('ZRANGE', P .. 'gh:' .. Tt, 0, 0, 'WITHSCORES')
      if head[1] then
        local u = (now - tonumber(head[2])) / tonumber(Tt)
        if best == nil or u > best_u then
          local s = head[1]
          best = redis.call('ZRANGE', P .. 'q:' .. s .. ':' .. f(eff(s, skill(s).gen)), 0, 0)[1]
          best_u = u
        end
      end
    end
  end
  return best, a[3]
end

-- idle: the idle-since time as text (now's, or the one kept in the agent's hash)
local function make_ready(aid, idle)
  set_state(aid, 'ready', '', '', false, 'idle', idle)
  local cid, keys = match_agent(aid)
  if cid then
    offer(cid, aid, true)
    return
  end
  for _, key in ipairs(split(keys, ',')) do
    redis.call('ZADD', P .. 'r:' .. key, idle, aid)
  end
end

-- A call of skill s ended at agent aid after handle_s (talk + wrap-up): moving averages per
-- agent × skill (field aid) and per skill (field '*', never an id) in ``P h:<skill>``.
local function keep_handle(aid, s, handle_s)
  local key = P .. 'h:' .. s
  local old = redis.call('HMGET', key, aid, '*')
  local out = {}
  for i, field in ipairs({aid, '*'}) do
    local x = handle_s
    if old[i] then x = tonumber(old[i]) + HANDLE_ALPHA * (handle_s - tonumber(old[i])) end
    out[#out + 1] = field
    out[#out + 1] = f(x)
  end
  redis.call('HSET', key, unpack(out))
end

-- A call of skill s was answered after waited seconds; if it was queued (offered after it
-- came), the time since the skill's last answer, at most this wait, is one gap of the
-- observed time per place, averaged with weight max(GAP_ALPHA, 1/n); an old value that is not
-- a sane number starts again (acd/estimate.py next_gap, the same rule).
local function keep_gap(s, waited, queued)
  local key = P .. 'g:' .. s
  if not (queued and waited > 0) then
    redis.call('HSET', key, 'last', ARGV[2])
    return
  end
  local g = redis.call('HMGET', key, 'last', 'gap', 'n')
  local sample = waited
  local last = tonumber(g[1])
  if last and last <= now then sample = math.min(now - last, waited) end
  local gap, n = tonumber(g[2]), tonumber(g[3])
  if gap and n and gap >= 0 and gap <= MAX_GAP and n >= 1 and n == math.floor(n) then
    n = n + 1
    gap = gap + math.max(GAP_ALPHA, 1 / n) * (sample - gap)
  else
    gap, n = sample, 1
  end
  redis.call('HSET', key, 'last', ARGV[2], 'gap', f(gap), 'n', f(n))
end

-- The call (skill s, arrival arr, virtual arrival varr as stored) waits: tiers, timer, match.
local function wait(cid, s, arr, varr, fields)
  fields = fields or {}
  for _, x in ipairs({'st', 'waiting', 'ag', ''}) do fields[#fields + 1] = x end
  local tin = advance(cid, s, 0, arr, varr, fields)
  match_call(cid, s, tin)
end

local function wait_again(cid)
  local c = redis.call('HMGET', P .. 'c:' .. cid, 'sk', 'arr', 'varr')
  wait(cid, c[1], tonumber(c[2]), c[3])
end

local function agent_state(aid)
  local st = redis.call('HGET', P .. 'a:' .. aid, 'st')
  if not st then return nil end
  return st
end

local function held(aid, cid)
  local a = redis.call('HMGET', P .. 'a:' .. aid, 'st', 'call')
  return a[1] == 'reserved' and a[2] == cid and redis.call('EXISTS', P .. 'c:' .. cid) == 1
end

local function no_answer(aid, cid)
  redis.call('ZREM', P .. 'due', 'r|' .. aid)
  set_state(aid, 'not_ready', 'no_answer', '')
  log('no_answer', 'agent', aid, 'call', cid)
  redis.call('HINCRBY', P .. 'n:agent:' .. aid, 'no_answer', '1')
  wait_again(cid)
end

local function sweep(emptied)
  for _, key in ipairs(emptied) do
    if key ~= 'G' then
      local s, low = string.match(key, '^(.*):(%d+)$')
      local sk = skill(s)
      for t = tonumber(low) + 1, #sk.after - 1 do
        while true do
          local head = redis.call('ZRANGE', P .. 'r:' .. sk.keys[t + 1], 0, 0)
          if not head[1] then break end
          local cid = match_agent(head[1])
          if not cid then break end
          offer(cid, head[1])
        end
      end
    end
  end
end

if op == 'login' then
  local aid, tiers, keys, ready, gen = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
  local st = agent_state(aid)
  if st and st ~= 'logged_out' then return refuse('agent ' .. aid .. ' is already logged in') end
  redis.call('HSET', P .. 'a:' .. aid, 'tiers', tiers, 'keys', keys, 'idle', f(0), 'gen', gen)
  for _, key in ipairs(split(keys, ',')) do redis.call('HINCRBY', P .. 'staff', key, 1) end
  update_low(split(keys, ','))
  log('login', 'agent', aid)
  if ready == '1' then make_ready(aid, ARGV[2]) else set_state(aid, 'not_ready', 'break', '') end

elseif op == 'ready' or op == 'wrapup_end' then
  local aid = ARGV[6]
  local st = agent_state(aid)
  if not st then return refuse('unknown agent ' .. aid) end
  if op == 'wrapup_end' and st ~= 'wrapup' then
    return refuse('agent ' .. aid .. ' is not in wrap-up')
  end
  if st ~= 'ready' then
    if st ~= 'not_ready' and st ~= 'wrapup' then
      return refuse('agent ' .. aid .. ' is ' .. st .. ', cannot become ready')
    end
    redis.call('ZREM', P .. 'due', 'w|' .. aid)
    make_ready(aid, ARGV[2])
  end

elseif op == 'not_ready' then
  local aid, reason = ARGV[6], ARGV[7]
  local st = agent_state(aid)
  if not st then return refuse('unknown agent ' .. aid) end
  if st ~= 'ready' and st ~= 'wrapup' and st ~= 'not_ready' then
    return refuse('agent ' .. aid .. ' is ' .. st .. ', cannot go not ready')
  end
  leave_ready(aid)
  redis.call('ZREM', P .. 'due', 'w|' .. aid)
  set_state(aid, 'not_ready', reason, '')

elseif op == 'logout' then
  local aid = ARGV[6]
  local st = agent_state(aid)
  if not st then return refuse('unknown agent ' .. aid) end
  if st == 'reserved' or st == 'on_call' or st == 'logged_out' then
    return refuse('agent ' .. aid .. ' is ' .. st .. ', cannot log out')
  end
  leave_ready(aid)
  redis.call('ZREM', P .. 'due', 'w|' .. aid)
  set_state(aid, 'logged_out', '', '')
  local emptied = {}
  local keys = split(redis.call('HGET', P .. 'a:' .. aid, 'keys'), ',')
  for _, key in ipairs(keys) do
    if redis.call('HINCRBY', P .. 'staff', key, -1) == 0 then emptied[#emptied + 1] = key end
  end
  update_low(emptied)
  sweep(emptied)

elseif op == 'enqueue' then
  local cid, s, prio, varr, rkey = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9]), ARGV[10]
  if redis.call('EXISTS', P .. 'c:' .. cid) == 1 then return offers end
  local arr = now
  if rkey ~= '' then
    local old = redis.call('HMGET', P .. 're:' .. rkey, 'exp', 'arr', 'varr')
    redis.call('DEL', P .. 're:' .. rkey)
    if old[1] and tonumber(old[1]) >= now then
      arr = tonumber(old[2])
      varr = math.min(varr, tonumber(old[3]))
    end
  end
  log('enqueue', 'call', cid, 'skill', s, 'priority', prio)
  redis.call('HINCRBY', P .. 'n:skill:' .. s, 'entered', '1')
  wait(cid, s, arr, f(varr), {'sk', s, 'pr', prio, 'arr', f(arr), 'varr', f(varr), 'rk', rkey})

elseif op == 'priority' then
  -- a supervisor's boost: the waiting call re-scored from its arrival in every queue it is in
  local cid, prio, boost, by = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
  local c = redis.call('HMGET', P .. 'c:' .. cid, 'st', 'sk', 'arr', 'tin')
  if c[1] ~= 'waiting' then return refuse('call ' .. cid .. ' is not waiting') end
  local s, tin = c[2], tonumber(c[4])
  local varr = tonumber(c[3]) - prio * boost * skill(s).T
  for t = 0, tin - 1 do redis.call('ZADD', P .. 'q:' .. s .. ':' .. t, 'XX', f(varr), cid) end
  redis.call('HSET', P .. 'c:' .. cid, 'pr', prio, 'varr', f(varr))
  if in_general(s, tin) then gindex(s) end
  log('priority', 'call', cid, 'skill', s, 'priority', prio, 'by', by)

elseif op == 'accept' then
  local aid, cid = ARGV[6], ARGV[7]
  local a = redis.call('HMGET', P .. 'a:' .. aid, 'st', 'call')
  local c = redis.call('HMGET', P .. 'c:' .. cid, 'arr', 'sk', 'est', 'off')
  if a[1] ~= 'reserved' or a[2] ~= cid or not c[1] then
    return refuse('agent ' .. aid .. ' holds no offer of call ' .. cid)
  end
  redis.call('ZREM', P .. 'due', 'r|' .. aid)
  redis.call('HSET', P .. 'c:' .. cid, 'st', 'on_call', 'ans', ARGV[2])
  set_state(aid, 'on_call', '', cid, true)
  local waited = now - tonumber(c[1])
  local skey = P .. 'n:skill:' .. c[2]
  if c[3] then  -- the wait estimated when the call was queued: its error, per skill
    log('answer', 'agent', aid, 'call', cid, 'wait', f(waited), 'state', 'on_call', 'est', c[3])
    redis.call('HINCRBY', skey, 'est_n', '1')
    redis.call('HINCRBYFLOAT', skey, 'est_abs_err', f(math.abs(tonumber(c[3]) - waited)))
  else
    log('answer', 'agent', aid, 'call', cid, 'wait', f(waited), 'state', 'on_call')
  end
  redis.call('HINCRBY', P .. 'n:agent:' .. aid, 'answered', '1')
  redis.call('HINCRBY', skey, 'answered', '1')
  local off = tonumber(c[4])
  keep_gap(c[2], waited, off ~= nil and off > tonumber(c[1]))

elseif op == 'no_answer' then
  local aid, cid = ARGV[6], ARGV[7]
  if not held(aid, cid) then return refuse('agent ' .. aid .. ' holds no offer of call ' .. cid) end
  no_answer(aid, cid)

elseif op == 'callback' then
  local cid = ARGV[6]
  local c = redis.call('HMGET', P .. 'c:' .. cid, 'st', 'sk')
  if c[1] ~= 'waiting' then return refuse('call ' .. cid .. ' is not waiting') end
  redis.call('HSET', P .. 'c:' .. cid, 'cb', '1')
  redis.call('HSETNX', P .. 'c:' .. cid, 'tries', 0)
  log('callback', 'call', cid, 'skill', c[2])

elseif op == 'callback_failed' then
  local aid, cid = ARGV[6], ARGV[7]
  if not held(aid, cid) then return refuse('agent ' .. aid .. ' holds no offer of call ' .. cid) end
  local c = redis.call('HMGET', P .. 'c:' .. cid, 'cb', 'sk', 'arr')
  if c[1] ~= '1' then return refuse('call ' .. cid .. ' is not a callback') end
  redis.call('ZREM', P .. 'due', 'r|' .. aid)
  local cfg = redis.call('HMGET', P .. 'cbcfg', 'retries', 'after')
  local tries = redis.call('HINCRBY', P .. 'c:' .. cid, 'tries', 1)
  if tries > tonumber(cfg[1] or '0') then
    redis.call('DEL', P .. 'c:' .. cid)
    log('callback_gave_up', 'call', cid, 'skill', c[2], 'wait', f(now - tonumber(c[3])),
      'tries', tries)
  else
    redis.call('HSET', P .. 'c:' .. cid, 'st', 'retry', 'ag', '')
    redis.call('ZADD', P .. 'due', f(now + tonumber(cfg[2] or '60')), 'k|' .. cid)
    log('callback_retry', 'call', cid, 'agent', aid, 'tries', tries)
  end
  make_ready(aid, redis.call('HGET', P .. 'a:' .. aid, 'idle'))

elseif op == 'hangup' then
  local cid = ARGV[6]
  local c = redis.call('HMGET', P .. 'c:' .. cid, 'st', 'ag', 'sk', 'arr', 'varr', 'rk', 'ans')
  if not c[1] then return offers end
  local st, aid, s = c[1], c[2], c[3]
  local waited = f(now - tonumber(c[4]))
  if st == 'waiting' then unqueue(cid, s) end
  redis.call('DEL', P .. 'c:' .. cid)
  if st == 'retry' then
    redis.call('ZREM', P .. 'due', 'k|' .. cid)
    log('abandon', 'call', cid, 'skill', s, 'wait', waited)
    redis.call('HINCRBY', P .. 'n:skill:' .. s, 'abandoned', 1)
  elseif st == 'waiting' then
    log('abandon', 'call', cid, 'skill', s, 'wait', waited)
    redis.call('HINCRBY', P .. 'n:skill:' .. s, 'abandoned', '1')
    if c[6] ~= '' and reentry_s > 0 then
      redis.call('HSET', P .. 're:' .. c[6], 'exp', f(now + reentry_s), 'arr', c[4], 'varr', c[5])
      redis.call('EXPIRE', P .. 're:' .. c[6], math.ceil(reentry_s) + 3600)
    end
  elseif st == 'reserved' then
    redis.call('ZREM', P .. 'due', 'r|' .. aid)
    log('abandon', 'call', cid, 'skill', s, 'wait', waited, 'agent', aid)
    redis.call('HINCRBY', P .. 'n:skill:' .. s, 'abandoned', '1')
    make_ready(aid, redis.call('HGET', P .. 'a:' .. aid, 'idle'))
  else
    log('end', 'call', cid, 'agent', aid)
    if c[7] then keep_handle(aid, s, now - tonumber(c[7]) + math.max(wrapup_s, 0)) end
    if wrapup_s <= 0 then
      make_ready(aid, ARGV[2])
    else
      set_state(aid, 'wrapup', '', '')
      redis.call('ZADD', P .. 'due', f(now + wrapup_s), 'w|' .. aid)
    end
  end

elseif op == 'tick' then
  for _ = 1, tonumber(ARGV[6]) do
    local first = redis.call('ZRANGE', P .. 'due', 0, 0, 'WITHSCORES')
    if not first[1] or tonumber(first[2]) > now then return offers end
    local member = first[1]
    redis.call('ZREM', P .. 'due', member)
    local kind, rest = string.sub(member, 1, 1), string.sub(member, 3)
    if kind == 'p' then
      local cid, t = string.match(rest, '^(.*)|(%d+)$')
      local c = redis.call('HMGET', P .. 'c:' .. cid, 'sk', 'arr', 'varr')
      match_call(cid, c[1], advance(cid, c[1], tonumber(t), tonumber(c[2]), c[3]))
    elseif kind == 'w' then
      make_ready(rest, ARGV[2])
    elseif kind == 'k' then
      wait_again(rest)
    else
      no_answer(rest, redis.call('HGET', P .. 'a:' .. rest, 'call'))
    end
  end
  offers[#offers + 1] = 'more'

else
  return redis.error_reply('unknown op ' .. tostring(op))
end
return offers
"""

SCRIPT = (
    _SCRIPT.replace("@HANDLE_ALPHA@", repr(HANDLE_ALPHA))
    .replace("@GAP_ALPHA@", repr(GAP_ALPHA))
    .replace("@MAX_GAP@", repr(MAX_GAP_S))
)

NOTE_ESTIMATE = r"""
-- KEYS[1]: the call's hash; ARGV[1]: the wait estimated when it was queued.  Only a call that
-- is still waiting gets it (never recreates a call that is gone).
if redis.call('HGET', KEYS[1], 'st') == 'waiting' then
  redis.call('HSET', KEYS[1], 'est', ARGV[1])
  return 1
end
return 0
"""
