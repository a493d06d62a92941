// Pieces shared by the test authorization servers in this directory.
//
// Extracted from server.mjs so that keycloak-standin.mjs runs the same provider configuration,
// in-memory adapter, `/__test/` endpoints and robustness handling. server.mjs still carries its
// own copy; switching it to these exports is a mechanical change (same names, same behaviour).
//
// Nothing here has side effects at import time: `serve()` is what listens, installs the
// last-resort exception logger and the signal handlers.

import * as http from 'node:http';

// ---------------------------------------------------------------- configuration

// `--name=value` / `--flag` arguments restricted to `known`; anything else exits with 2.
export function parseArgs(argv, known, usage) {
  const out = {};
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !known.has(m[1])) {
      console.error(`unknown argument ${arg}; known: ${usage}`);
      process.exit(2);
    }
    out[m[1]] = m[2] ?? '1';
  }
  return out;
}

export const SCOPES = ['openid', 'offline_access', 'profile', 'email', 'mcp:execute'];

// ---------------------------------------------------------------- storage

// A plain in-memory adapter. The bundled one is an LRU capped at 1000 entries, which would
// silently evict clients in tests that register many of them and make counts wrong.
// Every call makes a separate store: `{ Adapter, clientIds }`, where `Adapter` is the class to
// give node-oidc-provider and `clientIds()` lists the clients it holds now.
export function createMemoryStore() {
  const store = new Map(); // key `${model}:${id}` -> { payload, expiresAt }
  const uidIndex = new Map(); // session uid -> session id
  const userCodeIndex = new Map(); // user code -> id
  const grantIndex = new Map(); // grantId -> Set of keys

  function live(key) {
    const entry = store.get(key);
    if (!entry) {
      return undefined;
    }
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  class MemoryAdapter {
    constructor(model) {
      this.model = model;
    }

    key(id) {
      return `${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
      store.set(key, { payload, expiresAt });
      if (this.model === 'Session' && payload.uid) {
        uidIndex.set(payload.uid, id);
      }
      if (payload.userCode) {
        userCodeIndex.set(payload.userCode, id);
      }
      if (payload.grantId) {
        if (!grantIndex.has(payload.grantId)) {
          grantIndex.set(payload.grantId, new Set());
        }
        grantIndex.get(payload.grantId).add(key);
      }
    }

    async find(id) {
      return live(this.key(id));
    }

    async findByUid(uid) {
      const id = uidIndex.get(uid);
      return id === undefined ? undefined : this.find(id);
    }

    async findByUserCode(userCode) {
      const id = userCodeIndex.get(userCode);
      return id === undefined ? undefined : this.find(id);
    }

    async consume(id) {
      const payload = live(this.key(id));
      if (payload) {
        payload.consumed = Math.floor(Date.now() / 1000);
      }
    }

    async destroy(id) {
      store.delete(this.key(id));
    }

    async revokeByGrantId(grantId) {
      for (const key of grantIndex.get(grantId) ?? []) {
        store.delete(key);
      }
      grantIndex.delete(grantId);
    }
  }

  function clientIds() {
    const ids = [];
    for (const key of [...store.keys()]) {
      if (key.startsWith('Client:') && live(key) !== undefined) {
        ids.push(key.slice('Client:'.length));
      }
    }
    return ids;
  }

  return { Adapter: MemoryAdapter, clientIds };
}

// ---------------------------------------------------------------- provider

// The configuration server.mjs uses. `routes` and `cookies` are merged over the defaults
// (node-oidc-provider's own route names; fixed cookie keys).
export function providerConfiguration({
  adapter, accessTokenFormat = 'jwt', routes = {}, cookies = {},
}) {
  return {
    adapter,
    // Fixed keys so cookies stay valid for the whole run and the "dev keys" warning goes away.
    cookies: { keys: ['dcr-gateway-test-cookie-key-1'], ...cookies },
    routes,
    scopes: SCOPES,
    claims: {
      openid: ['sub'],
      profile: ['name'],
      email: ['email', 'email_verified'],
    },
    async findAccount(ctx, sub) {
      // devInteractions accepts any login: every account id exists.
      return {
        accountId: sub,
        async claims() {
          return {
            sub, name: `Test User ${sub}`, email: `${sub}@example.test`, email_verified: true,
          };
        },
      };
    },
    // MCP clients do not always ask for offline_access but expect a refresh token when they
    // registered the refresh_token grant.
    async issueRefreshToken(ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    clientBasedCORS() {
      return true;
    },
    // Explicit lifetimes (seconds) keep the log free of "default ttl" notices.
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 600,
      ClientCredentials: 600,
      Grant: 14 * 24 * 3600,
      IdToken: 3600,
      Interaction: 3600,
      RefreshToken: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
    },
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        async defaultResource() {
          return undefined;
        },
        async useGrantedResource() {
          return true;
        },
        // Any absolute resource URI is a valid resource server whose audience is itself.
        async getResourceServerInfo(ctx, resourceIndicator) {
          return {
            scope: 'mcp:execute',
            audience: resourceIndicator,
            accessTokenTTL: 3600,
            accessTokenFormat,
          };
        },
      },
    },
  };
}

// ---------------------------------------------------------------- responses and bodies

export function sendJson(res, status, value, extraHeaders = {}) {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': body.length,
    'Cache-Control': 'no-store',
    ...extraHeaders,
  });
  res.end(body);
}

export function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------- generic /__test/ endpoints

function headersFromRaw(rawHeaders) {
  const headers = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1];
    if (!(name in headers)) {
      headers[name] = value;
    } else if (Array.isArray(headers[name])) {
      headers[name].push(value);
    } else {
      headers[name] = [headers[name], value];
    }
  }
  return headers;
}

function intParam(url, name, fallback, max) {
  const raw = url.searchParams.get(name);
  if (raw === null) {
    return fallback;
  }
  if (!/^\d+$/.test(raw)) {
    return NaN;
  }
  return Math.min(Number(raw), max);
}

const PATTERN = Buffer.from('abcdefghij');
const LARGE_CHUNK = 64 * 1024 - ((64 * 1024) % PATTERN.length); // multiple of the pattern
const LARGE_BLOCK = Buffer.alloc(LARGE_CHUNK, PATTERN);

async function streamLarge(res, total) {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-store' });
  let sent = 0;
  while (sent < total && !res.destroyed) {
    const n = Math.min(LARGE_CHUNK, total - sent);
    // `sent` is always a multiple of the pattern length, so every chunk starts with 'a'.
    const ok = res.write(n === LARGE_CHUNK ? LARGE_BLOCK : LARGE_BLOCK.subarray(0, n));
    sent += n;
    if (!ok) {
      await new Promise((resolve) => {
        res.once('drain', resolve);
        res.once('close', resolve);
      });
    }
  }
  res.end();
}

// The /__test/ endpoints that do not depend on the server's state: echo, large, slow, cookies,
// redirect (see server.mjs's header for what they answer). Anything else is a JSON 404.
export async function handleGenericTest(req, res, url) {
  const path = url.pathname;
  if (path === '/__test/echo' || path.startsWith('/__test/echo/')) {
    const body = await readBody(req);
    sendJson(res, 200, {
      method: req.method,
      path: req.url,
      http_version: req.httpVersion,
      headers: headersFromRaw(req.rawHeaders),
      raw_headers: req.rawHeaders,
      body: body.toString('utf8'),
      body_length: body.length,
    });
    return;
  }
  if (path === '/__test/large' && req.method === 'GET') {
    const bytes = intParam(url, 'bytes', 1024 * 1024, 1024 * 1024 * 1024);
    if (Number.isNaN(bytes)) {
      sendJson(res, 400, { error: 'bytes must be a non-negative integer' });
      return;
    }
    await streamLarge(res, bytes);
    return;
  }
  if (path === '/__test/slow') {
    const ms = intParam(url, 'ms', 1000, 10 * 60 * 1000);
    if (Number.isNaN(ms)) {
      sendJson(res, 400, { error: 'ms must be a non-negative integer' });
      return;
    }
    const body = await readBody(req);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      // A proxy that gives up closes the connection; don't keep the timer for nothing.
      res.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    if (!res.destroyed && !res.writableEnded) {
      sendJson(res, 200, { slow: true, ms, body_length: body.length });
    }
    return;
  }
  if (path === '/__test/cookies' && req.method === 'GET') {
    // Arrays make node emit one header line per value.
    res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
    res.setHeader('X-Multi', ['one', 'two']);
    sendJson(res, 200, { cookies: true });
    return;
  }
  if (path === '/__test/redirect' && req.method === 'GET') {
    res.writeHead(302, { Location: '/somewhere-else', 'Content-Type': 'text/plain', 'Content-Length': 5 });
    res.end('moved');
    return;
  }
  sendJson(res, 404, { error: 'no such test endpoint', path: req.url });
}

// ---------------------------------------------------------------- request safety

// The target as a URL, or null when the WHATWG parser rejects it (e.g. `//h:99999/x`, whose
// protocol-relative form names an impossible port, or `http://[/x`).
export function requestUrl(req) {
  try {
    return new URL(req.url, 'http://localhost');
  } catch {
    return null;
  }
}

// Whether oidc-provider can build URLs for this request. With `provider.proxy` koa takes the
// origin from the first X-Forwarded-Proto / X-Forwarded-Host value (else Host), and the provider
// resolves every endpoint against it: `X-Forwarded-Host: h:99999` or `Host: [::1` would only earn
// a 500 from deep inside the provider.
function firstValue(value) {
  return (Array.isArray(value) ? value[0] : (value ?? '')).split(',', 1)[0].trim();
}

export function originProblem(req) {
  const proto = firstValue(req.headers['x-forwarded-proto']).toLowerCase() || 'http';
  if (proto !== 'http' && proto !== 'https') {
    return 'X-Forwarded-Proto must be http or https';
  }
  const host = firstValue(req.headers['x-forwarded-host']) || firstValue(req.headers.host);
  if (host === '') {
    return null; // HTTP/1.0 without Host: the provider answers that itself
  }
  try {
    new URL(`${proto}://${host}/`); // eslint-disable-line no-new
    return null;
  } catch {
    return 'the Host / X-Forwarded-Host header is not a valid host[:port]';
  }
}

// Answer a failed request with a JSON error if nothing was sent yet, else drop the connection:
// once headers are out, no status can follow.
export function failRequest(res, status, error, description) {
  try {
    if (res.headersSent || res.writableEnded || res.destroyed) {
      res.destroy();
      return;
    }
    // The request body may be unread or half-read: don't reuse the connection.
    sendJson(res, status, { error, error_description: description }, { Connection: 'close' });
  } catch (err) {
    console.error('cannot send an error answer', err);
    res.destroy();
  }
}

function dispatchFailed(req, res, err) {
  if (req.destroyed && err?.code === 'ECONNRESET') {
    // The client hung up (or sent broken framing) mid-body: nobody is left to answer.
    res.destroy();
    return;
  }
  console.error(`request failed: ${req.method} ${JSON.stringify(req.url)}`, err);
  failRequest(res, 500, 'server_error', 'the test server failed to handle this request');
}

// Run a handler so that neither a synchronous throw nor a rejected promise escapes.
function dispatch(handler, req, res) {
  let result;
  try {
    result = handler(req, res);
  } catch (err) {
    dispatchFailed(req, res, err);
    return;
  }
  if (result && typeof result.then === 'function') {
    result.then(undefined, (err) => dispatchFailed(req, res, err));
  }
}

// Malformed HTTP: llhttp error codes that deserve a more precise status than 400.
const CLIENT_ERROR_STATUS = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Content Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
};
const answeredSockets = new WeakSet();

function onClientError(err, socket) {
  // llhttp may report the same broken connection more than once; answer it once.
  if (answeredSockets.has(socket)) {
    return;
  }
  answeredSockets.add(socket);
  // Never write into a response already under way, nor to a peer that is gone.
  const inFlight = socket._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || (inFlight && inFlight.headersSent)) {
    socket.destroy();
    return;
  }
  const [status, reason] = CLIENT_ERROR_STATUS[err.code] ?? [400, 'Bad Request'];
  const body = JSON.stringify({
    error: 'invalid_request',
    error_description: `malformed HTTP request (${err.code ?? 'unknown'})`,
  });
  const head = [
    `HTTP/1.1 ${status} ${reason}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    'Connection: close',
  ].join('\r\n');
  socket.on('error', () => {}); // a peer that resets now has nothing left to learn
  socket.end(`${head}\r\n\r\n${body}`);
  // Half-closed: the peer normally closes its side after reading; don't wait forever.
  setTimeout(() => socket.destroy(), 2000).unref();
}

// CONNECT is not for this server; without a listener node would just drop the socket.
function onConnect(req, socket) {
  socket.on('error', () => {});
  const body = JSON.stringify({
    error: 'invalid_request',
    error_description: 'CONNECT is not supported',
  });
  socket.end(
    'HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json; charset=utf-8\r\n'
      + `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 2000).unref();
}

// ---------------------------------------------------------------- server

// Listen on host:port and serve `setup(ownUrl)`'s handler; prints `READY <ownUrl>` once it
// serves. `setup` runs after listen() (the URL may depend on the port it picked) and returns
// `(req, res) => void | Promise`; requests that arrive before that wait for it. Handler errors
// become a JSON 500 (see dispatch), malformed HTTP a 400 with Connection: close, CONNECT a 405.
//
// An exception that escapes all of that is logged and the server keeps serving; before READY
// it still ends the process with exit code 1, so start-up errors are not hidden.
export function serve({ port, host, setup }) {
  let resolveHandler;
  const handlerReady = new Promise((resolve) => {
    resolveHandler = resolve;
  });
  let serving = false;

  const server = http.createServer((req, res) => {
    handlerReady
      .then((handler) => dispatch(handler, req, res))
      .catch((err) => dispatchFailed(req, res, err));
  });
  server.on('clientError', onClientError);
  server.on('connect', onConnect);

  server.listen(port, host, () => {
    const address = server.address();
    const hostForUrl = host.includes(':') ? `[${host}]` : host;
    const ownUrl = `http://${hostForUrl}:${address.port}`;
    resolveHandler(setup(ownUrl));
    process.stdout.write(`READY ${ownUrl}\n`);
    serving = true;
  });

  server.on('error', (err) => {
    console.error(`cannot listen on ${host}:${port}: ${err.message}`);
    process.exit(1);
  });

  // Last resort. Every request path above is guarded, so this only logs what slipped through
  // (e.g. an error thrown from a timer inside a dependency) and keeps serving.
  process.on('uncaughtException', (err, origin) => {
    if (!serving) {
      console.error(origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught', err);
      process.exit(1);
    }
    console.error(`${origin} (the test server keeps serving):`, err);
  });

  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      server.close();
      process.exit(0);
    });
  }
  return server;
}
