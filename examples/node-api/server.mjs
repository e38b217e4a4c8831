// An API that trusts the IdP's access tokens, verified offline with jose: `node server.mjs`.
//
// Configuration (environment): IDP_ISSUER, IDP_AUDIENCE (default: the issuer), IDP_JWKS_URL
// (default: issuer + /.well-known/jwks.json), IDP_ALGORITHMS (default EdDSA), IDP_JWKS_COOLDOWN
// and IDP_JWKS_CACHE_MAX_AGE (seconds, default 30 and 300), HOST and PORT (127.0.0.1:8002).

import { createServer } from 'node:http';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';

const SUPPORTED_ALGORITHMS = ['EdDSA', 'ES256', 'RS256']; // asymmetric only: never HS256 or "none"
const LEEWAY_SECONDS = 30;

function env(name, fallback) {
  return process.env[name]?.trim() || fallback;
}

function seconds(name, fallback) {
  const value = Number(env(name, String(fallback)));
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number of seconds >= 0`);
  return value;
}

const issuer = env('IDP_ISSUER', 'http://127.0.0.1:8000').replace(/\/+$/, ''); // as the IdP does
const audience = env('IDP_AUDIENCE', issuer);
const algorithms = env('IDP_ALGORITHMS', 'EdDSA').split(',').map((alg) => alg.trim()).filter(Boolean);
if (!algorithms.length || !algorithms.every((alg) => SUPPORTED_ALGORITHMS.includes(alg))) {
  throw new Error(`IDP_ALGORITHMS must list some of ${SUPPORTED_ALGORITHMS.join(', ')}`);
}

// One key set for the process. jose fetches it on first use, keeps it cacheMaxAge (it does not
// read Cache-Control: keep this <= the IdP's IDP_JWKS_MAX_AGE), and refetches for an unknown kid
// at most once per cooldownDuration after the last fetch.
const jwks = createRemoteJWKSet(new URL(env('IDP_JWKS_URL', `${issuer}/.well-known/jwks.json`)), {
  cooldownDuration: seconds('IDP_JWKS_COOLDOWN', 30) * 1000,
  cacheMaxAge: seconds('IDP_JWKS_CACHE_MAX_AGE', 300) * 1000,
  timeoutDuration: 5000,
});

// Failures to get the keys: our problem (503), not the caller's token (401).
const KEYS_UNAVAILABLE = new Set(['ERR_JOSE_GENERIC', 'ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID', 'ERR_JWK_INVALID']);

class AuthError extends Error {}

async function authenticate(request) {
  const [scheme, token, extra] = (request.headers.authorization ?? '').trim().split(/\s+/);
  if (scheme?.toLowerCase() !== 'bearer' || !token || extra !== undefined) {
    throw new AuthError('A Bearer access token is required.');
  }
  if (token.length > 8192) throw new AuthError('The access token is too long.');
  const { payload } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    algorithms,
    typ: 'at+jwt', // also accepts application/at+jwt (RFC 9068 §4)
    requiredClaims: ['sub', 'exp', 'iat'],
    clockTolerance: LEEWAY_SECONDS,
  });
  const { sub, email = null, roles = [] } = payload;
  if (typeof sub !== 'string' || !sub || (email !== null && typeof email !== 'string') || !Array.isArray(roles)
      || !roles.every((role) => typeof role === 'string')) {
    throw new AuthError("The access token's claims are malformed.");
  }
  return { id: sub, email, roles, claims: payload }; // the user comes only from the token
}

function send(response, status, body, headers = {}) {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

function sendAuthError(response, err) {
  if (err instanceof AuthError || (err instanceof errors.JOSEError && !KEYS_UNAVAILABLE.has(err.code))) {
    const description = err instanceof AuthError ? err.message : `The access token is invalid (${err.code}).`;
    send(response, 401, { error: 'invalid_token', error_description: description }, {
      'www-authenticate': 'Bearer error="invalid_token"',
      'cache-control': 'no-store',
    });
    return;
  }
  console.error('cannot verify tokens:', err); // JWKS unreachable, timed out or malformed
  send(response, 503, {
    error: 'temporarily_unavailable',
    error_description: "The identity provider's signing keys are unavailable.",
  }, { 'retry-after': '30', 'cache-control': 'no-store' });
}

const server = createServer(async (request, response) => {
  const { pathname } = new URL(request.url ?? '/', 'http://localhost');
  if (request.method !== 'GET') return send(response, 405, { error: 'method_not_allowed' }, { allow: 'GET' });
  if (pathname === '/health') return send(response, 200, { status: 'ok' });
  if (pathname !== '/api/profile') return send(response, 404, { error: 'not_found' });
  try {
    const user = await authenticate(request);
    send(response, 200, { user_id: user.id, email: user.email, roles: user.roles });
  } catch (err) {
    sendAuthError(response, err);
  }
});

const host = env('HOST', '127.0.0.1');
const port = Number(env('PORT', '8002'));
server.listen(port, host, () => console.log(`listening on http://${host}:${port} (issuer ${issuer})`));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
