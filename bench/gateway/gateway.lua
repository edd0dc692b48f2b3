-- The benign request of bench/gateway/run.sh: a product search with five query parameters,
-- as a browser sends it (the headers keep CRS's protocol rules from scoring it).
wrk.method = "GET"
wrk.path = "/products/search?q=running+shoes&category=sport&size=42&sort=price_asc&page=2"
wrk.headers["Host"] = "shop.example"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
wrk.headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
wrk.headers["Accept-Language"] = "en-US,en;q=0.5"
wrk.headers["Accept-Encoding"] = "gzip, deflate"
-- Signed in (run.sh makes the token when the gateway rows run): the same header for every server.
local token = os.getenv("GATEWAY_BENCH_TOKEN")
if token then
  wrk.headers["Authorization"] = "Bearer " .. token
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "../http/report.lua")
