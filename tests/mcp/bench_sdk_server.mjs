// The baseline of tests/bench/mcp: the official TypeScript SDK's own MCP
// server (McpServer + StreamableHTTPServerTransport on createMcpExpressApp,
// stateful sessions, JSON replies — the SDK's fastest mode) with the same
// trivial "echo" tool the benchmark calls on ordinaut-server.
// usage: node bench_sdk_server.mjs [port]   prints "listening on http://127.0.0.1:PORT"
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

function newServer() {
  const server = new McpServer({ name: 'sdk-bench', version: '1.0.0' });
  server.registerTool('echo', {
    description: 'Returns its text unchanged (structured output)',
    inputSchema: { text: z.string() },
    outputSchema: { text: z.string() },
  }, async ({ text }) => ({
    content: [{ type: 'text', text: JSON.stringify({ text }) }],
    structuredContent: { text },
  }));
  return server;
}

const transports = new Map();
const app = createMcpExpressApp({ host: '127.0.0.1' });
app.all('/mcp', async (req, res) => {
  const id = req.headers['mcp-session-id'];
  let transport = id ? transports.get(id) : undefined;
  if (!transport) {
    if (id || req.method !== 'POST' || !isInitializeRequest(req.body)) {
      res.status(id ? 404 : 400).json({ jsonrpc: '2.0', error: { code: -32000, message: 'no valid session' }, id: null });
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: true,
      onsessioninitialized: (sid) => transports.set(sid, transport),
    });
    transport.onclose = () => { if (transport.sessionId) transports.delete(transport.sessionId); };
    await newServer().connect(transport);
  }
  await transport.handleRequest(req, res, req.body);
});

const listener = app.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${listener.address().port}`);
});
