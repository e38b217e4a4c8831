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
//
// Prints exactly one line `ready <port>` on stdout once listening; errors go to stderr.

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

const auth = betterAuth({
  baseURL,
  secret,
  // The memory adapter needs every table up front, else "Model jwks not found".
  database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
  emailAndPassword: { enabled: true },
  trustedOrigins: [baseURL],
  // Off unless NODE_ENV=production anyway; explicit so a stray environment cannot turn it on.
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  plugins: [
    jwt({
      jwks: { keyPairConfig },
      jwt: { issuer, audience, expirationTime },
    }),
  ],
});

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
