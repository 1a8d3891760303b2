// The official TypeScript SDK (v2) against a gateway endpoint: lists the tools, calls a granted
// one and a refused one, and prints one JSON object with what the client saw.
//
// usage: node client.mjs URL TOKEN MODE
//   MODE: "2026-07-28" (pinned, stateless), "auto", "2025" (no negotiation option: 2025-11-25),
//         or "sse" (the legacy SSEClientTransport on /S/sse); "bridge:" before one of the first
//         three launches `$BRIDGE_BIN bridge --endpoint URL --token TOKEN` over stdio instead.
import { Client, SSEClientTransport, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

const [url, token, given] = process.argv.slice(2);
const bridged = given.startsWith('bridge:');
const mode = bridged ? given.slice('bridge:'.length) : given;
const authProvider = { token: async () => token };
const options = {};
if (mode === '2026-07-28') options.versionNegotiation = { mode: { pin: '2026-07-28' } };
if (mode === 'auto') options.versionNegotiation = { mode: 'auto' };
const client = new Client({ name: 'gateway-test', version: '1.0.0' }, options);
const transport = bridged
  ? new StdioClientTransport({
      command: process.env.BRIDGE_BIN,
      args: ['--log-format', 'text', 'bridge', '--endpoint', url, '--token', token],
      stderr: 'inherit',
    })
  : mode === 'sse'
    ? new SSEClientTransport(new URL(url), { authProvider })
    : new StreamableHTTPClientTransport(new URL(url), { authProvider });
const seen = {};
try {
  await client.connect(transport);
  seen.protocol = transport.protocolVersion ?? client.getNegotiatedProtocolVersion?.() ?? null;
  const tools = await client.listTools();
  seen.tools = tools.tools.map((t) => t.name).sort();
  seen.call = await client.callTool({ name: 'exact_calculate', arguments: { operator: 'add', operands: ['1', '2'] } });
  try {
    seen.refused = await client.callTool({ name: 'statistics', arguments: { operation: 'count', values: [] } });
  } catch (e) {
    seen.refused_error = String(e?.message ?? e);
  }
} finally {
  await client.close().catch(() => {});
}
console.log(JSON.stringify(seen));
