-- wrk script: one MCP tools/call (echo) per request on an initialized session;
-- every reply must carry the echoed structured result or it counts as bad.
-- Request ids are unique per session (thread number * 1e9 + counter): JSON-RPC
-- forbids reusing the id of a request still in flight.
-- usage: wrk ... -s tools_call.lua URL -- SESSION_ID PATH
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  counter = tid * 1000000000
  path = args[2]
  headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Mcp-Session-Id"] = args[1],
    ["MCP-Protocol-Version"] = "2025-11-25",
  }
end

function request()
  counter = counter + 1
  return wrk.format("POST", path, headers, '{"jsonrpc":"2.0","id":' .. counter ..
    ',"method":"tools/call","params":{"name":"echo","arguments":{"text":"bench"}}}')
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"structuredContent":{"text":"bench"}', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
  end
  io.write(string.format("bad_responses %d\n", total))
end
