-- wrk script: GET /api/live-help-hour as a signed-in user.
-- The session cookie comes from the environment (bench/bench.sh sets it).
local cookie = os.getenv("CD_BENCH_COOKIE")
if cookie == nil or cookie == "" then
	error("CD_BENCH_COOKIE is not set")
end
wrk.method = "GET"
wrk.path = "/api/live-help-hour"
wrk.headers["Cookie"] = "cd_session=" .. cookie
wrk.headers["Accept"] = "application/json"
