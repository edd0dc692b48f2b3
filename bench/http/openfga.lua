-- OpenFGA's check (`POST /stores/rel-bench/check`) over the world bench/http/relations.sh
-- writes: the same questions, in the same order, as relations.lua asks `/v1/relations/check`,
-- in OpenFGA's request format, so that the two endpoints' figures are comparable.
--
-- OPENFGA_BATCH=N (default 0) asks N questions per request through OpenFGA's batch check
-- (`POST /stores/rel-bench/batch-check`) instead, each with its correlation id.
local users = tonumber(os.getenv("REL_USERS") or "2000")
local docs = tonumber(os.getenv("REL_DOCS") or "4000")
local batch = tonumber(os.getenv("OPENFGA_BATCH") or "0")
local pool_size = 4093
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local pool = {}
local next_index = 0

local function question(i)
   local user = (i * 7919) % users
   local doc = (i * 104729) % docs
   return string.format('{"user":"user:u%d","relation":"viewer","object":"doc:d%d"}', user, doc)
end

function init(args)
   for i = 1, pool_size do
      local path, body
      if batch > 0 then
         local checks = {}
         for j = 1, batch do
            checks[j] = string.format('{"tuple_key":%s,"correlation_id":"c%d"}',
               question((i - 1) * batch + j), j)
         end
         path = "/stores/rel-bench/batch-check"
         body = '{"checks":[' .. table.concat(checks, ",") .. ']}'
      else
         path = "/stores/rel-bench/check"
         body = '{"tuple_key":' .. question(i) .. '}'
      end
      pool[i] = wrk.format(nil, path, nil, body)
   end
end

function request()
   next_index = next_index % pool_size + 1
   return pool[next_index]
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
