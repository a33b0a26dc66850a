-- wrk script: GET /api/voice-therapy/credits as a signed-in firewall user.
-- The session cookie comes from the environment (bench/bench_voice.sh sets it).
local cookie = os.getenv("CD_BENCH_COOKIE")
if cookie == nil or cookie == "" then
	error("CD_BENCH_COOKIE is not set")
end
wrk.method = "GET"
wrk.path = "/api/voice-therapy/credits"
wrk.headers["Cookie"] = "cd_session=" .. cookie
wrk.headers["Accept"] = "application/json"
