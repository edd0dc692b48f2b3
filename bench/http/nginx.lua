-- Forward-auth as nginx `auth_request` sends it: GET /v1/authz/nginx with the original request
-- in headers. bob (viewer) downloads logs of app payments, the `app:logs.download` route whose
-- `ops-read` strategy holds from the office network at any time (branch [P1]).
--   BENCH_TOKEN      bearer token for bob (bench/http/mint_jwt.py bob)
--   NGINX_CLIENT_IP  client address the proxy forwards (default 172.16.3.4, office -> allow;
--                    203.0.113.9, outside without a certificate -> deny with 403 at any time)
local token = os.getenv("BENCH_TOKEN") or error("BENCH_TOKEN is not set")
wrk.method = "GET"
wrk.path = "/v1/authz/nginx"
wrk.headers["X-Original-URI"] = "/ops/apps/payments/logs/x"
wrk.headers["X-Original-Method"] = "GET"
wrk.headers["X-Forwarded-For"] = os.getenv("NGINX_CLIENT_IP") or "172.16.3.4"
wrk.headers["X-Forwarded-Host"] = "ops.acme.example"
wrk.headers["X-Tenant-ID"] = "acme"
wrk.headers["Authorization"] = "Bearer " .. token

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
