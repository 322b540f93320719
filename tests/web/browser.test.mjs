// The chat widget and the operator dashboard in a real browser: Debian's headless Chromium,
// driven by playwright-core, against a real `sentio serve` on 127.0.0.1 (open mode: no keys).
// Screenshots go to target/web-artifacts/.
//
// Run: (cd tests/web && npm ci && npm test)   — needs target/release/sentio and the components
// built (./scripts/test does both).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const artifacts = path.join(root, "target/web-artifacts");
const PHONE = "+44 20 7946 0958";

let server, base, browser, dataDir, serverOutput = "";

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  dataDir = mkdtempSync(path.join(tmpdir(), "sentio-browser-"));
  server = spawn(path.join(root, "target/release/sentio"), [
    "serve", "--listen", "127.0.0.1:0", "--manifest", "spin.toml",
    "--variable", "heavy_url=", "--variable", "overflow_url=",
    "--variable", "redact_hash_key=browser-test-key-0123456789",
  ], {
    cwd: root,
    env: { ...process.env, SENTIO_DATA_DIR: dataDir, SENTIO_CACHE_DIR: path.join(root, "target/sentio-test-cache"), SENTIO_DRIFT_WINDOW_SECS: "60" },
  });
  server.stderr.on("data", (d) => { serverOutput += d; });
  base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("sentio serve did not start:\n" + serverOutput)), 180_000);
    server.stdout.on("data", (d) => {
      serverOutput += d;
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(serverOutput);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    server.on("exit", (code) => reject(new Error(`sentio serve exited (${code}):\n${serverOutput}`)));
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGKILL");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function send(page, speaker, text) {
  const before = await page.locator(".sentio-msg").count();
  await page.selectOption("select[aria-label=Speaker]", speaker);
  await page.fill("input[aria-label=Message]", text);
  await page.keyboard.press("Enter");
  const item = page.locator(".sentio-msg").nth(before);
  // Scored: the badge leaves its pending state.
  await item.locator(".sentio-badge:not([data-label=pending])").waitFor({ timeout: 30_000 });
  return item;
}

test("the widget badges messages, redacts the agent view and raises the escalation banner", async () => {
  const page = await browser.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(`${base}/web/demo.html?redact=1`);

  const happy = await send(page, "customer", "Thank you so much, the agent was wonderful and fixed everything!");
  assert.equal(await happy.locator(".sentio-badge").getAttribute("data-label"), "positive");
  assert.match(await happy.locator(".sentio-badge").getAttribute("aria-label"), /^Sentiment positive, confidence \d+ percent/);
  assert.equal(await page.locator(".sentio-banner").isVisible(), false);

  await send(page, "agent", "Glad to help. Anything else?");
  const late = await send(page, "customer", "Actually my second order is late again and nobody answers my emails.");
  assert.equal(await late.locator(".sentio-badge").getAttribute("data-label"), "negative");
  assert.equal(await page.locator(".sentio-banner").isVisible(), false, "one complaint after praise is no escalation");
  await send(page, "agent", "I am checking with the courier.");
  await send(page, "customer", "Still nothing. This is the worst service I have ever had.");
  const angry = await send(page, "customer", `This is useless and I am furious, I want a refund now! Call me on ${PHONE}`);
  assert.equal(await angry.locator(".sentio-badge").getAttribute("data-label"), "negative");

  // The agent sees redacted text: the phone number never reaches the page's DOM.
  const shown = await angry.locator(".text").textContent();
  assert.match(shown, /<PHONE_NUMBER>/);
  assert.ok(!(await page.content()).includes(PHONE), "the raw phone number is on the page");

  const banner = page.locator(".sentio-banner[role=alert]");
  await banner.waitFor({ state: "visible", timeout: 30_000 });
  assert.match(await banner.textContent(), /Escalate/);

  // The trend line has one point per customer message.
  const points = (await page.locator(".sentio-trend polyline").getAttribute("points")).trim().split(" ");
  assert.equal(points.length, 4);

  // The agent corrects a label: POST /feedback, stored.
  await late.locator("select.sentio-fix").selectOption("neutral");
  await late.locator("select.sentio-fix[data-saved=true]").waitFor({ timeout: 10_000 });
  const predictionId = await late.getAttribute("data-prediction-id");
  const audit = await (await fetch(`${base}/audit/${predictionId}`)).json();
  assert.equal(audit.feedback[0].corrected_label, "neutral");
  assert.equal(audit.label, "negative");

  // Only the configured endpoint was called.
  assert.ok(requests.every((u) => u.startsWith(base)), requests.join("\n"));
  await page.screenshot({ path: path.join(artifacts, "widget.png"), fullPage: true });
  await page.close();
});

test("the dashboard draws charts from live data", async () => {
  // Some traffic of its own, so every chart has data whatever ran before.
  for (const text of ["great, thanks", "terrible service", "where is my parcel?", "ok"]) {
    const r = await fetch(`${base}/classify-sentiment`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text }) });
    assert.equal(r.status, 200);
  }
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  await page.goto(`${base}/dashboard`);
  await page.locator("body[data-loaded=true]").waitFor({ timeout: 15_000 });
  const points = async (id) => Number(await page.locator(`#${id}`).getAttribute("data-points"));
  assert.ok((await points("throughput")) > 0, "throughput chart is empty");
  assert.ok((await points("latency-percentiles")) > 0, "latency chart is empty");
  assert.ok((await points("labels")) > 0, "label chart is empty");
  assert.ok((await points("confidence")) > 0, "confidence chart is empty");
  assert.ok((await page.locator("#labels rect[data-label=negative]").count()) > 0);
  assert.ok((await page.locator("#latency-series polyline").count()) > 0);
  assert.match(await page.locator("#updated").textContent(), /predictions/);
  assert.equal(await page.locator("#error").textContent(), "");
  await page.screenshot({ path: path.join(artifacts, "dashboard.png"), fullPage: true });
  await page.close();
});
