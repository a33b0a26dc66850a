-- wrk script: POST /api/stripe/webhook with a NEW signed event per request.
--
-- Lua cannot compute the HMAC cheaply, so bench/bench_setup.py writes a file
-- of pre-signed events right before the run, one per line:
--   <Stripe-Signature value> TAB <raw JSON body>
-- Each wrk thread takes every Nth line (N = number of threads), so no two
-- threads ever send the same event; a thread that runs out starts again
-- from its first line (those repeats are answered as duplicates and
-- counted by bench.sh).  CD_BENCH_POST_PATH sends them elsewhere (perf.sh's
-- write limit).
local path = os.getenv("CD_BENCH_EVENTS")
local post_path = os.getenv("CD_BENCH_POST_PATH") or "/api/stripe/webhook"
local nthreads = tonumber(os.getenv("CD_BENCH_THREADS") or "1")
local counter = 0

function setup(thread)
	thread:set("id", counter)
	counter = counter + 1
end

function init(args)
	sigs, bodies, n, i = {}, {}, 0, 0
	local f = assert(io.open(path, "r"))
	local lineno = 0
	for line in f:lines() do
		if lineno % nthreads == id then
			local tab = string.find(line, "\t", 1, true)
			n = n + 1
			sigs[n] = string.sub(line, 1, tab - 1)
			bodies[n] = string.sub(line, tab + 1)
		end
		lineno = lineno + 1
	end
	f:close()
	if n == 0 then
		error("no events for thread " .. id)
	end
end

function request()
	i = i + 1
	if i > n then
		i = 1
	end
	return wrk.format("POST", post_path, {
		["Content-Type"] = "application/json; charset=utf-8",
		["Stripe-Signature"] = sigs[i],
	}, bodies[i])
end
