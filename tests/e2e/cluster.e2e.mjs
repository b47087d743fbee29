// Two pages of the browser demo on two different nodes of a cluster
// (docs/cluster.md), in headless Chromium driven by playwright-core.
// tests/e2e/test_cluster_browser.py starts a redis-server and two nodes, then:
//
//   node tests/e2e/cluster.e2e.mjs <node 1 http url> <node 2 http url> <artifact dir>
//
// Each page is served by its own node and signals to it (the demo's server
// field defaults to the page's origin): the host's node owns the lobby, the
// guest's node bridges it. They open a data channel, chat, and the seal
// closes both signaling sockets while the channel stays up. WebRTC is pinned
// to 127.0.0.1 (loopback.mjs). Exit status 0 = passed.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { checkLoopback, LOOPBACK_ARGS, pinToLoopback } from "./loopback.mjs";

const [hostUrl, guestUrl, artifacts] = process.argv.slice(2);
const WAIT_MS = 20_000;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

mkdirSync(artifacts, { recursive: true });
const step = (text) => console.log(`[e2e] ${text}`);

async function openPage(browser, name, url) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  const response = await page.goto(url, { timeout: WAIT_MS });
  if (!response || response.status() !== 200) throw new Error(`page ${name}: GET ${url} gave ${response?.status()}`);
  const server = await page.inputValue("#server-url");
  if (!server.includes(new URL(url).host)) throw new Error(`page ${name} would signal to ${server}, not its node`);

  const waitFor = async (what, predicate, arg) => {
    try {
      await page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 100 });
    } catch (error) {
      const log = await page.locator("#log").innerText().catch(() => "(no log)");
      throw new Error(`page ${name} waited for ${what}, in vain.\nsignaling log:\n${log}\n` +
        `page errors: ${errors.join(" | ") || "none"}\n(${error.message.split("\n")[0]})`);
    }
  };
  const text = (selector) => page.locator(selector).innerText({ timeout: WAIT_MS });
  return {
    name,
    page,
    waitFor,
    async start(lobby = "") {
      await page.fill("#lobby-input", lobby);
      await page.setChecked("#mesh", true);
      await page.click("#start");
      await waitFor("status in-lobby", () => document.querySelector("#status").dataset.state === "in-lobby");
      const myId = Number((await text("#my-id")).split(" ")[0]);
      const joined = await text("#lobby-name");
      step(`${name} is peer ${myId} in lobby ${joined}`);
      return { myId, lobby: joined };
    },
    async waitForPeer(id) {
      await waitFor(`an open data channel to exactly peer ${id}`, (expected) => {
        const items = [...document.querySelectorAll("#peers li")];
        return items.length === 1 && items[0].dataset.peerId === expected
          && items[0].dataset.connection === "connected" && items[0].dataset.channel === "open";
      }, String(id));
    },
    async chat(message) {
      await page.fill("#chat-input", message);
      await page.click("#chat-send");
    },
    async waitForChat(from, message) {
      await waitFor(`chat "${message}" from peer ${from}`, ([sender, expected]) =>
        [...document.querySelectorAll("#chat-log li")].some(
          (li) => li.dataset.from === sender && li.lastChild.textContent === expected,
        ), [String(from), message]);
    },
    async screenshot(file) {
      await page.screenshot({ path: join(artifacts, file), fullPage: true });
    },
  };
}

async function scenario(browser) {
  const host = await openPage(browser, "host (node 1)", hostUrl);
  const guest = await openPage(browser, "guest (node 2)", guestUrl);
  const { myId: hostId, lobby } = await host.start();
  if (hostId !== 1) throw new Error(`the lobby creator should be peer 1, got ${hostId}`);
  const { myId: guestId } = await guest.start(lobby);
  if (guestId < 2) throw new Error(`the guest should get an id of 2 or more, got ${guestId}`);
  await host.waitForPeer(guestId);
  await guest.waitForPeer(1);
  step("the pages, on two nodes, have an open data channel");

  await host.chat("hello from node 1 ✓");
  await guest.chat("hello from node 2 ✓");
  await guest.waitForChat(1, "hello from node 1 ✓");
  await host.waitForChat(guestId, "hello from node 2 ✓");
  step("chat crossed the data channel both ways");
  await host.screenshot("cluster-host.png");
  await guest.screenshot("cluster-guest.png");

  await host.page.click("#seal");
  for (const page of [host, guest]) {
    await page.waitFor("the seal to show", () => document.querySelector("#status").dataset.state === "sealed");
  }
  for (const page of [host, guest]) {
    await page.waitFor("the owner's seal timer to close signaling with 1000 Seal complete", () =>
      [...document.querySelectorAll("#log li")].some((li) => li.textContent.includes("signaling closed: 1000 Seal complete")));
  }
  step("the seal reached both pages, and both nodes closed their sockets");
  await guest.chat("after the seal");
  await host.waitForChat(guestId, "after the seal");
  step("chat crossed the data channel after signaling closed");
  await guest.screenshot("cluster-guest-sealed.png");
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
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
    ...LOOPBACK_ARGS,
  ],
});
pinToLoopback(browser); // every page's WebRTC stays on 127.0.0.1
let failed = false;
try {
  await scenario(browser);
  checkLoopback({ atLeast: 2 }); // one link, seen from both ends
  step("all scenarios passed");
} catch (error) {
  failed = true;
  console.error(`[e2e] FAILED: ${error.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
