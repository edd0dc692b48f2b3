-- POST /v1/check: may bob download the logs of app payments from the office network?
-- Roles come from the bundle (bob is a viewer); `app:logs.download` carries the `ops-read`
-- strategy, which holds from the office network at any time (branch [P1]), so the answer is
-- allow whatever the wall clock says.
--   BENCH_TOKEN  when set, sent as a bearer token (the check-jwt workload), addressed to the
--                tenant's domain as the token binding requires; otherwise the request is
--                anonymous like the Cerbos one.
wrk.method = "POST"
wrk.path = "/v1/check"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"tenant":"acme","principal":{"id":"bob"},"action":"app:logs.download",'
   .. '"resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}'
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. token
   wrk.headers["Host"] = "ops.acme.example"
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
