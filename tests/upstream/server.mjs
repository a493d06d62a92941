// Test authorization server for dcr-gateway's integration tests.
//
// A node-oidc-provider 9 instance with dynamic client registration, registration management,
// PKCE, refresh tokens and RFC 8707 resource indicators, plus (with DCR_TEST_ENDPOINTS=1) a few
// `/__test/` endpoints that let the Python tests observe what the gateway forwards.
//
// Configuration (argv wins over the environment):
//   PORT / --port=N                 required; 0 picks a free port (reported on the READY line)
//   HOST / --host=H                 default 127.0.0.1
//   ISSUER / --issuer=URL           default http://HOST:PORT. Behind the gateway this must be the
//                                   gateway's public URL: MCP clients require the metadata
//                                   `issuer` (and the RFC 9207 `iss`) to equal the URL they used.
//   DCR_TEST_ENDPOINTS=1 / --test-endpoints   serve /__test/... before the provider
//   ACCESS_TOKEN_FORMAT=jwt|opaque  format of access tokens for a resource indicator (default jwt)
//   TRUST_PROXY=0                   ignore X-Forwarded-* (default: trusted, provider.proxy = true)
//   REGISTRATION_INITIAL_ACCESS_TOKEN=T   registration requires `Authorization: Bearer T`
//                                   (node-oidc-provider's features.registration.initialAccessToken
//                                   as a string); default: open registration
//   CIMD_HOSTS=h1,h2,...            turn on features.clientIdMetadataDocument (draft-02) and fetch
//                                   documents of these host names from 127.0.0.1 (the tests'
//                                   document server; NODE_EXTRA_CA_CERTS adds its CA). For the
//                                   gateway's police-mode tests only; default: off (no CIMD)
//
// Prints exactly one line `READY <url>` (the address it listens on) to stdout once it serves.
// node-oidc-provider prints "Unsupported runtime" and quick-start warnings to stderr on Node 20;
// they are harmless.
//
// Test endpoints (only with DCR_TEST_ENDPOINTS=1; answered before the provider sees the request):
//   GET  /__test/clients          {"count": N, "client_ids": [...]} of clients stored now
//   ANY  /__test/echo[/...]       {"method", "path" (req.url as received), "http_version",
//                                  "headers", "raw_headers", "body" (utf8), "body_length"}
//   GET  /__test/large?bytes=N    N bytes of 'abcdefghij' repeated, chunked, no Content-Length
//   ANY  /__test/slow?ms=N        reads the body, waits N ms, {"slow": true, "ms", "body_length"}
//   GET  /__test/cookies          two Set-Cookie lines (a=1; Path=/ and b=2; Path=/; HttpOnly)
//                                  and two X-Multi lines (one, two)
//   GET  /__test/redirect         302 Location: /somewhere-else
// /__test/echo `headers` is built from req.rawHeaders: names lower-cased, a header sent once is a
// string, a header sent several times is an array of its values in the order received (never
// joined). `raw_headers` is req.rawHeaders verbatim (original case, alternating name/value).
//
// Robustness: no request can stop the server. A target the URL parser rejects, or a Host /
// X-Forwarded-Host / X-Forwarded-Proto the provider cannot build URLs from, gets a JSON 400;
// a handler that throws or rejects gets a JSON 500 (or, once headers are out, a closed
// connection); malformed HTTP (bad request line, header bytes, chunked framing, TLS bytes)
// gets a 400 (431 for oversized headers, 408 for a request timeout) with Connection: close;
// CONNECT gets a 405.
// An exception that escapes all of that is logged and the server keeps serving; before READY
// it still ends the process with exit code 1, so start-up errors are not hidden.

import * as http from 'node:http';

import Provider from 'oidc-provider';

import {
  SCOPES, failRequest, originProblem, readBody, requestUrl, sendJson,
} from './common.mjs';

// ---------------------------------------------------------------- configuration

const KNOWN_ARGS = new Set(['port', 'host', 'issuer', 'test-endpoints']);

function parseArgs(argv) {
  const out = {};
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !KNOWN_ARGS.has(m[1])) {
      console.error(`unknown argument ${arg}; known: --port=N --host=H --issuer=URL --test-endpoints`);
      process.exit(2);
    }
    out[m[1]] = m[2] ?? '1';
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const portSetting = args.port ?? process.env.PORT;
if (portSetting === undefined || portSetting === '' || !/^\d+$/.test(portSetting)) {
  console.error('PORT (or --port=N) is required and must be a number; 0 picks a free port');
  process.exit(2);
}
const HOST = args.host ?? process.env.HOST ?? '127.0.0.1';
const ISSUER_SETTING = args.issuer ?? process.env.ISSUER;
const TEST_ENDPOINTS = (args['test-endpoints'] ?? process.env.DCR_TEST_ENDPOINTS) === '1';
const ACCESS_TOKEN_FORMAT = process.env.ACCESS_TOKEN_FORMAT ?? 'jwt';
const TRUST_PROXY = process.env.TRUST_PROXY !== '0';
const REGISTRATION_IAT = process.env.REGISTRATION_INITIAL_ACCESS_TOKEN || undefined;
const CIMD_HOSTS = new Set(
  (process.env.CIMD_HOSTS ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean),
);


// ---------------------------------------------------------------- storage

// A plain in-memory adapter. The bundled one is an LRU capped at 1000 entries, which would
// silently evict clients in tests that register many of them and make counts wrong.
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

class TestAdapter {
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

function storedClientIds() {
  const ids = [];
  for (const key of [...store.keys()]) {
    if (key.startsWith('Client:') && live(key) !== undefined) {
      ids.push(key.slice('Client:'.length));
    }
  }
  return ids;
}

// ---------------------------------------------------------------- CIMD (opt-in)

// node-oidc-provider refuses to fetch from special-use addresses, so the loopback document
// server is reachable only through a dispatcher of our own: Node's bundled undici Agent whose
// connections to CIMD_HOSTS go to 127.0.0.1 (any other host name fails to connect).
function cimdDispatcher() {
  Response; // eslint-disable-line no-unused-expressions -- loads Node's bundled undici
  const Agent = (
    globalThis[Symbol.for('undici.globalDispatcher.2')]
    ?? globalThis[Symbol.for('undici.globalDispatcher.1')]
  )?.constructor;
  if (Agent === undefined) {
    throw new Error('CIMD_HOSTS: cannot find undici Agent in this Node.js');
  }
  const lookup = (hostname, options, callback) => {
    if (!CIMD_HOSTS.has(String(hostname).toLowerCase())) {
      callback(new Error(`${hostname} is not one of CIMD_HOSTS`));
    } else if (options && options.all) {
      callback(null, [{ address: '127.0.0.1', family: 4 }]);
    } else {
      callback(null, '127.0.0.1', 4);
    }
  };
  return new Agent({ connect: { lookup } });
}

function cimdConfiguration() {
  if (CIMD_HOSTS.size === 0) {
    return {};
  }
  const dispatcher = cimdDispatcher();
  return {
    fetch: (url, options) => globalThis.fetch(url, { ...options, dispatcher }),
    cimdFeature: { enabled: true, ack: 'draft-02' },
  };
}

// ---------------------------------------------------------------- provider

function providerConfiguration() {
  const { fetch: cimdFetch, cimdFeature } = cimdConfiguration();
  return {
    ...(cimdFetch === undefined ? {} : { fetch: cimdFetch }),
    adapter: TestAdapter,
    // Fixed keys so cookies stay valid for the whole run and the "dev keys" warning goes away.
    cookies: { keys: ['dcr-gateway-test-cookie-key-1'] },
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
      registration: REGISTRATION_IAT === undefined
        ? { enabled: true }
        : { enabled: true, initialAccessToken: REGISTRATION_IAT },
      registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
      clientCredentials: { enabled: true },
      ...(cimdFeature === undefined ? {} : { clientIdMetadataDocument: cimdFeature }),
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
            accessTokenFormat: ACCESS_TOKEN_FORMAT,
          };
        },
      },
    },
  };
}

// ---------------------------------------------------------------- /__test/ endpoints



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

async function handleTest(req, res, url) {
  const path = url.pathname;
  if (path === '/__test/clients' && req.method === 'GET') {
    const ids = storedClientIds();
    sendJson(res, 200, { count: ids.length, client_ids: ids });
    return;
  }
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

// The provider needs the issuer, which may depend on the port picked by listen(); requests that
// arrive before it exists wait for it instead of hanging without a handler.
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

server.listen(Number(portSetting), HOST, () => {
  const { port } = server.address();
  const hostForUrl = HOST.includes(':') ? `[${HOST}]` : HOST;
  const ownUrl = `http://${hostForUrl}:${port}`;
  const issuer = ISSUER_SETTING || ownUrl;

  const provider = new Provider(issuer, providerConfiguration());
  // Trust X-Forwarded-Host / X-Forwarded-Proto so discovery and form URLs point at the gateway;
  // TRUST_PROXY=0 makes it ignore them (an upstream that builds URLs from its own Host).
  provider.proxy = TRUST_PROXY;
  provider.on('server_error', (ctx, err) => {
    console.error('oidc-provider server_error', err);
  });
  const providerCallback = provider.callback();

  resolveHandler((req, res) => {
    const url = requestUrl(req);
    if (url === null) {
      failRequest(res, 400, 'invalid_request', 'the request target is not a valid URL');
      return undefined;
    }
    if (TEST_ENDPOINTS && url.pathname.startsWith('/__test/')) {
      return handleTest(req, res, url);
    }
    const problem = originProblem(req);
    if (problem !== null) {
      failRequest(res, 400, 'invalid_request', problem);
      return undefined;
    }
    return providerCallback(req, res);
  });

  process.stdout.write(`READY ${ownUrl}\n`);
  serving = true;
  if (issuer !== ownUrl) {
    process.stderr.write(`issuer is ${issuer}\n`);
  }
});

server.on('error', (err) => {
  console.error(`cannot listen on ${HOST}:${portSetting}: ${err.message}`);
  process.exit(1);
});

// Last resort. Every request path above is guarded, so this only logs what slipped through
// (e.g. an error thrown from a timer inside a dependency) and keeps serving. Before READY it
// ends the process as node would: a server that cannot start must not look alive.
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
