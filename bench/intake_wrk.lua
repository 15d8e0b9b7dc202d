-- wrk script for `bench/intake_bench.py --wrk`: every request is a distinct, signed webhook.
--
-- wrk's LuaJIT has no HMAC, so the bench writes the requests beforehand, one a line:
-- "<X-Hub-Signature-256> <body>" (a JSON body has no raw newline). Arguments after "--":
-- that file, how many lines it has, and how many wrk threads share it. Thread k takes its own
-- slice of the lines and formats its requests in init(), before the clock starts, so that
-- request() is a table lookup. A thread that has handed out its whole slice stops rather
-- than repeat a body (a repeat would be a redelivery, not a new message); done() reports it.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local path, total, count = args[1], tonumber(args[2]), tonumber(args[3])
   local share = math.ceil(total / count)
   local first, last = id * share + 1, math.min((id + 1) * share, total)
   requests, handed, exhausted = {}, 0, false
   local line = 0
   for text in io.lines(path) do
      line = line + 1
      if line > last then
         break
      end
      if line >= first then
         local space = text:find(" ", 1, true)
         local headers = {["Content-Type"] = "application/json",
                          ["X-Hub-Signature-256"] = text:sub(1, space - 1)}
         requests[#requests + 1] = wrk.format("POST", nil, headers, text:sub(space + 1))
      end
   end
end

function request()
   handed = handed + 1
   local next_request = requests[handed]
   if next_request then
      return next_request
   end
   exhausted = true
   wrk.thread:stop()
   return wrk.format("GET", "/healthz") -- never a webhook: the thread is stopping
end

function done(summary, latency, _)
   local handed_out, ran_out = 0, 0
   for _, thread in ipairs(threads) do
      handed_out = handed_out + thread:get("handed")
      if thread:get("exhausted") then
         ran_out = ran_out + 1
      end
   end
   local errors = summary.errors
   io.write(string.format(
      'intake_wrk {"duration_us": %d, "requests": %d, "non_2xx_3xx": %d, "connect": %d, '
         .. '"read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p75_us": %d, '
         .. '"p90_us": %d, "p99_us": %d, "max_us": %d, "handed_out": %d, '
         .. '"threads_ran_out": %d}\n',
      summary.duration, summary.requests, errors.status, errors.connect, errors.read,
      errors.write, errors.timeout, latency:percentile(50), latency:percentile(75),
      latency:percentile(90), latency:percentile(99), latency.max, handed_out, ran_out))
end
