// A strict OpenID Connect relying party built on openid-client (panva), driven by the interop
// test: discovery → authorization URL (PKCE S256, state, nonce) → [the test signs in through
// the hosted pages and hands back the callback URL] → code grant with ID-token validation
// (signature, iss, aud, azp, nonce, exp, iat, RFC 9207 iss) → userinfo → refresh (with its new,
// validated ID token) → end session.
//
//   node rp.mjs '{"issuer": "...", "clientId": "...", "clientSecret": "...", "redirectUri": "...",
//                 "postLogoutRedirectUri": "..."}'
//
// Protocol, one JSON object (or URL) per line:
//   out {"authorize": URL}          in  the callback URL the browser was sent to
//   out {"tokens": …, "endSession": URL}
//                                   in  "logged-out" once the browser followed endSession
//   out {"refreshAfterLogout": "<error code>"}
// Any failure: out {"error": "...", "code": "..."} and exit 1.

import { createInterface } from 'node:readline';
import * as client from 'openid-client';

const config = JSON.parse(process.argv[2] ?? '{}');
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })[Symbol.asyncIterator]();
const say = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const hear = async () => (await lines.next()).value;

try {
  const server = await client.discovery(
    new URL(config.issuer),
    config.clientId,
    config.clientSecret,
    client.ClientSecretBasic(config.clientSecret),
    { execute: [client.allowInsecureRequests] },
  );
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authorize = client.buildAuthorizationUrl(server, {
    redirect_uri: config.redirectUri,
    scope: 'openid email profile offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  say({ authorize: authorize.href });
  const callback = new URL(await hear());
  const tokens = await client.authorizationCodeGrant(server, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(server, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(server, tokens.refresh_token);
  const endSession = client.buildEndSessionUrl(server, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: config.postLogoutRedirectUri,
    state: 'bye-state',
  });
  say({
    tokens: {
      claims,
      userinfo,
      scope: tokens.scope,
      refreshRotated: refreshed.refresh_token !== tokens.refresh_token,
      refreshedAccessToken: typeof refreshed.access_token === 'string',
      // OpenID Connect Core §12.2: validated by openid-client (signature, iss, aud, azp, exp, iat).
      refreshedClaims: refreshed.claims() ?? null,
    },
    endSession: endSession.href,
  });
  if ((await hear()) !== 'logged-out') throw new Error('expected "logged-out"');
  try {
    await client.refreshTokenGrant(server, refreshed.refresh_token);
    say({ refreshAfterLogout: 'accepted' });
  } catch (error) {
    say({ refreshAfterLogout: error.error ?? error.code ?? String(error) });
  }
} catch (error) {
  say({ error: String(error?.message ?? error), code: error?.error ?? error?.code ?? null });
  process.exit(1);
}
