-- wrk script: a plain GET of the URL given (perf.sh's read limit).
wrk.method = "GET"
wrk.headers["Accept"] = "application/json"
