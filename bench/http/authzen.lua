-- POST /access/v1/evaluation: the question of check.lua asked as an AuthZEN client asks it —
-- may bob download the logs of app payments from the office network? The answer is allow
-- whatever the wall clock says. AuthZEN bodies name no tenant and AuthZEN clients send no
-- tenant header: the request is addressed to the tenant's domain (Host: ops.acme.example), the
-- way a plain AuthZEN client reaches a tenant. With AUTHZEN_TENANT_HEADER=1 the tenant is named
-- by X-Tenant-ID instead (one more header for the server to read).
wrk.method = "POST"
wrk.path = "/access/v1/evaluation"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("AUTHZEN_TENANT_HEADER") == "1" then
   wrk.headers["X-Tenant-ID"] = "acme"
else
   wrk.headers["Host"] = "ops.acme.example"
end
wrk.body = '{"subject":{"type":"user","id":"bob"},"action":{"name":"logs.download"},'
   .. '"resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}'

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
