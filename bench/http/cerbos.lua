-- Cerbos PDP: POST /api/check/resources, one principal, one resource, one action: may bob
-- (role viewer, asserted in the request) download the logs of app payments?
-- Policy: bench/cerbos/policies/app.yaml.
wrk.method = "POST"
wrk.path = "/api/check/resources"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"requestId":"bench","principal":{"id":"bob","roles":["viewer"]},'
   .. '"resources":[{"resource":{"kind":"app","id":"payments"},"actions":["logs.download"]}]}'

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
