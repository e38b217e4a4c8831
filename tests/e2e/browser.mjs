// Drives Debian's chromium through the Next.js reference app (examples/nextjs-app), for
// tests/e2e/test_browser_flow.py. Never downloads a browser: playwright-core + /usr/bin/chromium.
//
// Environment: APP_URL (the Next.js app), SHOTS_DIR (a screenshot per step), DOCS_SHOT (optional:
// where to save the profile page as one PNG for the README), EMAIL, PASSWORD, TTL_WAIT_MS (how long to wait for the access token to expire),
// CHROMIUM (default /usr/bin/chromium), USER_DATA_DIR (a fresh, empty folder).
//
// Prints one JSON line per step on stdout ({"step": ..., ...}); exits non-zero on any failure.

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
const shotsDir = required("SHOTS_DIR");
const docsShot = process.env.DOCS_SHOT;
const email = required("EMAIL");
const password = required("PASSWORD");
const ttlWaitMs = Number.parseInt(required("TTL_WAIT_MS"), 10);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const userDataDir = required("USER_DATA_DIR");

fs.mkdirSync(shotsDir, { recursive: true });

function report(step, extra = {}) {
  process.stdout.write(`${JSON.stringify({ step, ...extra })}\n`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shotsDir, `${name}.png`), fullPage: true });
}

async function readProfile(page) {
  const alert = page.getByTestId("error");
  const userId = page.getByTestId("user-id");
  await Promise.race([userId.waitFor(), alert.waitFor()]);
  if (await alert.isVisible()) throw new Error(`profile shows an error: ${await alert.innerText()}`);
  return { user_id: (await userId.innerText()).trim(), email: (await page.getByTestId("email").innerText()).trim() };
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

  // 1. Sign up: Better Auth creates the account and the session; we land on the profile.
  await page.goto(`${appUrl}/sign-up`);
  await page.getByLabel("Name").fill("Ada Lovelace");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await shot(page, "01-sign-up");
  await Promise.all([page.waitForURL(`${appUrl}/profile`), page.getByRole("button", { name: "Sign up" }).click()]);

  // 2. The profile shows what the API returned for our (exchanged) access token.
  const first = await readProfile(page);
  await shot(page, "02-profile");
  if (docsShot) await page.screenshot({ path: docsShot });
  const cookies = (await context.cookies()).map(({ name, httpOnly, sameSite, secure }) => ({ name, httpOnly, sameSite, secure }));
  report("profile", { ...first, cookies });

  // 3. Wait past the access token's lifetime, then load the profile in two tabs at once: both
  //    need a refresh at the same moment.
  await page.waitForTimeout(ttlWaitMs);
  const second = await context.newPage();
  await Promise.all([page.reload(), second.goto(`${appUrl}/profile`)]);
  const [afterA, afterB] = await Promise.all([readProfile(page), readProfile(second)]);
  await shot(page, "03-profile-after-refresh");
  await shot(second, "03-profile-after-refresh-second-tab");
  report("refreshed", { tabs: [afterA, afterB] });
  await second.close();

  // 4. Sign out: the IdP refresh token is revoked and the Better Auth session ends.
  await Promise.all([page.waitForURL(`${appUrl}/sign-in`), page.getByRole("button", { name: "Sign out" }).click()]);
  await shot(page, "04-signed-out");
  report("signed-out", { url: page.url() });

  // 5. The profile is refused: we are sent back to sign-in.
  await page.goto(`${appUrl}/profile`);
  await page.waitForURL(`${appUrl}/sign-in`);
  await shot(page, "05-profile-refused");
  report("refused", { url: page.url() });

  // 6. Sign in again: a new Better Auth session, a new exchange, the same user at the API.
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await Promise.all([page.waitForURL(`${appUrl}/profile`), page.getByRole("button", { name: "Sign in" }).click()]);
  const again = await readProfile(page);
  await shot(page, "06-signed-in-again");
  report("signed-in-again", again);
} finally {
  await context.close();
}
