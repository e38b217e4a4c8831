// "Sign in with idp" in Debian's chromium, for tests/e2e/test_browser_flow.py: the Next.js
// reference app's button (Better Auth's genericOAuth plugin) → our hosted sign-in page (and the
// consent page if shown) → back to the app, signed in → the profile the FastAPI API returned →
// sign out through our end_session_endpoint → our hosted session is gone too.
//
// Environment: APP_URL, IDP_URL, SHOTS_DIR, EMAIL, PASSWORD, CHROMIUM (default /usr/bin/chromium),
// USER_DATA_DIR (a fresh, empty folder). Prints one JSON line per step; exits non-zero on failure.

import fs from "node:fs";
import path from "node:path";

import { chromium } from "playwright-core";

const STEP_TIMEOUT_MS = 20_000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const appUrl = required("APP_URL").replace(/\/+$/, "");
const idpUrl = required("IDP_URL").replace(/\/+$/, "");
const shotsDir = required("SHOTS_DIR");
const email = required("EMAIL");
const password = required("PASSWORD");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const userDataDir = required("USER_DATA_DIR");

fs.mkdirSync(shotsDir, { recursive: true });

function report(step, extra = {}) {
  process.stdout.write(`${JSON.stringify({ step, ...extra })}\n`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shotsDir, `${name}.png`), fullPage: true });
}

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
  viewport: { width: 640, height: 480 },
});
context.setDefaultTimeout(STEP_TIMEOUT_MS);
context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);

try {
  const page = context.pages()[0] ?? (await context.newPage());

  // 1. The app's sign-in page: the button sends us to our IdP's authorization endpoint.
  await page.goto(`${appUrl}/sign-in`);
  await shot(page, "oidc-01-app-sign-in");
  await Promise.all([
    page.waitForURL((url) => url.href.startsWith(`${idpUrl}/oauth2/authorize`)),
    page.getByRole("button", { name: "Sign in with idp" }).click(),
  ]);
  const authorize = new URL(page.url());
  report("authorize", {
    path: authorize.pathname,
    query: Object.fromEntries(authorize.searchParams), // state, nonce, code_challenge: no secrets
  });

  // 2. Our hosted sign-in page.
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await shot(page, "oidc-02-idp-sign-in");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();

  // 3. Consent, if the IdP asks; then back to the app's profile.
  const allow = page.getByRole("button", { name: "Allow", exact: true });
  const backHome = (url) => url.href === `${appUrl}/profile`;
  await Promise.race([page.waitForURL(backHome), allow.waitFor()]);
  let consented = false;
  if (!backHome(new URL(page.url()))) {
    await shot(page, "oidc-03-idp-consent");
    await Promise.all([page.waitForURL(backHome), allow.click()]);
    consented = true;
  }

  // 4. Signed in at the app; the profile shows the API's answer for our access token.
  const alert = page.getByTestId("error");
  const userId = page.getByTestId("user-id");
  await Promise.race([userId.waitFor(), alert.waitFor()]);
  await shot(page, "oidc-04-profile");
  if (await alert.isVisible()) throw new Error(`profile shows an error: ${await alert.innerText()}`);
  report("profile", {
    consented,
    user_id: (await userId.innerText()).trim(),
    email: (await page.getByTestId("email").innerText()).trim(),
    path: (await page.getByTestId("path").innerText()).trim(),
  });

  // 5. Sign out of the app: through our end_session_endpoint (RP-initiated logout, with the ID
  //    token as hint) back to the app's sign-in page; the profile is refused.
  const visited = []; // navigation requests, redirects included (a 303 never commits a page)
  page.on("request", (request) => {
    if (request.isNavigationRequest()) visited.push(request.url());
  });
  await Promise.all([page.waitForURL(`${appUrl}/sign-in`), page.getByRole("button", { name: "Sign out" }).click()]);
  const logout = visited.map((href) => new URL(href)).find((url) => url.href.startsWith(`${idpUrl}/oauth2/logout`));
  await page.goto(`${appUrl}/profile`);
  await page.waitForURL(`${appUrl}/sign-in`);
  report("signed-out", {
    url: page.url(),
    // The parameter names and the redirect URI only: the hint is a token, not for the log.
    logout: logout ? { params: [...logout.searchParams.keys()].sort(), post_logout_redirect_uri: logout.searchParams.get("post_logout_redirect_uri") } : null,
  });

  // 6. Our hosted session ended too: "Sign in with idp" now shows our sign-in page again.
  await Promise.all([
    page.waitForURL((url) => url.href.startsWith(`${idpUrl}/oauth2/authorize`)),
    page.getByRole("button", { name: "Sign in with idp" }).click(),
  ]);
  await page.getByLabel("Email").waitFor();
  await shot(page, "oidc-05-idp-sign-in-again");
  report("idp-signed-out", { url: new URL(page.url()).pathname });
} finally {
  await context.close();
}
