// End-to-end test of the browser demo in headless Chromium (Debian's, driven
// by playwright-core). tests/test_demo_browser.py starts a server and runs:
//
//   node tests/e2e/demo.e2e.mjs <server http(s) url> <artifact dir>
//
// For an https:// URL, E2E_TRUST_SPKI is the base64 SHA-256 of the test
// certificate's public key: Chromium trusts that key alone, and the page then
// talks wss:// to the same origin.
//
// E2E_SCENARIOS=mesh runs the mesh scenario alone, without the layout checks:
// for the wss:// run, where what differs from ws:// is the page's and the
// signaling's TLS, not the page.
//
// Every wait is bounded and, on failure, says which page waited for what.
// Screenshots of each state land in <artifact dir>. Exit status 0 = passed.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { checkLoopback, LOOPBACK_ARGS, pinToLoopback } from "./loopback.mjs";

const [baseUrl, artifacts] = process.argv.slice(2);
const WAIT_MS = 20_000;
// A small phone and a laptop.
const LAYOUT_WIDTHS = [360, 1280];
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TRUST_SPKI = process.env.E2E_TRUST_SPKI || "";
const WS_SCHEME = baseUrl.startsWith("https:") ? "wss://" : "ws://";
const ALL_SCENARIOS = (process.env.E2E_SCENARIOS || "all") === "all";

mkdirSync(artifacts, { recursive: true });
const step = (text) => console.log(`[e2e] ${text}`);

class Page {
  constructor(name, page) {
    this.name = name;
    this.page = page;
    this.consoleErrors = [];
    page.on("console", (message) => {
      if (message.type() === "error") this.consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => this.consoleErrors.push(String(error)));
  }

  async waitFor(what, predicate, arg) {
    try {
      await this.page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 100 });
    } catch (error) {
      const log = await this.page.locator("#log").innerText().catch(() => "(no log)");
      throw new Error(
        `page ${this.name} waited ${WAIT_MS / 1000}s for ${what}, in vain.\n` +
        `status: ${await this.text("#status")}\nsignaling log:\n${log}\n` +
        `console errors: ${this.consoleErrors.join(" | ") || "none"}\n(${error.message.split("\n")[0]})`,
      );
    }
  }

  text(selector) {
    return this.page.locator(selector).innerText({ timeout: WAIT_MS });
  }

  async screenshot(file) {
    await this.page.screenshot({ path: join(artifacts, file), fullPage: true });
    step(`screenshot ${file}`);
  }

  // The page at each width: a screenshot, then no sideways scrolling and no
  // label broken over two lines ("1 (host)" once wrapped at 420px). Each
  // label's text is measured: one line box per line it takes.
  async checkLayout(name) {
    const before = this.page.viewportSize();
    for (const width of LAYOUT_WIDTHS) {
      await this.page.setViewportSize({ width, height: 800 });
      await this.screenshot(`${name}-${width}.png`);
      const problems = await this.page.evaluate(() => {
        const found = [];
        const overflow = document.documentElement.scrollWidth - window.innerWidth;
        if (overflow > 0) found.push(`the page scrolls sideways by ${overflow}px`);
        for (const label of document.querySelectorAll("#peers .peer-id, #peers .badge, #my-id, #peer-count")) {
          const text = document.createRange();
          text.selectNodeContents(label);
          const lines = new Set([...text.getClientRects()].map((rect) => Math.round(rect.top))).size;
          if (lines > 1) found.push(`"${label.textContent}" wraps onto ${lines} lines`);
        }
        for (const row of document.querySelectorAll("#peers li")) {
          if (row.scrollWidth > row.clientWidth) found.push(`peer row "${row.textContent}" overflows`);
        }
        return found;
      });
      if (problems.length > 0) throw new Error(`page ${this.name} at ${width}px wide: ${problems.join("; ")}`);
      step(`${name}: layout fine at ${width}px wide`);
    }
    await this.page.setViewportSize(before);
  }

  async start({ lobby = "", mesh = true } = {}) {
    await this.page.fill("#lobby-input", lobby);
    await this.page.setChecked("#mesh", mesh);
    await this.page.click("#start");
    await this.waitFor("status in-lobby", () => document.querySelector("#status").dataset.state === "in-lobby");
    const myId = Number((await this.text("#my-id")).split(" ")[0]);
    const name = await this.text("#lobby-name");
    step(`${this.name} is peer ${myId} in lobby ${name}`);
    return { myId, lobby: name };
  }

  async waitForPeers(ids) {
    const wanted = [...ids].sort((a, b) => a - b).map(String);
    await this.waitFor(`open data channels to exactly peers ${wanted.join(", ")}`, (expected) => {
      const items = [...document.querySelectorAll("#peers li")];
      const open = items.filter((li) => li.dataset.connection === "connected" && li.dataset.channel === "open");
      return items.length === expected.length && open.map((li) => li.dataset.peerId).join() === expected.join();
    }, wanted);
  }

  async chat(text) {
    await this.page.fill("#chat-input", text);
    await this.page.click("#chat-send");
  }

  async waitForChat(from, text) {
    await this.waitFor(`chat "${text}" from peer ${from}`, ([sender, expected]) =>
      [...document.querySelectorAll("#chat-log li")].some(
        (li) => li.dataset.from === sender && li.lastChild.textContent === expected,
      ), [String(from), text]);
  }

  async chatFrom(from) {
    return this.page.$$eval("#chat-log li", (items, sender) =>
      items.filter((li) => li.dataset.from === sender).map((li) => li.lastChild.textContent), String(from));
  }
}

async function openPage(browser, name, viewport = { width: 1200, height: 860 }) {
  const context = await browser.newContext({ viewport });
  const page = new Page(name, await context.newPage());
  const response = await page.page.goto(baseUrl, { timeout: WAIT_MS });
  if (!response || response.status() !== 200) throw new Error(`page ${name}: GET ${baseUrl} gave ${response?.status()}`);
  return page;
}

async function meshScenario(browser) {
  step("mesh: one page creates a lobby, two join by name");
  const host = await openPage(browser, "mesh-host");
  await host.screenshot("1-idle.png");
  const defaultServer = await host.page.inputValue("#server-url");
  if (!defaultServer.startsWith(WS_SCHEME) || !defaultServer.includes(new URL(baseUrl).host)) {
    throw new Error(`the server field should default to this origin, got ${defaultServer}`);
  }
  const { myId: hostId, lobby } = await host.start();
  if (hostId !== 1) throw new Error(`the lobby creator should be peer 1, got ${hostId}`);
  if ((await host.text("#mode")) !== "mesh") throw new Error("host page does not show mesh mode");

  const a = await openPage(browser, "mesh-a");
  const b = await openPage(browser, "mesh-b");
  const { myId: aId } = await a.start({ lobby });
  const { myId: bId } = await b.start({ lobby });

  await host.waitForPeers([aId, bId]);
  await a.waitForPeers([1, bId]);
  await b.waitForPeers([1, aId]);
  step("mesh: all three pages have open data channels to both others");

  const pages = [[host, 1], [a, aId], [b, bId]];
  for (const [page, id] of pages) await page.chat(`hello from ${id} ✓`);
  for (const [page, id] of pages) {
    for (const [, otherId] of pages) {
      if (otherId !== id) await page.waitForChat(otherId, `hello from ${otherId} ✓`);
    }
  }
  step("mesh: every page received both others' chat messages");
  await host.screenshot("2-mesh-host-in-lobby.png");
  await b.screenshot("3-mesh-peer-in-lobby.png");
  // Every peer connected, each with its candidate pair: the widest rows.
  if (ALL_SCENARIOS) {
    await host.checkLayout("layout-mesh-host");
    await a.checkLayout("layout-mesh-peer");
  }

  await host.page.click("#seal");
  for (const [page] of pages) {
    await page.waitFor("the seal to show", () => document.querySelector("#status").dataset.state === "sealed");
  }
  step("mesh: every page shows the seal");
  for (const [page] of pages) {
    await page.waitFor("the server to close signaling with 1000 Seal complete", () =>
      [...document.querySelectorAll("#log li")].some((li) => li.textContent.includes("signaling closed: 1000 Seal complete")));
  }
  step("mesh: the server closed every signaling socket");
  await a.chat("after the seal");
  await host.waitForChat(aId, "after the seal");
  await b.waitForChat(aId, "after the seal");
  await host.waitForPeers([aId, bId]);
  step("mesh: a chat message crossed the data channels after signaling closed");
  await host.screenshot("4-mesh-host-sealed.png");

  if (ALL_SCENARIOS) {
    await host.page.setViewportSize({ width: 390, height: 844 });
    await host.screenshot("5-narrow-window.png");
    const overflow = await host.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error(`the page scrolls sideways by ${overflow}px at 390px wide`);
  }

  await host.page.click("#stop");
  await host.waitFor("Stop to end the session", () => document.querySelector("#status").dataset.state === "idle"
    && document.querySelectorAll("#peers li").length === 0);
  for (const page of [host, a, b]) await page.page.context().close();
}

async function clientServerScenario(browser) {
  step("client-server: non-hosts connect only to the host");
  const host = await openPage(browser, "cs-host");
  const { lobby } = await host.start({ mesh: false });
  if ((await host.text("#mode")) !== "client-server") throw new Error("host page does not show client-server mode");
  const a = await openPage(browser, "cs-a");
  const b = await openPage(browser, "cs-b");
  const { myId: aId } = await a.start({ lobby, mesh: true }); // the lobby's mode wins
  const { myId: bId } = await b.start({ lobby });
  if ((await a.text("#mode")) !== "client-server") throw new Error("a joiner should learn the lobby's mode");

  await host.waitForPeers([aId, bId]);
  await a.waitForPeers([1]);
  await b.waitForPeers([1]);
  step("client-server: the host has both peers, each non-host only the host");

  await host.chat("from the host");
  await a.waitForChat(1, "from the host");
  await b.waitForChat(1, "from the host");
  await a.chat("from a");
  await host.waitForChat(aId, "from a");
  await b.chat("from b");
  await host.waitForChat(bId, "from b");
  if ((await b.chatFrom(aId)).length > 0) throw new Error("b received a's message without a connection to a");
  step("client-server: chat reaches the host and the host reaches everyone");
  await host.screenshot("6-client-server-host.png");
  await a.screenshot("7-client-server-peer.png");

  await host.page.close();
  await a.waitFor("the host's leaving to close signaling (4000 Room host has disconnected)", () =>
    document.querySelector("#status").dataset.state === "closed"
    && document.querySelector("#status").textContent.includes("Room host has disconnected"));
  await a.screenshot("8-host-left.png");
  step("client-server: the host left and the others were told why");
}

// launch() gives the browser a fresh, temporary profile of its own.
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // Real host addresses in candidates instead of mDNS names nobody resolves here.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
    ...LOOPBACK_ARGS,
    // Trust the test's certificate and nothing else (not a blanket
    // --ignore-certificate-errors): the TLS handshake, ALPN included, is real.
    ...(TRUST_SPKI ? [`--ignore-certificate-errors-spki-list=${TRUST_SPKI}`] : []),
  ],
});
pinToLoopback(browser); // every page's WebRTC stays on 127.0.0.1
let failed = false;
try {
  await meshScenario(browser);
  if (ALL_SCENARIOS) {
    await clientServerScenario(browser);
    checkLoopback({ atLeast: 10 }); // 3 mesh links, 2 client-server links, both ends
  } else {
    checkLoopback({ atLeast: 6 }); // 3 mesh links, both ends
  }
  step("all scenarios passed");
} catch (error) {
  failed = true;
  console.error(`[e2e] FAILED: ${error.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
