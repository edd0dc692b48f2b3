-- POST /access/v1/evaluation: the question of check.lua asked as an AuthZEN client asks it —
-- may bob download the logs of app payments from the office network? The tenant comes from
-- X-Tenant-ID (AuthZEN bodies name none); the answer is allow whatever the wall clock says.
wrk.method = "POST"
wrk.path = "/access/v1/evaluation"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant-ID"] = "acme"
wrk.body = '{"subject":{"type":"user","id":"bob"},"action":{"name":"logs.download"},'
   .. '"resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}'

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
