-- wrk: POST the same small JSON body the in-process loop publishes.
wrk.method = "POST"
wrk.body = '{"n":1,"text":"benchmark"}'
wrk.headers["Content-Type"] = "application/json"
