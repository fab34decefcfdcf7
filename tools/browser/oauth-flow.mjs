// oauth-flow.mjs: the MCP TypeScript SDK client runs its standard OAuth
// flow against a tenantmcp dev server, with the sign-in page clicked in
// headless Debian chromium, then calls a tool as the tenant chosen there.
//
//   node tools/browser/oauth-flow.mjs
//
// Environment:
//   MCP_URL      the server's MCP URL (required), e.g. http://127.0.0.1:8080/mcp
//   TENANT       the tenant to pick on the sign-in page (default globex)
//   MCP_USER     the user to type (default: none, the server's default)
//   TOOL, TOOL_ARGS  the tool to call and its arguments as JSON
//                (default put_document {"key":"oauth.md","content":"hello"})
//   SCREENSHOT   where to save a screenshot of the sign-in page (optional)
//   CHROMIUM     the browser (default /usr/bin/chromium; never downloaded)
//
// It prints one JSON line: {"tools":[...],"result":{...},"authorizations":N}
// and exits 0, or prints the error and exits 1.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const mcpURL = process.env.MCP_URL;
if (!mcpURL) {
  console.error('MCP_URL is required (the dev server\'s MCP URL, e.g. http://127.0.0.1:8080/mcp)');
  process.exit(2);
}
const tenant = process.env.TENANT || 'globex';
const user = process.env.MCP_USER || '';
const tool = process.env.TOOL || 'put_document';
const toolArgs = JSON.parse(process.env.TOOL_ARGS || '{"key":"oauth.md","content":"hello"}');

// The callback server: where the authorization server sends the browser back.
let settle;
const callback = new Promise((resolve, reject) => { settle = { resolve, reject }; });
const cb = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://127.0.0.1');
  if (u.pathname !== '/callback') {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end('<!doctype html><html lang="en"><title>Signed in</title><p>Signed in; you can close this window.</p></html>');
  settle.resolve(u.searchParams);
});
await new Promise(resolve => cb.listen(0, '127.0.0.1', resolve));
const redirectUrl = `http://127.0.0.1:${cb.address().port}/callback`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});

// An in-memory OAuthClientProvider, as an application would write one.
let authorizations = 0;
const expectedState = randomBytes(16).toString('hex');
const store = {};
const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return {
      client_name: 'tenantmcp OAuth flow test',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  state: () => expectedState,
  clientInformation: () => store.client,
  saveClientInformation: info => { store.client = info; },
  tokens: () => store.tokens,
  saveTokens: tokens => { store.tokens = tokens; },
  saveCodeVerifier: v => { store.verifier = v; },
  codeVerifier: () => store.verifier,
  // The user signs in: Playwright picks the tenant (and user) and submits.
  redirectToAuthorization: async url => {
    authorizations++;
    const page = await browser.newPage();
    try {
      await page.goto(url.toString());
      await page.getByRole('heading', { name: 'Sign in to tenantmcp dev' }).waitFor();
      await page.getByRole('radio', { name: `(tenant ${tenant})` }).check();
      if (user) {
        await page.getByLabel('User', { exact: true }).fill(user);
      }
      if (process.env.SCREENSHOT) {
        await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
      }
      await Promise.all([
        page.waitForURL(u => u.toString().startsWith(redirectUrl)),
        page.getByRole('button', { name: 'Sign in' }).click(),
      ]);
    } catch (err) {
      settle.reject(new Error(`sign-in page: ${err.message}\n${await page.content().catch(() => '')}`));
    } finally {
      await page.close();
    }
  },
};

function connect() {
  const transport = new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider });
  const client = new Client({ name: 'tenantmcp-oauth-flow', version: '1.0.0' });
  return { client, transport, done: client.connect(transport) };
}

try {
  let { client, transport, done } = connect();
  try {
    await done;
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
    const params = await callback;
    if (params.get('error')) throw new Error(`authorization refused: ${params.get('error')}: ${params.get('error_description')}`);
    if (params.get('state') !== expectedState) throw new Error(`state ${params.get('state')} is not the one sent`);
    await transport.finishAuth(params.get('code'));
    await client.close().catch(() => {});
    ({ client, transport, done } = connect());
    await done;
  }
  const { tools } = await client.listTools();
  const result = await client.callTool({ name: tool, arguments: toolArgs });
  console.log(JSON.stringify({ tools: tools.map(t => t.name), result, authorizations }));
  await client.close();
} catch (err) {
  console.error(err?.stack || String(err));
  process.exitCode = 1;
} finally {
  await browser.close();
  cb.close();
}
