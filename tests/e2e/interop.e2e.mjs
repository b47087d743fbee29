// One browser page (the demo) in a lobby with a Python peer (webrtc_signal.rtc),
// driven by tests/test_demo_browser.py, which runs the Python side:
//
//   node tests/e2e/interop.e2e.mjs <server http url> <artifact dir> join <lobby>
//       the page joins the Python peer's lobby (the page offers: larger id)
//   node tests/e2e/interop.e2e.mjs <server http url> <artifact dir> host
//       the page creates a lobby and prints "LOBBY <name>"; the Python peer
//       joins it and offers; the page answers and trickles its candidates
//
// Either way the page waits for an open channel to its one peer, sends
// "hello from the browser", and waits for "hello from python". Every wait is
// bounded and says what it waited for. Exit status 0 = passed.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { checkLoopback, LOOPBACK_ARGS, pinToLoopback } from "./loopback.mjs";

const [baseUrl, artifacts, mode, lobby] = process.argv.slice(2);
const WAIT_MS = 20_000;
mkdirSync(artifacts, { recursive: true });

async function waitFor(page, what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 100 });
  } catch (error) {
    const log = await page.locator("#log").innerText().catch(() => "(no log)");
    throw new Error(`the page waited ${WAIT_MS / 1000}s for ${what}, in vain.\nsignaling log:\n${log}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--allow-loopback-in-peer-connection",
    ...LOOPBACK_ARGS,
  ],
});
pinToLoopback(browser); // the page's WebRTC stays on 127.0.0.1
let failed = false;
try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(baseUrl, { timeout: WAIT_MS });
  await page.fill("#lobby-input", mode === "join" ? lobby : "");
  await page.click("#start");
  await waitFor(page, "joining the lobby", () => document.querySelector("#status").dataset.state === "in-lobby");
  if (mode === "host") console.log(`LOBBY ${await page.locator("#lobby-name").innerText()}`);
  await waitFor(page, "an open channel to the Python peer", () =>
    [...document.querySelectorAll("#peers li")].some((li) => li.dataset.channel === "open"));
  await page.fill("#chat-input", "hello from the browser");
  await page.click("#chat-send");
  await waitFor(page, 'chat "hello from python"', () =>
    [...document.querySelectorAll("#chat-log li")].some((li) => li.lastChild.textContent === "hello from python"));
  await page.screenshot({ path: join(artifacts, `interop-browser-${mode}.png`), fullPage: true });
  checkLoopback({ atLeast: 1 });
  console.log("[interop] passed");
} catch (error) {
  failed = true;
  console.error(`[interop] FAILED (${mode}): ${error.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
