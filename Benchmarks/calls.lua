-- Replays pre-signed calls, each once; every thread takes every THREADS-th line.
local threads, next_id = {}, 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  local path, count, token, route = args[1], tonumber(args[2]), args[3], args[4]
  -- "cycle": replay the records round and round (the floor, which keeps nothing) instead of
  -- stopping once each was sent.
  cycle = args[5] == "cycle"
  -- Requests are formatted once, here: wrk shares the two cores with the server.
  requests, index, created, failed, ran_out = {}, 0, 0, 0, 0
  local authorization, n = "Bearer " .. token, 0
  for line in io.lines(path) do
    if n % count == id then
      local tab = line:find("\t")
      requests[#requests + 1] = wrk.format("POST", route, {["Content-Type"] = "application/json",
        ["Authorization"] = authorization, ["Idempotency-Key"] = line:sub(1, tab - 1)}, line:sub(tab + 1))
    end
    n = n + 1
  end
end
function request()
  if cycle then index = index % #requests + 1 else index = math.min(index + 1, #requests) end
  return requests[index]
end
function response(status, headers, body)
  if status == 201 or status == 200 then created = created + 1 else failed = failed + 1 end
  if index >= #requests and not cycle then
    ran_out = 1
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local ok, bad, out = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("created")
    bad = bad + thread:get("failed")
    out = out + thread:get("ran_out")
  end
  -- wrk reports the whole duration even when threads stopped early: a run whose threads ran
  -- out of records measured the records (their count over the duration), not the server, and
  -- says so in its last field (the threads that ran out).
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT %d %d %.3f %.2f %.2f %d\n", ok, bad, seconds,
                         latency:percentile(50) / 1000, latency:percentile(99) / 1000, out))
end
