// Opens the IdP's /schema in Debian's chromium (playwright-core, never a downloaded browser), for
// tests/e2e/test_docs_page.py. The pinned Redoc URL is answered from a local copy of the npm
// tarball's file (no network); the page's own CSP and SRI stay in force.
//
// Environment: IDP_URL, REDOC_URL (the pinned CDN URL), REDOC_FILE (the local copy), CHROMIUM.
// Prints one JSON line: {rendered, violations, errors}.

import fs from "node:fs";

import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  const violations = [];
  const errors = [];
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) violations.push(message.text());
    else if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url === process.env.REDOC_URL) {
      return route.fulfill({
        status: 200,
        contentType: "application/javascript",
        headers: { "access-control-allow-origin": "*" },
        body: fs.readFileSync(process.env.REDOC_FILE),
      });
    }
    if (url.startsWith(process.env.IDP_URL)) return route.continue();
    return route.abort();
  });
  await page.goto(`${process.env.IDP_URL}/schema`);
  let rendered = true;
  try {
    await page.getByRole("heading", { name: "ChangePassword" }).first().waitFor({ timeout: 30_000 });
  } catch {
    rendered = false;
  }
  process.stdout.write(`${JSON.stringify({ rendered, violations, errors })}\n`);
} finally {
  await browser.close();
}
