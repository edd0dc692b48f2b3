-- POST /v1/relations/check over a seeded world (bench/http/relations.sh writes it): each
-- request asks whether a user may view a document. Users are members of teams, teams view
-- folders, documents sit in folders, so a check walks team membership and the folder chain.
-- About a quarter of the questions are allowed.
--
-- The requests are formatted once, in `init`, and sent round-robin: building a body per
-- request in Lua costs wrk's single thread more than the server spends answering it.
local users = tonumber(os.getenv("REL_USERS") or "2000")
local docs = tonumber(os.getenv("REL_DOCS") or "4000")
local pool_size = 4093
wrk.method = "POST"
wrk.path = "/v1/relations/check"
wrk.headers["Content-Type"] = "application/json"

local pool = {}
local next_index = 0

function init(args)
   for i = 1, pool_size do
      local user = (i * 7919) % users
      local doc = (i * 104729) % docs
      local body = string.format(
         '{"tenant":"rel-bench","user":"user:u%d","relation":"viewer","object":"doc:d%d"}',
         user, doc)
      pool[i] = wrk.format(nil, nil, nil, body)
   end
end

function request()
   next_index = next_index % pool_size + 1
   return pool[next_index]
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
