// A long-lived offline verifier of idp access tokens built on jose (panva/jose), used by the
// interop tests the way a third-party API would use it: one remote JWKS set, created once,
// whose cache lives as long as the process.
//
//   node verify.mjs '{"jwksUri": "...", "issuer": "...", "audience": "...", "algorithms": ["EdDSA"],
//                     "cacheMaxAge": 600000, "cooldownDuration": 30000}'
//
// cacheMaxAge and cooldownDuration (milliseconds) are optional and default to jose's own defaults.
// Reads one compact JWT per line on stdin; writes one JSON object per line on stdout, in order:
//   {"ok": true, "header": {...}, "payload": {...}}    or    {"ok": false, "code": "...", "error": "..."}
// Exits when stdin closes.

import { createInterface } from 'node:readline';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const config = JSON.parse(process.argv[2] ?? '{}');
for (const name of ['jwksUri', 'issuer', 'audience', 'algorithms']) {
  if (config[name] === undefined) {
    process.stderr.write(`verify.mjs: missing "${name}" in the JSON configuration argument\n`);
    process.exit(2);
  }
}

const options = {};
if (config.cacheMaxAge !== undefined) options.cacheMaxAge = config.cacheMaxAge;
if (config.cooldownDuration !== undefined) options.cooldownDuration = config.cooldownDuration;
const jwks = createRemoteJWKSet(new URL(config.jwksUri), options);

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
for await (const line of lines) {
  const token = line.trim();
  if (token === '') continue;
  let result;
  try {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: config.issuer,
      audience: config.audience,
      typ: 'at+jwt',
      algorithms: config.algorithms,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat'],
    });
    result = { ok: true, header: protectedHeader, payload };
  } catch (err) {
    result = { ok: false, code: err?.code ?? err?.name ?? 'UNKNOWN', error: String(err) };
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}
