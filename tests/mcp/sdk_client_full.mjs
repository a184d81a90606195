// Drives ordinaut-server's mcp_http with the official MCP TypeScript SDK client
// through everything a real client does: negotiation, listing, structured
// output, logging (and its level filter), progress, sampling, elicitation,
// tool errors, unknown tools, invalid arguments, cancellation, list_changed
// after a lazy extension loads, and DELETE. Exit 0 when every check passes.
// usage: node sdk_client_full.mjs http://127.0.0.1:PORT/ext/mcp_http/
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema, ElicitRequestSchema, LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema, McpError,
} from '@modelcontextprotocol/sdk/types.js';

const url = process.argv[2];
if (!url) { console.error('usage: node sdk_client_full.mjs <url>'); process.exit(2); }
const timer = setTimeout(() => { console.error('FAIL: timeout'); process.exit(1); }, 60000);

let failures = 0;
function check(ok, what, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${ok || detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
  if (!ok) failures++;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = (res) => res?.content?.[0]?.text ?? '';

const client = new Client({ name: 'ordinaut-sdk-full', version: '1.0.0' },
                          { capabilities: { sampling: {}, elicitation: {} } });
const logs = [];
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params); });
let listChanged = 0;
client.setNotificationHandler(ToolListChangedNotificationSchema, () => { listChanged++; });
client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
  role: 'assistant', model: 'test-model', stopReason: 'endTurn',
  content: { type: 'text', text: `echo of ${req.params.messages[0].content.text}` },
}));
client.setRequestHandler(ElicitRequestSchema, async () => ({
  action: 'accept', content: { username: 'ada', email: 'ada@example.com' },
}));

const transport = new StreamableHTTPClientTransport(new URL(url));
try {
  await client.connect(transport);
  check(transport.protocolVersion === '2025-11-25', 'negotiated 2025-11-25', transport.protocolVersion);
  const caps = client.getServerCapabilities();
  check(caps?.tools?.listChanged === true && caps?.logging !== undefined, 'capabilities tools.listChanged + logging', caps);
  check(/^[0-9a-f]{32}$/.test(transport.sessionId ?? ''), 'session id is 32 hex digits', transport.sessionId);

  const names = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    for (const t of page.tools) names.push(t.name);
    cursor = page.nextCursor;
  } while (cursor);
  check(names.includes('echo') && names.includes('test_sampling'), 'tools/list has echo and test_sampling', names);
  check(!names.includes('ext.mcp_lazy.hello'), 'lazy tool not listed before its extension loads');

  const echo = await client.callTool({ name: 'echo', arguments: { text: 'héllo ✓' } });
  check(echo.structuredContent?.text === 'héllo ✓', 'echo structuredContent (validated by the SDK against outputSchema)', echo);

  await client.setLoggingLevel('debug');
  await client.callTool({ name: 'test_tool_with_logging', arguments: {} });
  await sleep(100);
  check(logs.length === 3 && logs.every((l) => l.level === 'info'), '3 info log notifications at level debug', logs);
  await client.setLoggingLevel('error');
  await client.callTool({ name: 'test_tool_with_logging', arguments: {} });
  await sleep(100);
  check(logs.length === 3, 'no log notifications at level error', logs);

  const progress = [];
  await client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined,
                        { onprogress: (p) => progress.push(p.progress) });
  check(JSON.stringify(progress) === '[0,50,100]', 'progress 0, 50, 100', progress);

  const sampled = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'two plus two' } });
  check(text(sampled) === 'LLM response: echo of two plus two', 'sampling round trip', sampled);
  const elicited = await client.callTool({ name: 'test_elicitation', arguments: { message: 'who are you?' } });
  check(text(elicited).includes('action=accept') && text(elicited).includes('ada@example.com'), 'elicitation round trip', elicited);

  const failed = await client.callTool({ name: 'test_error_handling', arguments: {} });
  check(failed.isError === true && text(failed).includes('intentionally'), 'failing tool gives isError', failed);

  const invalid = await client.callTool({ name: 'echo', arguments: { text: 5 } });
  check(invalid.isError === true && text(invalid).includes('/text'), 'invalid arguments: isError naming /text (SEP-1303)', invalid);

  try {
    await client.callTool({ name: 'no_such_tool', arguments: {} });
    check(false, 'unknown tool rejected');
  } catch (e) {
    check(e instanceof McpError && e.code === -32602, 'unknown tool: MCP error -32602', String(e));
  }

  const abort = new AbortController();
  const pending = client.callTool({ name: 'wait_for_cancel', arguments: {} }, undefined, { signal: abort.signal });
  await sleep(300);
  abort.abort('test cancels');
  try { await pending; check(false, 'cancelled call rejects'); } catch { check(true, 'cancelled call rejects'); }
  let count = 0;
  for (let i = 0; i < 40 && count === 0; i++) {
    await sleep(50);
    count = (await client.callTool({ name: 'cancellations', arguments: {} })).structuredContent.count;
  }
  check(count === 1, 'the tool saw notifications/cancelled', count);

  const lazy = await client.callTool({ name: 'ext.mcp_lazy.hello', arguments: {} });
  check(text(lazy).includes('lazily loaded'), 'call of a lazy extension tool loads it', lazy);
  for (let i = 0; i < 40 && listChanged === 0; i++) await sleep(50);
  check(listChanged >= 1, 'notifications/tools/list_changed on the GET stream', listChanged);
  const after = (await client.listTools()).tools.map((t) => t.name);
  check(after.includes('ext.mcp_lazy.hello'), 'lazy tool listed after list_changed', after);

  const sessionId = transport.sessionId;
  await transport.terminateSession();
  const gone = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream',
               'mcp-session-id': sessionId },
    body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }),
  });
  check(gone.status === 404, 'session gone after DELETE (404)', gone.status);
  await client.close();
} catch (e) {
  check(false, 'unexpected exception', String(e?.stack ?? e));
}
clearTimeout(timer);
console.log(failures === 0 ? 'OK' : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
