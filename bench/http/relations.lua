-- POST /v1/relations/check over a seeded world (bench/http/relations.sh writes it): each
-- request asks whether a random user may view a random document. Users are members of teams,
-- teams view folders, documents sit in folders, so a check walks team membership and the
-- folder chain. About a quarter of the questions are allowed.
local users = tonumber(os.getenv("REL_USERS") or "2000")
local docs = tonumber(os.getenv("REL_DOCS") or "4000")
wrk.method = "POST"
wrk.path = "/v1/relations/check"
wrk.headers["Content-Type"] = "application/json"

local counter = 0
function request()
   counter = counter + 1
   local user = (counter * 7919) % users
   local doc = (counter * 104729) % docs
   local body = string.format(
      '{"tenant":"rel-bench","user":"user:u%d","relation":"viewer","object":"doc:d%d"}', user, doc)
   return wrk.format(nil, nil, nil, body)
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
