// A passkey in Debian's chromium through the DevTools protocol's virtual authenticator, for
// tests/e2e/test_passkey_browser.py: register a passkey on the IdP's origin (the hosted pages'
// script, window.idpPasskeys.register), sign out (the browser forgets its cookies), then sign in
// passwordless with the sign-in page's "Sign in with a passkey" button; print the callback's code.
//
// Environment: AUTHORIZE_URL, CALLBACK (the client's redirect URI, answered here, never fetched),
// ACCESS_TOKEN (the account's, to register), SHOTS_DIR, CHROMIUM (default /usr/bin/chromium).
// Prints one JSON line per step on stdout; exits non-zero on any failure.

import fs from "node:fs";
import path from "node:path";

import { chromium } from "playwright-core";

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const authorizeUrl = required("AUTHORIZE_URL");
const callback = required("CALLBACK");
const accessToken = required("ACCESS_TOKEN");
const shotsDir = required("SHOTS_DIR");
fs.mkdirSync(shotsDir, { recursive: true });

function report(step, extra = {}) {
  process.stdout.write(`${JSON.stringify({ step, ...extra })}\n`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--no-first-run"],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.route(`${callback}**`, (route) => route.fulfill({ status: 200, contentType: "text/plain", body: "back at the client" }));

  // 1. Register, from a page of the IdP's origin (the sign-in page loads the script).
  await page.goto(authorizeUrl);
  await page.waitForFunction(() => Boolean(window.idpPasskeys));
  const registered = await page.evaluate((token) => window.idpPasskeys.register(token, "Virtual authenticator"), accessToken);
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  report("registered", { passkey: registered.passkey, resident: credentials.map((c) => c.isResidentCredential) });
  await page.screenshot({ path: path.join(shotsDir, "01-registered.png") });

  // 2. Sign out: the browser session is its cookie.
  await context.clearCookies();
  report("signed-out");

  // 3. Passwordless: the sign-in page, the passkey button, the authenticator, the callback.
  const back = page.waitForRequest((request) => request.url().startsWith(callback));
  await page.goto(authorizeUrl);
  // The page may already be leaving: the virtual authenticator answers the autofill request.
  await page.screenshot({ path: path.join(shotsDir, "02-sign-in.png") }).catch(() => {});
  await page.locator("#passkey-signin").click().catch(() => {}); // the autofill request may win
  const code = new URL((await back).url()).searchParams.get("code");
  if (!code) throw new Error("no code in the callback");
  const after = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  report("signed-in", { code, sign_count: after.credentials[0].signCount });
} finally {
  await browser.close();
}
