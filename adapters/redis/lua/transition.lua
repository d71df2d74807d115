-- Apply events to runs, atomically, each with its consequences (ARCHITECTURE.md "Message flow").
-- Mirrors domain/run.py; the contract suite runs the same scenarios against both. One call applies
-- a batch of events of one shard, in order: one script invocation and one reply per batch.
--
-- KEYS: 1 the shard's task stream, 2 its timers, 3 its graph key prefix (a definition id appended),
--       4 its run index prefix (a run status appended: sorted sets of run ids by creation time)
-- ARGV: 1 the shard's run key prefix (a run id appended), then per event: its argument count n and
--       n arguments: 1 kind, 2 run id, 3 at, 4 node id, 5 attempt, 6 retention seconds, 7.. by kind:
--       started: 7 worker id; ok: 7 worker id, 8 started at ("" when unknown), 9 the output's
--       JSON when it came in the event ("" when the worker staged it);
--       fail: 7 error type, 8 message, 9 retryable ("1"/"0"), 10 worker id, 11 started at;
--       dead (the run's start, node id "", or a retry of node id, attempt, was dead-lettered): 7 message
-- Returns, per event, outcome ("applied", "ignored" or "unknown") and final run status or "".
-- Each applied event appends its entry to the run's history list (domain/history.py's shape,
-- times as the strings given; empty lists left out).
-- The keys of a run share the shard's hash tag with the declared keys.
--
-- Everything is checked before anything is written: a script is atomic but never rolls back.

local ENTRY_KIND = {
  start = 'run_started', started = 'node_started', ok = 'node_succeeded', fail = 'node_failed',
  timeout = 'attempt_timed_out', retry = 'retry_due', cancel = 'cancel_requested',
  dead = 'event_dead_lettered',
}

local function apply_event(KEYS, ARGV)
  local meta, nodes, outs, staged, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
  local tasks, timers, index = KEYS[6], KEYS[7], KEYS[9]
  local kind, run_id, at = ARGV[1], ARGV[2], ARGV[3]
  local node_id, attempt, retention = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])

  local staged_field = node_id .. '\n' .. tostring(attempt)
  -- A success that is not applied must not leave its staged output behind.
  local function ignored()
    if kind == 'ok' then redis.call('HDEL', staged, staged_field) end
    return {'ignored', ''}
  end

  local run = redis.call('HMGET', meta, 'status', 'definition_id', 'created_at')
  local status, definition_id, created_at = run[1], run[2], run[3]
  if not status then
    ignored()
    return {'unknown', ''}
  end

  local entry = {kind = ENTRY_KIND[kind], at = at}
  if node_id ~= '' then entry.node_id = node_id; entry.attempt = attempt end
  local dispatched, skipped = {}, {}
  local function applied(final)
    if #dispatched > 0 then entry.dispatched = dispatched end
    if #skipped > 0 then entry.skipped = skipped end
    if final ~= '' then entry.run_status = final end
    redis.call('RPUSH', history, cjson.encode(entry))
    return {'applied', final}
  end

  -- Moves the run between the status indexes; a final status also expires the run's keys and
  -- drops from that index up to two of its oldest runs whose keys have expired already.
  local function set_status(new_status)
    redis.call('ZREM', index .. 'PENDING', run_id)
    redis.call('ZREM', index .. 'RUNNING', run_id)
    redis.call('ZADD', index .. new_status, created_at, run_id)
    if new_status == 'RUNNING' then return end
    for i = 1, 5 do redis.call('EXPIRE', KEYS[i], retention) end
    for _, old in ipairs(redis.call('ZRANGE', index .. new_status, 0, 1)) do
      if redis.call('EXISTS', KEYS[10] .. old) == 0 then redis.call('ZREM', index .. new_status, old) end
    end
  end

  local graph = KEYS[8] .. definition_id
  if redis.call('EXISTS', graph) == 0 then
    -- Lost with Redis's data: nothing of this run can go on; end it, saying why.
    if status ~= 'PENDING' and status ~= 'RUNNING' then return ignored() end
    local reason = 'the definition of this run is missing from Redis (was its data lost?)'
    redis.call('HSET', meta, 'status', 'FAILED', 'finished_at', at, 'error', reason)
    set_status('FAILED')
    entry.error = {'DefinitionMissing', reason}
    return applied('FAILED')
  end

  local function spec(id) return cjson.decode(redis.call('HGET', graph, id)) end
  local function load(id)
    local raw = redis.call('HGET', nodes, id)
    if not raw then return nil end
    return cjson.decode(raw)
  end
  local function store(id, st) redis.call('HSET', nodes, id, cjson.encode(st)) end

  local function dispatch(id, sp, st)
    st.s = 'QUEUED'; st.a = st.a + 1; st.q = at; st.st = nil; st.wk = nil
    store(id, st)
    redis.call('HINCRBY', meta, 'in_flight', 1)
    dispatched[#dispatched + 1] = id
    redis.call('XADD', tasks, '*', 'r', run_id, 'd', definition_id, 'n', id, 'a', tostring(st.a), 'h', sp.h)
  end

  local function finish_if_done()
    if tonumber(redis.call('HGET', meta, 'unfinished')) > 0 then return '' end
    local final = 'COMPLETED'
    if tonumber(redis.call('HGET', meta, 'failed')) > 0 then final = 'FAILED' end
    redis.call('HSET', meta, 'status', final, 'finished_at', at)
    set_status(final)
    return final
  end

  -- The node if (node, attempt) is the attempt in flight; nil for stale or repeated news.
  local function current()
    if status ~= 'RUNNING' then return nil end
    local st = load(node_id)
    if st == nil or st.a ~= attempt or (st.s ~= 'QUEUED' and st.s ~= 'RUNNING') then return nil end
    return st
  end

  -- Bounded by the definition's size (MAX_NODES); runs once per node that fails for good.
  local function skip_descendants(failed_id)
    local message = "skipped because upstream node '" .. failed_id .. "' failed"
    local queue, head = spec(failed_id).c, 1
    while queue[head] do
      local id = queue[head]; head = head + 1
      local st = load(id)
      if st.s == 'PENDING' then
        st.s = 'SKIPPED'; st.e = {'UpstreamFailed', message}; st.f = at
        store(id, st)
        skipped[#skipped + 1] = id
        redis.call('HINCRBY', meta, 'unfinished', -1)
        for _, child in ipairs(spec(id).c) do queue[#queue + 1] = child end
      end
    end
  end

  -- The worker that reports an attempt's end ran it (it may have taken it over).
  local function record_worker(st, worker_id, started_at)
    if worker_id and worker_id ~= '' then st.wk = worker_id end
    if started_at and started_at ~= '' then st.st = started_at end
  end

  local function fail_attempt(st, error_type, message, retryable)
    local sp = spec(node_id)
    st.e = {error_type, message}
    entry.error = st.e
    if retryable and st.a < sp.m then
      local delay = math.min(sp.i * sp.x ^ (st.a - 1), sp.b)
      local record = {st.a, st.st or '', at, error_type, message}
      if st.fa == nil then st.fa = {record} else st.fa[#st.fa + 1] = record end
      st.s = 'PENDING'
      st.r = string.format('%.6f', tonumber(at) + delay)
      store(node_id, st)
      redis.call('HINCRBY', meta, 'in_flight', -1)
      redis.call('ZADD', timers, st.r, run_id .. '\n' .. node_id .. '\n' .. tostring(st.a + 1))
      entry.retry_at = st.r
      return ''
    end
    st.s = 'FAILED'; st.f = at
    store(node_id, st)
    redis.call('HINCRBY', meta, 'unfinished', -1)
    redis.call('HINCRBY', meta, 'in_flight', -1)
    redis.call('HINCRBY', meta, 'failed', 1)
    skip_descendants(node_id)
    return finish_if_done()
  end

  if kind == 'start' then
    if status ~= 'PENDING' then return {'ignored', ''} end
    redis.call('HSET', meta, 'status', 'RUNNING', 'started_at', at)
    set_status('RUNNING')
    for _, root in ipairs(cjson.decode(redis.call('HGET', graph, '@roots'))) do
      dispatch(root, spec(root), load(root))
    end
    return applied('')
  end

  if kind == 'started' then
    local st = current()
    -- RUNNING under another worker: the task was taken over from a silent one; record the new one.
    if st == nil or (st.s == 'RUNNING' and st.wk == ARGV[7]) then return {'ignored', ''} end
    st.s = 'RUNNING'; st.st = at; st.wk = ARGV[7]
    store(node_id, st)
    entry.worker_id = st.wk
    return applied('')
  end

  if kind == 'ok' then
    local st = current()
    if st == nil then return ignored() end
    local output = ARGV[9]
    if output == nil or output == '' then
      output = redis.call('HGET', staged, staged_field)
      if not output then return {'ignored', ''} end
      redis.call('HDEL', staged, staged_field)
    end
    redis.call('HSET', outs, node_id, output)
    record_worker(st, ARGV[7], ARGV[8])
    st.s = 'COMPLETED'; st.f = at; st.e = nil
    store(node_id, st)
    redis.call('HINCRBY', meta, 'unfinished', -1)
    redis.call('HINCRBY', meta, 'in_flight', -1)
    for _, child in ipairs(spec(node_id).c) do
      local cs = load(child)
      cs.w = cs.w - 1
      if cs.w == 0 and cs.s == 'PENDING' then dispatch(child, spec(child), cs) else store(child, cs) end
    end
    entry.worker_id = st.wk
    return applied(finish_if_done())
  end

  if kind == 'fail' then
    local st = current()
    if st == nil then return {'ignored', ''} end
    record_worker(st, ARGV[10], ARGV[11])
    entry.worker_id = st.wk
    return applied(fail_attempt(st, ARGV[7], ARGV[8], ARGV[9] == '1'))
  end

  if kind == 'timeout' then
    local st = current()
    if st == nil then return {'ignored', ''} end
    local message = 'attempt ' .. tostring(attempt) .. ' exceeded ' .. spec(node_id).t
    return applied(fail_attempt(st, 'TimeoutError', message, true))
  end

  -- Ends the run at once: every node not finished yet ends as ``unfinished_as`` (with ``error``
  -- when given). Bounded by MAX_NODES; rare, and touches every node once.
  local function end_run(final, unfinished_as, error)
    local all = redis.call('HGETALL', nodes)
    for i = 1, #all, 2 do
      local st = cjson.decode(all[i + 1])
      if st.s == 'PENDING' or st.s == 'QUEUED' or st.s == 'RUNNING' then
        st.s = unfinished_as; st.f = at; st.r = nil
        if error then st.e = error end
        redis.call('HSET', nodes, all[i], cjson.encode(st))
      end
    end
    redis.call('HSET', meta, 'status', final, 'finished_at', at, 'unfinished', 0, 'in_flight', 0)
    set_status(final)
    return applied(final)
  end

  -- The node if it waits for its retry ``attempt``; nil for stale or repeated news.
  local function awaiting_retry()
    if status ~= 'RUNNING' then return nil end
    local st = load(node_id)
    if st == nil or st.r == nil or attempt ~= st.a + 1 then return nil end
    return st
  end

  if kind == 'retry' then
    local st = awaiting_retry()
    if st == nil then return {'ignored', ''} end
    st.r = nil
    dispatch(node_id, spec(node_id), st)
    return applied('')
  end

  if kind == 'dead' and node_id == '' then
    -- The run could not start: it fails, every node skipped with the reason (bounded by MAX_NODES).
    if status ~= 'PENDING' then return {'ignored', ''} end
    entry.error = {'DeadLettered', ARGV[7]}
    return end_run('FAILED', 'SKIPPED', entry.error)
  end

  if kind == 'dead' then
    -- The retry could not be dispatched: the node fails for good.
    local st = awaiting_retry()
    if st == nil then return {'ignored', ''} end
    st.r = nil; st.s = 'FAILED'; st.f = at; st.e = {'DeadLettered', ARGV[7]}
    store(node_id, st)
    entry.error = st.e
    redis.call('HINCRBY', meta, 'unfinished', -1)
    redis.call('HINCRBY', meta, 'failed', 1)
    skip_descendants(node_id)
    return applied(finish_if_done())
  end

  if kind == 'cancel' then
    if status ~= 'PENDING' and status ~= 'RUNNING' then return {'ignored', ''} end
    return end_run('CANCELLED', 'CANCELLED', nil)
  end

  return {'error', 'unknown event kind ' .. tostring(kind)}

end

local run_prefix, results, position = ARGV[1], {}, 2
while position <= #ARGV do
  local count = tonumber(ARGV[position])
  local args = {}
  for offset = 1, count do args[offset] = ARGV[position + offset] end
  local base = run_prefix .. args[2]
  local keys = {
    base, base .. ':nodes', base .. ':out', base .. ':staged', base .. ':history',
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], run_prefix,
  }
  local outcome = apply_event(keys, args)
  if outcome[1] == 'error' then return redis.error_reply(outcome[2]) end
  results[#results + 1] = outcome[1]
  results[#results + 1] = outcome[2]
  position = position + count + 1
end
return results
