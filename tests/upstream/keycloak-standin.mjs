// A Keycloak stand-in for dcr-gateway's `keycloak` profile tests.
//
// Keycloak's URL layout with one real node-oidc-provider per realm behind it:
//
//   {prefix}/realms/{realm}/.well-known/openid-configuration          the realm's discovery
//   {prefix}/realms/{realm}/.well-known/{oauth-authorization-server,uma2-configuration}  the same
//   {prefix}/.well-known/oauth-authorization-server/realms/{realm}    the same document (RFC 8414
//   {prefix}/.well-known/openid-configuration/realms/{realm}           path insertion)
//   {prefix}/realms/{realm}/clients-registrations/openid-connect      POST registers (RFC 7591)
//   {prefix}/realms/{realm}/clients-registrations/openid-connect/{id} GET|PUT|DELETE (RFC 7592);
//        like Keycloak, GET and PUT both answer with a new registration access token and the
//        one used stops working
//   {prefix}/realms/{realm}/protocol/openid-connect/{auth,token,userinfo,certs,logout,revoke,
//                                                   token/introspect}  as Keycloak names them
//   {prefix}/realms/{realm}/clients-registrations/{default,install,saml2-entity-descriptor}[/...]
//        Keycloak's sibling registration providers, which skip OIDC metadata checks: any method
//        answers 201 {"stand_in": "<provider>", "realm": "<realm>"} and is counted per
//        (realm, provider) so tests can prove the gateway did not let a request through.
//   {prefix}/realms/{unknown}/...   404 {"error": "Realm does not exist"}, as Keycloak answers.
//
// Realm names are case-sensitive (`Customers` is not `customers`). Before routing, the path is
// normalised: dot segments are resolved (WHATWG URL parsing, so `%2e%2e` too) and
// percent-encoded unreserved characters are decoded, so `/realms/%61cme/clients-registrations/
// %64efault` reaches realm `acme`'s `default` provider. That is the cautious assumption about a
// real server behind the gateway: a guard must not count on such paths being refused upstream.
//
// Each realm's provider is mounted as node-oidc-provider documents for a path: its issuer is
// `{issuer-base}{prefix}/realms/{realm}`, and the handler strips the mount path from `req.url`
// and keeps the full path in `req.originalUrl`, from which the provider derives the mount path
// of every URL it builds. Realms have separate client stores (and session cookies whose Path
// is the realm's, like Keycloak's).
//
// Arguments:
//   --port=N                 required; 0 picks a free port (reported on the READY line)
//   --host=H                 default 127.0.0.1
//   --issuer-base=URL        default http://HOST:PORT; behind the gateway, its public URL
//   --realms=acme,Customers  comma-separated realm names (letters, digits, '-', '_', '.', '~')
//   --path-prefix=/auth      Keycloak before 17 served everything under /auth; default none
//   --root-discovery=0       no /.well-known/{document}/realms/{realm} (Keycloak before 26.4)
//   --test-endpoints         serve /__test/... (at the root, whatever the prefix)
// Environment: ACCESS_TOKEN_FORMAT=jwt|opaque as for server.mjs.
//
// Test endpoints:
//   GET /__test/clients?realm=R   {"count": N, "client_ids": [...]} of realm R's store
//   GET /__test/siblings          {"calls": {"<realm>/<provider>": n, ...}, "total": n}
//   GET /__test/requests?realm=R  {"requests": [...]}: what reached realm R's endpoints where
//        clients are used (authorization, token, PAR, device, revocation, introspection), in
//        order: {route, method, status, client_id, auth_scheme, basic_user, client_assertion}.
//        `client_id` is the request's parameter (query or form); `basic_user` the HTTP Basic
//        user, form-decoded (RFC 6749 section 2.3.1); never a password or an assertion.
//   /__test/echo, /large, /slow, /cookies, /redirect   as in server.mjs
//
// Prints exactly one line `READY <url>` (the address it listens on) to stdout once it serves.
// Robust like server.mjs (see common.mjs): no request can stop it.

import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

import {
  createMemoryStore,
  failRequest,
  handleGenericTest,
  originProblem,
  parseArgs,
  providerConfiguration,
  readBody,
  requestUrl,
  sendJson,
  serve,
} from './common.mjs';

// ---------------------------------------------------------------- configuration

const USAGE =
  '--port=N --host=H --issuer-base=URL --realms=a,b --path-prefix=/p --root-discovery=0 ' +
  '--test-endpoints';
const args = parseArgs(
  process.argv.slice(2),
  new Set(['port', 'host', 'issuer-base', 'realms', 'path-prefix', 'root-discovery', 'test-endpoints']),
  USAGE,
);

function usageError(message) {
  console.error(`${message}\nusage: node keycloak-standin.mjs ${USAGE}`);
  process.exit(2);
}

if (args.port === undefined || !/^\d+$/.test(args.port)) {
  usageError('--port=N is required and must be a number; 0 picks a free port');
}
const HOST = args.host ?? '127.0.0.1';
const ISSUER_BASE = (args['issuer-base'] ?? '').replace(/\/+$/, '');
const TEST_ENDPOINTS = args['test-endpoints'] === '1';
// Keycloak before 26.4 has no RFC 8414 path-insertion documents at the root.
const ROOT_DISCOVERY = args['root-discovery'] !== '0';
const ACCESS_TOKEN_FORMAT = process.env.ACCESS_TOKEN_FORMAT ?? 'jwt';

const REALM_NAME = /^[A-Za-z0-9._~-]+$/;
const REALMS = (args.realms ?? 'acme,Customers').split(',').map((name) => name.trim());
for (const name of REALMS) {
  if (!REALM_NAME.test(name) || name === '.' || name === '..') {
    usageError(`bad realm name ${JSON.stringify(name)}: use letters, digits, '-', '_', '.', '~'`);
  }
}
if (new Set(REALMS).size !== REALMS.length) {
  usageError(`realm names repeat: ${REALMS.join(',')}`);
}

const PATH_PREFIX = (args['path-prefix'] ?? '').replace(/\/+$/, '');
if (PATH_PREFIX !== '' && !/^(\/[A-Za-z0-9._~-]+)+$/.test(PATH_PREFIX)) {
  usageError(`bad --path-prefix ${JSON.stringify(args['path-prefix'])}: use e.g. /auth`);
}

// Keycloak's endpoint paths, relative to the realm. Interactions (login and consent pages)
// stay node-oidc-provider's `/interaction/:uid`: Keycloak's own login pages are not imitated.
const KEYCLOAK_ROUTES = {
  registration: '/clients-registrations/openid-connect',
  authorization: '/protocol/openid-connect/auth',
  token: '/protocol/openid-connect/token',
  userinfo: '/protocol/openid-connect/userinfo',
  jwks: '/protocol/openid-connect/certs',
  end_session: '/protocol/openid-connect/logout',
  introspection: '/protocol/openid-connect/token/introspect',
  revocation: '/protocol/openid-connect/revoke',
  device_authorization: '/protocol/openid-connect/auth/device',
  code_verification: '/device',
  pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
  backchannel_authentication: '/protocol/openid-connect/ext/ciba/auth',
};

// Registration providers next to `openid-connect` that Keycloak offers on the same base.
const SIBLING_PROVIDERS = new Set(['default', 'install', 'saml2-entity-descriptor']);
const DISCOVERY_DOCUMENTS = new Set(['oauth-authorization-server', 'openid-configuration']);
// Realm-local documents (`/realms/{realm}/.well-known/...`): UMA 2.0's names the
// registration endpoint too.
const REALM_DOCUMENTS = new Set([...DISCOVERY_DOCUMENTS, 'uma2-configuration']);

// ---------------------------------------------------------------- realms

const siblingCalls = new Map(); // `${realm}/${provider}` -> count

// The provider's route names of the endpoints where a client is used.
const USE_ROUTES = new Set([
  'authorization', 'token', 'pushed_authorization_request', 'device_authorization',
  'revocation', 'introspection',
]);

function basicUser(header) {
  const [scheme, value] = String(header ?? '').split(' ', 2);
  if (scheme?.toLowerCase() !== 'basic' || !value) {
    return null;
  }
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const user = decoded.includes(':') ? decoded.slice(0, decoded.indexOf(':')) : decoded;
  try {
    return decodeURIComponent(user.replace(/\+/g, ' '));
  } catch {
    return user;
  }
}

// Test endpoints only: remember what reached a realm's client endpoints, so tests can see
// the request as the upstream got it (the client_id after the gateway rewrote it, how the
// client authenticated). The body is the one the provider parsed itself.
function recordUse(requests) {
  return async function recordClientUse(ctx, next) {
    try {
      await next();
    } finally {
      const route = ctx.oidc?.route;
      if (USE_ROUTES.has(route)) {
        const body = ctx.oidc?.body ?? {};
        const header = ctx.get('authorization');
        requests.push({
          route,
          method: ctx.method,
          status: ctx.status,
          client_id: ctx.query.client_id ?? body.client_id ?? null,
          auth_scheme: header ? header.split(' ', 1)[0] : null,
          basic_user: basicUser(header),
          client_assertion: typeof body.client_assertion === 'string',
        });
      }
    }
  };
}

// A signing key of the realm's own: node-oidc-provider's quick-start key is the same in every
// provider, so one realm's tokens would verify with another's JWKS. Keycloak realms never
// share keys.
function realmSigningKey(name) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }), kid: `${name}-rs256`, alg: 'RS256', use: 'sig',
  };
}

// Keycloak rotates the registration access token on every management call, reads included;
// node-oidc-provider's `rotateRegistrationAccessToken` covers PUT only. After a successful
// RFC 7592 read, swap the token in the answer for a fresh one and discard the one used.
function rotateOnRead(provider) {
  return async function rotateRegistrationAccessTokenOnRead(ctx, next) {
    await next();
    const used = ctx.oidc?.entities?.RegistrationAccessToken;
    if (ctx.oidc?.route !== 'client' || ctx.status !== 200 || !used
        || typeof ctx.body?.registration_access_token !== 'string') {
      return;
    }
    const fresh = new provider.RegistrationAccessToken({
      client: ctx.oidc.client,
      ...(used.policies ? { policies: used.policies } : {}),
    });
    ctx.body.registration_access_token = await fresh.save();
    await used.destroy();
  };
}

function createRealm(name, issuerBase) {
  const mountPath = `${PATH_PREFIX}/realms/${name}`;
  const { Adapter, clientIds } = createMemoryStore();
  const configuration = providerConfiguration({
    adapter: Adapter,
    accessTokenFormat: ACCESS_TOKEN_FORMAT,
    routes: KEYCLOAK_ROUTES,
    // The session cookie would otherwise have Path=/ and one realm's login would replace
    // another's (same cookie name); Keycloak scopes its cookies to the realm path too.
    cookies: { long: { httpOnly: true, sameSite: 'lax', path: mountPath } },
  });
  configuration.jwks = { keys: [realmSigningKey(name)] };
  const provider = new Provider(`${issuerBase}${mountPath}`, configuration);
  // Trust X-Forwarded-Host / X-Forwarded-Proto so endpoint URLs point at the gateway.
  provider.proxy = true;
  provider.on('server_error', (ctx, err) => {
    console.error(`oidc-provider server_error in realm ${name}`, err);
  });
  provider.use(rotateOnRead(provider));
  const requests = [];
  if (TEST_ENDPOINTS) {
    provider.use(recordUse(requests));
  }
  return {
    name, mountPath, provider, clientIds, requests, callback: provider.callback(),
  };
}

// ---------------------------------------------------------------- routing

// RFC 3986 section 6.2.2.2: percent-encoded unreserved characters mean the characters
// themselves. Other escapes (e.g. %2F) stay as they are.
function decodeUnreserved(path) {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return /^[A-Za-z0-9._~-]$/.test(char) ? char : escape;
  });
}

// Hand the request to a realm's provider with `rest` (a path below the realm, with query) as
// its URL: node-oidc-provider's documented way to mount under a path.
function toProvider(realm, req, res, rest) {
  const providerUrl = rest === '' || rest.startsWith('?') ? `/${rest}` : rest;
  req.originalUrl = `${realm.mountPath}${providerUrl}`;
  req.url = providerUrl;
  return realm.callback(req, res);
}

async function answerSibling(realm, providerName, req, res) {
  await readBody(req); // read it all: the connection stays usable
  const key = `${realm.name}/${providerName}`;
  siblingCalls.set(key, (siblingCalls.get(key) ?? 0) + 1);
  sendJson(res, 201, { stand_in: providerName, realm: realm.name });
}

function realmDoesNotExist(res) {
  sendJson(res, 404, { error: 'Realm does not exist' });
}

function notFound(res) {
  sendJson(res, 404, { error: 'Not Found' });
}

async function handleStandinTest(realms, req, res, url) {
  if (url.pathname === '/__test/clients' && req.method === 'GET') {
    const name = url.searchParams.get('realm');
    if (name === null) {
      sendJson(res, 400, { error: 'realm query parameter is required', realms: [...realms.keys()] });
      return;
    }
    const realm = realms.get(name);
    if (realm === undefined) {
      sendJson(res, 404, { error: 'Realm does not exist', realm: name });
      return;
    }
    const ids = realm.clientIds();
    sendJson(res, 200, { count: ids.length, client_ids: ids });
    return;
  }
  if (url.pathname === '/__test/requests' && req.method === 'GET') {
    const realm = realms.get(url.searchParams.get('realm') ?? '');
    if (realm === undefined) {
      sendJson(res, 404, { error: 'Realm does not exist', realm: url.searchParams.get('realm') });
      return;
    }
    sendJson(res, 200, { requests: realm.requests });
    return;
  }
  if (url.pathname === '/__test/siblings' && req.method === 'GET') {
    const calls = Object.fromEntries([...siblingCalls.entries()].sort());
    const total = [...siblingCalls.values()].reduce((sum, n) => sum + n, 0);
    sendJson(res, 200, { calls, total });
    return;
  }
  await handleGenericTest(req, res, url);
}

function makeHandler(realms) {
  const realmsPrefix = `${PATH_PREFIX}/realms/`;
  const wellKnownPrefix = `${PATH_PREFIX}/.well-known/`;

  return (req, res) => {
    const url = requestUrl(req);
    if (url === null) {
      failRequest(res, 400, 'invalid_request', 'the request target is not a valid URL');
      return undefined;
    }
    if (TEST_ENDPOINTS && url.pathname.startsWith('/__test/')) {
      return handleStandinTest(realms, req, res, url);
    }
    const problem = originProblem(req);
    if (problem !== null) {
      failRequest(res, 400, 'invalid_request', problem);
      return undefined;
    }

    const path = decodeUnreserved(url.pathname);
    if (path.startsWith(realmsPrefix)) {
      const [segment, ...below] = path.slice(realmsPrefix.length).split('/');
      const realm = realms.get(segment);
      if (realm === undefined) {
        realmDoesNotExist(res);
        return undefined;
      }
      if (below[0] === 'clients-registrations' && SIBLING_PROVIDERS.has(below[1])) {
        return answerSibling(realm, below[1], req, res);
      }
      if (below.length === 2 && below[0] === '.well-known' && REALM_DOCUMENTS.has(below[1])) {
        // Keycloak fills all three from the realm's configuration; so does the stand-in.
        return toProvider(realm, req, res, `/.well-known/openid-configuration${url.search}`);
      }
      const rest = below.length === 0 ? '' : `/${below.join('/')}`;
      return toProvider(realm, req, res, `${rest}${url.search}`);
    }

    if (ROOT_DISCOVERY && path.startsWith(wellKnownPrefix)) {
      // RFC 8414 section 3.1: /.well-known/{document}/realms/{realm}.
      const match = /^([^/]+)\/realms\/([^/]+)$/.exec(path.slice(wellKnownPrefix.length));
      if (match !== null && DISCOVERY_DOCUMENTS.has(match[1])) {
        const realm = realms.get(match[2]);
        if (realm === undefined) {
          realmDoesNotExist(res);
          return undefined;
        }
        return toProvider(realm, req, res, `/.well-known/openid-configuration${url.search}`);
      }
    }
    notFound(res);
    return undefined;
  };
}

// ---------------------------------------------------------------- server

serve({
  port: Number(args.port),
  host: HOST,
  setup(ownUrl) {
    const issuerBase = ISSUER_BASE || ownUrl;
    const realms = new Map(REALMS.map((name) => [name, createRealm(name, issuerBase)]));
    const issuers = [...realms.values()].map((realm) => realm.provider.issuer);
    process.stderr.write(`realms: ${issuers.join(' ')}\n`);
    return makeHandler(realms);
  },
});
