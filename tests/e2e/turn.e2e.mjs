// WebRTC through a real TURN server (coturn), driven by tests/e2e/test_turn_browser.py,
// which starts coturn and a signaling server handing out its credentials:
//
//   node tests/e2e/turn.e2e.mjs <server http url> <artifact dir> pages
//       two demo pages with ?policy=relay (relay candidates only) fetch the
//       ICE servers from /ice-servers, share a lobby and chat both ways
//   node tests/e2e/turn.e2e.mjs <server http url> <artifact dir> python <lobby>
//       one such page joins a Python peer's lobby and chats with it
//
// Then each page checks with getStats() that every selected candidate pair is
// relay on both ends, and prints "PAIR <local> <remote>" per connection. Every
// wait is bounded and says what it waited for. Exit status 0 = passed.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { checkLoopback, LOOPBACK_ARGS, pinToLoopback } from "./loopback.mjs";

const [baseUrl, artifacts, mode, lobby] = process.argv.slice(2);
const WAIT_MS = 20_000;
mkdirSync(artifacts, { recursive: true });
const step = (text) => console.log(`[turn] ${text}`);

async function waitFor(page, name, what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 100 });
  } catch (error) {
    const log = await page.locator("#log").innerText().catch(() => "(no log)");
    throw new Error(`page ${name} waited ${WAIT_MS / 1000}s for ${what}, in vain.\nlog:\n${log}`);
  }
}

async function openPage(browser, name) {
  const page = await (await browser.newContext({ viewport: { width: 1200, height: 860 } })).newPage();
  const url = new URL(baseUrl);
  url.searchParams.set("policy", "relay");
  await page.goto(url.toString(), { timeout: WAIT_MS });
  return { name, page };
}

async function start({ name, page }, lobbyName) {
  await page.fill("#lobby-input", lobbyName);
  await page.click("#start");
  await waitFor(page, name, "joining a lobby", () => document.querySelector("#status").dataset.state === "in-lobby");
  const ice = await page.locator("#ice-servers").innerText();
  if (!ice.includes("turn:") || !ice.includes("(relay only)")) throw new Error(`page ${name} shows ICE servers "${ice}"`);
  return {
    myId: Number((await page.locator("#my-id").innerText()).split(" ")[0]),
    lobby: await page.locator("#lobby-name").innerText(),
  };
}

async function openChannels({ name, page }, count) {
  await waitFor(page, name, `${count} open channel(s) whose pair the page shows`, (n) => {
    const open = [...document.querySelectorAll("#peers li")].filter(
      (li) => li.dataset.channel === "open" && li.dataset.localCandidate);
    return open.length === n;
  }, count);
}

async function chat({ name, page }, text, expected) {
  await page.fill("#chat-input", text);
  await page.click("#chat-send");
  for (const wanted of expected) {
    await waitFor(page, name, `chat "${wanted}"`, (w) =>
      [...document.querySelectorAll("#chat-log li")].some((li) => li.lastChild.textContent === w), wanted);
  }
}

// Straight from getStats(), not from what the page shows: the selected pair of
// every connection, and every local candidate gathered.
async function checkRelayOnly({ name, page }) {
  const found = await page.evaluate(async () => {
    const result = [];
    for (const peer of state.peers.values()) {
      const stats = await peer.pc.getStats();
      const locals = [];
      let selected = null;
      stats.forEach((report) => {
        if (report.type === "local-candidate") locals.push(report.candidateType);
        if (report.type === "transport" && report.selectedCandidatePairId) selected = stats.get(report.selectedCandidatePairId);
      });
      result.push({
        id: peer.id,
        locals,
        local: selected && stats.get(selected.localCandidateId).candidateType,
        remote: selected && stats.get(selected.remoteCandidateId).candidateType,
        shown: document.querySelector(`#peers li[data-peer-id="${peer.id}"] .badge.pair`)?.textContent,
      });
    }
    return result;
  });
  for (const pair of found) {
    console.log(`PAIR ${pair.local} ${pair.remote}`);
    if (pair.local !== "relay" || pair.remote !== "relay") {
      throw new Error(`page ${name}: the pair to ${pair.id} is ${pair.local} ⇄ ${pair.remote}, not relay`);
    }
    if (pair.locals.some((type) => type !== "relay")) {
      throw new Error(`page ${name} gathered non-relay candidates: ${pair.locals.join(", ")}`);
    }
    if (pair.shown !== "relay") throw new Error(`page ${name} shows the pair to ${pair.id} as "${pair.shown}"`);
  }
  return found.length;
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
pinToLoopback(browser); // relay-only already; this also proves the relay is on 127.0.0.1
let failed = false;
try {
  if (mode === "pages") {
    const a = await openPage(browser, "a");
    const b = await openPage(browser, "b");
    const { lobby: created } = await start(a, "");
    await start(b, created);
    await openChannels(a, 1);
    await openChannels(b, 1);
    step("both pages have a data channel through TURN");
    await chat(a, "hello through TURN from a", []);
    await chat(b, "hello through TURN from b", ["hello through TURN from a"]);
    await waitFor(a.page, "a", "chat from b", () =>
      [...document.querySelectorAll("#chat-log li")].some((li) => li.lastChild.textContent === "hello through TURN from b"));
    if ((await checkRelayOnly(a)) !== 1 || (await checkRelayOnly(b)) !== 1) throw new Error("expected one connection per page");
    await a.page.screenshot({ path: join(artifacts, "turn-relay-page.png"), fullPage: true });
  } else {
    const page = await openPage(browser, "page");
    await start(page, lobby);
    await openChannels(page, 1);
    await chat(page, "hello through TURN from the browser", ["hello through TURN from python"]);
    if ((await checkRelayOnly(page)) !== 1) throw new Error("expected one connection");
  }
  checkLoopback({ atLeast: mode === "pages" ? 2 : 1 });
  console.log("[turn] passed");
} catch (error) {
  failed = true;
  console.error(`[turn] FAILED (${mode}): ${error.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
