// The official MCP TypeScript SDK client lists and reads resources, lists and
// gets prompts, and completes, against ordinaut-server's mcp_http.
// usage: node sdk_client_content.mjs <url> [promptName [jsonArgs]]
//   always: resources/list has ordinaut://host/status and reading it gives the
//   /ext/status document; resources/templates/list has
//   ordinaut://host/extensions/{id}, completion of {id} offers mcp_http and
//   reading ordinaut://host/extensions/mcp_http gives its entry; prompts/list
//   answers (a default server may offer none);
//   with promptName: that prompt is listed, prompts/get answers it with
//   messages, and a resource of the test scheme subscribes and unsubscribes.
// Exit 0 when every check passes.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { check, finish } from './checks.mjs';

const [url, promptName, argJson = '{}'] = process.argv.slice(2);
if (!url) { console.error('usage: node sdk_client_content.mjs <url> [prompt [jsonArgs]]'); process.exit(2); }
const timer = setTimeout(() => { console.error('FAIL: timeout'); process.exit(1); }, 30000);


const client = new Client({ name: 'ordinaut-sdk-content', version: '1.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(url));
try {
  await client.connect(transport);
  const caps = client.getServerCapabilities();
  check(caps?.resources?.subscribe === true && caps?.resources?.listChanged === true, 'resources capability', caps);
  check(caps?.prompts?.listChanged === true, 'prompts capability', caps);
  check(typeof caps?.completions === 'object', 'completions capability', caps);

  const { resources } = await client.listResources();
  console.log('resources:', resources.map((r) => r.uri).join(', '));
  check(resources.some((r) => r.uri === 'ordinaut://host/status' && r.name), 'host status resource listed');
  const status = await client.readResource({ uri: 'ordinaut://host/status' });
  const doc = JSON.parse(status.contents[0].text);
  check(status.contents[0].mimeType === 'application/json' && doc.extensions?.mcp_http?.state === 'active',
        'read ordinaut://host/status', status.contents[0]);

  const { resourceTemplates } = await client.listResourceTemplates();
  console.log('templates:', resourceTemplates.map((t) => t.uriTemplate).join(', '));
  check(resourceTemplates.some((t) => t.uriTemplate === 'ordinaut://host/extensions/{id}'), 'extension template listed');
  const done = await client.complete({ ref: { type: 'ref/resource', uri: 'ordinaut://host/extensions/{id}' },
                                       argument: { name: 'id', value: 'mcp' } });
  check(done.completion.values.includes('mcp_http'), 'complete {id}', done.completion);
  const one = await client.readResource({ uri: 'ordinaut://host/extensions/mcp_http' });
  check(JSON.parse(one.contents[0].text).state === 'active', 'read ordinaut://host/extensions/mcp_http', one);
  try {
    await client.readResource({ uri: 'ordinaut://host/extensions/no_such_extension' });
    check(false, 'unknown resource fails');
  } catch (e) {
    check(e?.code === -32002, 'unknown resource: -32002', e?.message);
  }

  const { prompts } = await client.listPrompts();
  console.log('prompts:', prompts.map((p) => p.name).join(', ') || '(none)');
  check(prompts.every((p) => p.name && p.description), 'prompts have a name and a description', prompts);
  if (promptName) {
    check(prompts.some((p) => p.name === promptName), `prompt ${promptName} listed`);
    const got = await client.getPrompt({ name: promptName, arguments: JSON.parse(argJson) });
    console.log('prompt:', JSON.stringify(got));
    check(Array.isArray(got.messages) && got.messages.length > 0 && got.messages[0].role, 'prompts/get', got);
    if (prompts.some((p) => p.name === 'test_simple_prompt')) {  // the fixture's server
      await client.subscribeResource({ uri: 'test://watched-resource' });
      await client.unsubscribeResource({ uri: 'test://watched-resource' });
      check(true, 'subscribe and unsubscribe');
    }
  }

  if (transport.sessionId) await transport.terminateSession();
  await client.close();
} catch (e) {
  check(false, 'unexpected error', e?.message ?? String(e));
}
clearTimeout(timer);
finish();
