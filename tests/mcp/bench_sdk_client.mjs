// Second benchmark client: the official SDK client itself, `concurrency`
// callers each awaiting tools/call echo in a loop for `seconds`.
// usage: node bench_sdk_client.mjs URL seconds concurrency   → prints "calls/s N"
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, seconds = '5', concurrency = '8'] = process.argv.slice(2);
const client = new Client({ name: 'bench', version: '1.0.0' });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const tools = (await client.listTools()).tools;  // caches the output schema validator
if (!tools.some((t) => t.name === 'echo')) throw new Error('no echo tool');
const end = Date.now() + Number(seconds) * 1000;
let calls = 0, bad = 0;
await Promise.all(Array.from({ length: Number(concurrency) }, async () => {
  while (Date.now() < end) {
    const r = await client.callTool({ name: 'echo', arguments: { text: 'bench' } });
    if (r.structuredContent?.text === 'bench') calls++; else bad++;
  }
}));
console.log(`calls/s ${(calls / Number(seconds)).toFixed(0)} bad ${bad}`);
await client.close();
process.exit(bad === 0 ? 0 : 1);
