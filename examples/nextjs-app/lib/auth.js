// Better Auth: email + password, in-memory storage, the JWT plugin whose tokens we exchange at
// the IdP, and (when IDP_OIDC_CLIENT_ID is set) "Sign in with idp" through Better Auth's
// genericOAuth plugin, our IdP being an ordinary OpenID Connect provider. One instance per process (kept on globalThis: Next.js may load this module more than
// once, and the memory adapter must be shared).

import { memoryAdapter } from "@better-auth/memory-adapter";
import { betterAuth } from "better-auth";
import { nextCookies } from "better-auth/next-js";
import { genericOAuth, jwt } from "better-auth/plugins";

import { env } from "./env";

// Sign in with idp: discovery, authorization code + PKCE (S256), a confidential client
// (client_secret_basic), the ID token checked against our JWKS with the nonce. Register the
// client at the IdP with the redirect URI <BETTER_AUTH_URL>/api/auth/callback/idp (Better Auth's
// callback path for a genericOAuth provider) and the post-logout redirect URI
// <BETTER_AUTH_URL>/sign-in (sign-out ends our hosted session too: app/actions.js).
// "offline_access" gets a refresh token: Better Auth refreshes the stored access token by
// itself, and each refresh brings a new ID token (OpenID Connect Core §12.2) it keeps for logout.
function idpProvider() {
  if (!process.env.IDP_OIDC_CLIENT_ID) return [];
  return [
    genericOAuth({
      config: [
        {
          providerId: "idp",
          discoveryUrl: `${env("IDP_URL")}/.well-known/openid-configuration`,
          clientId: env("IDP_OIDC_CLIENT_ID"),
          clientSecret: env("IDP_OIDC_CLIENT_SECRET"),
          scopes: ["openid", "email", "profile", "offline_access"],
          pkce: true,
        },
      ],
    }),
  ];
}

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
      ...idpProvider(),
      nextCookies(), // lets server actions set the session cookie; must be last
    ],
  });
}

export function getAuth() {
  globalThis.__betterAuth ??= createAuth();
  return globalThis.__betterAuth;
}
