// Our IdP, seen from the Next.js server: exchange the Better Auth JWT for our tokens (RFC 8693),
// refresh them before they expire, revoke the refresh token at sign-out, call the API.
// A session that came by "Sign in with idp" (genericOAuth) needs no exchange: Better Auth stored
// the access token our IdP issued with the code on the user's "idp" account row.
//
// Our tokens never reach the browser: they live in this process, keyed by the Better Auth session
// id (the browser only holds Better Auth's httpOnly session cookie). With several Next.js
// instances, put this map in a shared store (Redis...) or in httpOnly SameSite=Lax cookies.
import { headers } from "next/headers";

import { getAuth } from "./auth";
import { env } from "./env";

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";
const TIMEOUT_MS = 10_000;

const store = (globalThis.__idpTokens ??= new Map()); // session id -> { access, refresh, expiresAt }
const pending = (globalThis.__idpPending ??= new Map()); // session id -> in-flight Promise

export class IdpError extends Error {
  constructor(what, status, body) {
    super(`${what}: HTTP ${status} ${body?.error ?? ""} ${body?.error_description ?? ""}`.trim());
    this.status = status;
    this.code = body?.error;
  }
}

function basicAuth() {
  const id = encodeURIComponent(env("IDP_CLIENT_ID"));
  const secret = encodeURIComponent(env("IDP_CLIENT_SECRET"));
  return `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
}

async function idpPost(path, form) {
  const response = await fetch(`${env("IDP_URL")}${path}`, {
    method: "POST",
    headers: { authorization: basicAuth(), "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
    cache: "no-store",
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new IdpError(`POST ${path}`, response.status, body);
  return body;
}

function remember(sessionId, tokens) {
  const entry = {
    access: tokens.access_token,
    refresh: tokens.refresh_token,
    expiresAt: Date.now() + tokens.expires_in * 1000,
    margin: Math.min(30, tokens.expires_in / 5) * 1000, // refresh this long before expiry
  };
  store.set(sessionId, entry);
  return entry;
}

async function exchange(sessionId) {
  console.log("idp: exchanging the Better Auth JWT of a session");
  // The JWT plugin's GET /api/auth/token, called in-process with the browser's session cookie.
  const { token } = await getAuth().api.getToken({ headers: await headers() });
  return remember(
    sessionId,
    await idpPost("/oauth2/token", {
      grant_type: TOKEN_EXCHANGE,
      subject_token: token,
      subject_token_type: JWT_TOKEN_TYPE,
    }),
  );
}

async function refresh(sessionId, entry) {
  console.log("idp: refreshing the access token of a session"); // never log token values
  const grant = { grant_type: "refresh_token", refresh_token: entry.refresh };
  try {
    return remember(sessionId, await idpPost("/oauth2/token", grant));
  } catch (error) {
    // Another request (tab, instance) may have rotated it already: take its result. Otherwise
    // retry once with the same refresh token: within 10 s the IdP answers a retry with the same
    // successor pair (e.g. when our first answer was lost, or another instance won the race).
    const current = store.get(sessionId);
    if (current && current.refresh !== entry.refresh) return current;
    console.warn(`idp: refresh failed (${error.message}), retrying once`);
    try {
      return remember(sessionId, await idpPost("/oauth2/token", grant));
    } catch (retryError) {
      if (!(retryError instanceof IdpError) || retryError.code !== "invalid_grant") throw retryError;
      store.delete(sessionId);
      return exchange(sessionId); // our IdP session is gone but Better Auth's is valid: start over
    }
  }
}

function once(sessionId, work) {
  // Concurrent requests of one session share one exchange or refresh.
  if (!pending.has(sessionId)) {
    pending.set(sessionId, work().finally(() => pending.delete(sessionId)));
  }
  return pending.get(sessionId);
}

const due = (entry) => Date.now() >= entry.expiresAt - entry.margin;

/** Our access token for this Better Auth session: exchanged on first use, refreshed before expiry. */
export async function accessToken(sessionId, { force = false } = {}) {
  const entry = store.get(sessionId);
  if (!entry) return (await once(sessionId, () => exchange(sessionId))).access;
  if (!force && !due(entry)) return entry.access;
  const fresh = await once(sessionId, async () => {
    const latest = store.get(sessionId) ?? entry; // a refresh may have finished in the meantime
    return latest !== entry && !due(latest) ? latest : refresh(sessionId, latest);
  });
  return fresh.access;
}

/** The Better Auth account row of this session's user at our IdP ("Sign in with idp"), or null. */
export async function idpAccount(requestHeaders) {
  const accounts = await getAuth().api.listUserAccounts({ headers: requestHeaders });
  return accounts.find((account) => account.providerId === "idp") ?? null;
}

/** Where the browser goes to sign out of our IdP too (OpenID Connect RP-Initiated Logout 1.0):
 * the `end_session_endpoint` from discovery, with the ID token Better Auth holds for this
 * account as `id_token_hint` (our IdP then signs out at once, no confirmation page) and our
 * registered post-logout redirect URI. Without an ID token, `client_id` names us: the IdP asks
 * the user to confirm, then still comes back. */
export async function endSessionUrl({ account, requestHeaders }) {
  const discovery = await fetch(`${env("IDP_URL")}/.well-known/openid-configuration`, {
    cache: "no-store",
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  if (!discovery.ok) throw new Error(`discovery: HTTP ${discovery.status}`);
  const { end_session_endpoint: endpoint } = await discovery.json();
  const url = new URL(endpoint);
  url.searchParams.set("client_id", env("IDP_OIDC_CLIENT_ID"));
  url.searchParams.set("post_logout_redirect_uri", `${env("BETTER_AUTH_URL")}/sign-in`);
  try {
    const { idToken } = await getAuth().api.getAccessToken({
      body: { accountId: account.id },
      headers: requestHeaders,
    });
    if (idToken) url.searchParams.set("id_token_hint", idToken);
  } catch (error) {
    console.warn(`idp: no ID token for the logout hint (${error.message})`);
  }
  return url.href;
}

/** The access token our IdP issued at sign-in with idp (Better Auth refreshes it if it holds a
 * refresh token, i.e. with the offline_access scope; without one, an expired token means
 * signing in again). */
async function storedAccessToken({ account, requestHeaders }) {
  const { accessToken } = await getAuth().api.getAccessToken({
    body: { accountId: account.id }, // Better Auth's account row id, not our sub
    headers: requestHeaders,
  });
  return accessToken;
}

/** GET {API_URL}/api/profile with our access token; one forced refresh if the API says 401.
 * `viaIdp` ({ account, requestHeaders }) given: the session signed in with idp, use the token
 * Better Auth stored on that account instead. */
export async function apiProfile(sessionId, viaIdp = null) {
  const call = async (token) =>
    fetch(`${env("API_URL")}/api/profile`, {
      headers: { authorization: `Bearer ${token}` },
      cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  let response;
  if (viaIdp) {
    response = await call(await storedAccessToken(viaIdp));
  } else {
    response = await call(await accessToken(sessionId));
    if (response.status === 401) response = await call(await accessToken(sessionId, { force: true }));
  }
  if (!response.ok) throw new Error(`GET /api/profile: HTTP ${response.status} ${await response.text()}`);
  return response.json();
}

/** Sign-out: revoke our refresh token (which ends the IdP session) and forget our tokens. */
export async function forget(sessionId) {
  const entry = store.get(sessionId);
  store.delete(sessionId);
  if (!entry) return;
  await idpPost("/oauth2/revoke", { token: entry.refresh, token_type_hint: "refresh_token" });
  console.log("idp: revoked the refresh token of a session");
}
