// Better Auth: email + password, in-memory storage, and the JWT plugin whose tokens we exchange at
// the IdP. One instance per process (kept on globalThis: Next.js may load this module more than
// once, and the memory adapter must be shared).

import { memoryAdapter } from "@better-auth/memory-adapter";
import { betterAuth } from "better-auth";
import { nextCookies } from "better-auth/next-js";
import { jwt } from "better-auth/plugins";

import { env } from "./env";

function createAuth() {
  const baseURL = env("BETTER_AUTH_URL");
  return betterAuth({
    baseURL,
    secret: env("BETTER_AUTH_SECRET"),
    // The memory adapter needs every table declared up front. A restart forgets everything,
    // including the JWT signing key: use a real database (e.g. better-sqlite3 12.x) beyond a demo.
    database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
    emailAndPassword: { enabled: true },
    trustedOrigins: [baseURL],
    telemetry: { enabled: false },
    plugins: [
      // iss = our baseURL (the IdP's trusted issuer), aud = the IdP's issuer URL.
      jwt({ jwt: { issuer: baseURL, audience: env("IDP_URL"), expirationTime: "5m" } }),
      nextCookies(), // lets server actions set the session cookie; must be last
    ],
  });
}

export function getAuth() {
  globalThis.__betterAuth ??= createAuth();
  return globalThis.__betterAuth;
}
