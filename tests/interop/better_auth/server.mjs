// A real Better Auth server on loopback for the interop tests (driven by tests/support/better_auth.py).
//
// Memory adapter (every restart starts empty and mints a NEW signing key), email + password accounts,
// and the JWT plugin: GET /api/auth/token turns a session cookie into a signed JWT, GET /api/auth/jwks
// publishes the public keys. Configured only through environment variables:
//
//   BA_PORT            port to listen on (127.0.0.1); 0 picks a free one
//   BA_BASE_URL        e.g. http://127.0.0.1:PORT; also the only trusted origin
//   BA_SECRET          >= 32 characters (encrypts the private signing keys, signs cookies)
//   BA_JWT_ALG         EdDSA (default), RS256, PS256, ES256 or ES512
//   BA_JWT_AUDIENCE    the `aud` claim: a string, or a JSON array of strings (starts with "[")
//   BA_JWT_ISSUER      the `iss` claim (default BA_BASE_URL)
//   BA_JWT_EXPIRATION  jose time span for `exp` - `iat`, e.g. "15m" (default) or "2s"
//   BA_OIDC_REDIRECT_URI  optional: also run Better Auth's OAuth 2.1 / OpenID Connect provider
//                      (@better-auth/oauth-provider: /api/auth/oauth2/authorize, /oauth2/token, ...)
//                      with one confidential client for this redirect URI (client_secret_basic,
//                      PKCE required, consent skipped, scopes openid profile email offline_access)
//
// Prints exactly one line `ready <port>` on stdout once listening (with BA_OIDC_REDIRECT_URI,
// first a line `oidc-client {"client_id": ..., "client_secret": ...}`); errors go to stderr.

import http from "node:http";

import { memoryAdapter } from "@better-auth/memory-adapter";
import { betterAuth } from "better-auth";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const KEY_PAIR_CONFIGS = {
  EdDSA: { alg: "EdDSA", crv: "Ed25519" },
  RS256: { alg: "RS256", modulusLength: 2048 },
  PS256: { alg: "PS256", modulusLength: 2048 },
  ES256: { alg: "ES256" },
  ES512: { alg: "ES512" },
};

function fail(message) {
  process.stderr.write(`better-auth server: ${message}\n`);
  process.exit(2);
}

function required(name) {
  const value = process.env[name];
  if (!value) fail(`${name} is required`);
  return value;
}

if (process.env.NODE_ENV === "production") {
  fail("NODE_ENV=production turns on Better Auth's rate limiter; the interop server must not run with it");
}

const port = Number.parseInt(required("BA_PORT"), 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`BA_PORT is not a port: ${process.env.BA_PORT}`);
const baseURL = required("BA_BASE_URL").replace(/\/+$/, "");
const secret = required("BA_SECRET");
if (secret.length < 32) fail("BA_SECRET must be at least 32 characters");
const alg = process.env.BA_JWT_ALG || "EdDSA";
const keyPairConfig = KEY_PAIR_CONFIGS[alg];
if (!keyPairConfig) fail(`BA_JWT_ALG must be one of ${Object.keys(KEY_PAIR_CONFIGS).join(", ")}, not ${alg}`);
const rawAudience = required("BA_JWT_AUDIENCE");
const audience = rawAudience.startsWith("[") ? JSON.parse(rawAudience) : rawAudience;
const issuer = process.env.BA_JWT_ISSUER || baseURL;
const expirationTime = process.env.BA_JWT_EXPIRATION || "15m";
const oidcRedirectURI = process.env.BA_OIDC_REDIRECT_URI || "";

const tables = { user: [], session: [], account: [], verification: [], jwks: [] };
const plugins = [
  jwt({
    jwks: { keyPairConfig },
    jwt: { issuer, audience, expirationTime },
  }),
];
if (oidcRedirectURI) {
  for (const model of [
    "oauthClient",
    "oauthResource",
    "oauthClientResource",
    "oauthRefreshToken",
    "oauthAccessToken",
    "oauthConsent",
    "oauthClientAssertion",
  ]) {
    tables[model] = [];
  }
  // The pages are the application's: nothing is served there; a client reads the signed query
  // from the redirect and posts it back as `oauth_query` with the sign-in.
  // @better-auth/oauth-provider 1.7.5 (the newest) pins its peers exactly (@better-auth/utils
  // 0.4.2, better-call 1.4.0, @better-fetch/fetch 1.3.2); package.json's "overrides" give it the
  // versions better-auth 1.7.25 installs. Loaded only here, so the other tests never import it.
  const { oauthProvider } = await import("@better-auth/oauth-provider");
  plugins.push(oauthProvider({ loginPage: "/sign-in", consentPage: "/consent" }));
}

const auth = betterAuth({
  baseURL,
  secret,
  // The memory adapter needs every table up front, else "Model jwks not found".
  database: memoryAdapter(tables),
  emailAndPassword: { enabled: true },
  trustedOrigins: [baseURL],
  // Off unless NODE_ENV=production anyway; explicit so a stray environment cannot turn it on.
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  plugins,
});

if (oidcRedirectURI) {
  // Registering a client takes a signed-in user: an owner account of its own, created here.
  const owner = await auth.api.signUpEmail({
    body: { email: "oidc-client-owner@example.invalid", password: secret, name: "client owner" },
    returnHeaders: true,
  });
  const cookie = owner.headers
    .getSetCookie()
    .map((line) => line.split(";", 1)[0])
    .join("; ");
  const client = await auth.api.adminCreateOAuthClient({
    headers: new Headers({ cookie }),
    body: {
      client_name: "bench",
      redirect_uris: [oidcRedirectURI],
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      scope: "openid profile email offline_access",
      skip_consent: true,
      require_pkce: true,
    },
  });
  process.stdout.write(
    `oidc-client ${JSON.stringify({ client_id: client.client_id, client_secret: client.client_secret })}\n`,
  );
}

const server = http.createServer(toNodeHandler(auth));
server.on("error", (error) => fail(`cannot listen on 127.0.0.1:${port}: ${error.message}`));
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`ready ${server.address().port}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
