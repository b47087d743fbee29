// Quick match and the open-lobbies panel of the browser demo, in headless
// Chromium (Debian's, driven by playwright-core). tests/e2e/test_lobbies_browser.py
// starts a server and runs:
//
//   node tests/e2e/lobbies.e2e.mjs <server http url> <artifact dir>
//
// Quick match: two pages press "Quick match" (2 players, listed with a
// title); a third page sees the lobby in its list, the two meet in it, chat
// over their data channels, the server seals it once full, and the third
// page sees it leave the list. The list: a page lists a lobby whose title is
// HTML; another page finds it in its list, shown as text, and joins it with
// the Join button; the host seals, and the lobby leaves the list.
//
// Every wait is bounded and, on failure, says which page waited for what.
// Exit status 0 = passed.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { checkLoopback, LOOPBACK_ARGS, pinToLoopback } from "./loopback.mjs";

const [baseUrl, artifacts] = process.argv.slice(2);
// The panel refreshes itself every 3 s; a wait covers several refreshes.
const WAIT_MS = 20_000;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(artifacts, { recursive: true });
const step = (text) => console.log(`[lobbies] ${text}`);

class Page {
  constructor(name, page) {
    this.name = name;
    this.page = page;
    this.consoleErrors = [];
    page.on("console", (message) => {
      if (message.type() === "error") this.consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => this.consoleErrors.push(String(error)));
    page.on("dialog", (dialog) => {
      this.consoleErrors.push(`a dialog opened: ${dialog.message()}`);
      dialog.dismiss();
    });
  }

  // With `refresh`, the page's Refresh button is pressed every half second
  // while waiting, rather than waiting out the panel's own 3 s refresh (which
  // the first listing of the quick-match scenario waits for, and so checks).
  // Two fetches a second, with the open pages' own refreshes, stay under the
  // 5 a second the server allows one address (--max-list-rate).
  async waitFor(what, predicate, arg, { refresh = false } = {}) {
    try {
      if (!refresh) {
        await this.page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 100 });
      } else {
        const deadline = Date.now() + WAIT_MS;
        for (;;) {
          await this.page.click("#refresh-lobbies");
          try {
            await this.page.waitForFunction(predicate, arg, { timeout: 500, polling: 50 });
            break;
          } catch (error) {
            if (Date.now() >= deadline) throw error;
          }
        }
      }
    } catch (error) {
      const log = await this.page.locator("#log").innerText().catch(() => "(no log)");
      const lobbies = await this.page.locator("#open-lobbies").innerText().catch(() => "?");
      throw new Error(
        `page ${this.name} waited ${WAIT_MS / 1000}s for ${what}, in vain.\n` +
        `status: ${await this.text("#status")}\nopen lobbies: ${lobbies || "(none)"}\n` +
        `signaling log:\n${log}\nconsole errors: ${this.consoleErrors.join(" | ") || "none"}\n` +
        `(${error.message.split("\n")[0]})`,
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

  async waitInLobby() {
    await this.waitFor("joining a lobby", () =>
      ["in-lobby", "sealed"].includes(document.querySelector("#status").dataset.state)
      && document.querySelector("#lobby-name").textContent !== "–");
    const myId = Number((await this.text("#my-id")).split(" ")[0]);
    const lobby = await this.text("#lobby-name");
    step(`${this.name} is peer ${myId} in lobby ${lobby}`);
    return { myId, lobby };
  }

  async listed(title) {
    await this.page.setChecked("#listed", true);
    await this.page.fill("#title-input", title);
  }

  async quickMatch(players) {
    await this.page.fill("#match-size", String(players));
    await this.page.click("#quick-match");
    return this.waitInLobby();
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

  async waitForSeal() {
    await this.waitFor("the seal", () => document.querySelector("#status").dataset.state === "sealed");
  }

  // The entry of lobby `name` in the open-lobbies panel: its title as text
  // and its member count, once it shows `members` members.
  async waitListed(name, members, { refresh = true } = {}) {
    await this.waitFor(`lobby ${name} listed with ${members} member(s)`, ([lobby, count]) => {
      const item = document.querySelector(`#open-lobbies li[data-lobby="${lobby}"]`);
      return item !== null && item.querySelector(".members").textContent.startsWith(`${count}`);
    }, [name, members], { refresh });
    return this.page.$eval(`#open-lobbies li[data-lobby="${name}"]`, (item) => ({
      title: item.querySelector(".lobby-title").textContent,
      elements: item.querySelector(".lobby-title").childElementCount,
    }));
  }

  async waitUnlisted(name) {
    await this.waitFor(`lobby ${name} to leave the list`, (lobby) =>
      document.querySelector(`#open-lobbies li[data-lobby="${lobby}"]`) === null, name, { refresh: true });
    step(`${this.name} no longer lists ${name}`);
  }
}

async function openPage(browser, name) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = new Page(name, await context.newPage());
  const response = await page.page.goto(baseUrl, { timeout: WAIT_MS });
  if (!response || response.status() !== 200) throw new Error(`page ${name}: GET ${baseUrl} gave ${response?.status()}`);
  return page;
}

async function quickMatchScenario(browser) {
  step("quick match: two pages meet in pool demo; a third watches the list");
  const observer = await openPage(browser, "observer");
  const a = await openPage(browser, "quick-a");
  const b = await openPage(browser, "quick-b");
  await a.listed("Quick <b>one</b>");
  const { myId: aId, lobby } = await a.quickMatch(2);
  if (aId !== 1) throw new Error(`the first player should host the new lobby, got id ${aId}`);
  const shown = await observer.waitListed(lobby, 1, { refresh: false });
  if (shown.title !== "Quick <b>one</b>" || shown.elements !== 0) {
    throw new Error(`the title should show as text, got ${JSON.stringify(shown)}`);
  }
  step("quick match: the observer lists the waiting lobby, its title as text");
  await observer.screenshot("quick-1-observer-lists.png");

  const { myId: bId, lobby: bLobby } = await b.quickMatch(2);
  if (bLobby !== lobby) throw new Error(`the second player should join ${lobby}, got ${bLobby}`);
  await a.waitForPeers([bId]);
  await b.waitForPeers([1]);
  await a.waitForSeal();
  await b.waitForSeal();
  step("quick match: both players are in one lobby, connected, and it sealed once full");
  await a.chat("hello from a");
  await b.waitForChat(1, "hello from a");
  await b.chat("hello from b");
  await a.waitForChat(bId, "hello from b");
  step("quick match: chat crosses the data channels");
  await observer.waitUnlisted(lobby);
  await observer.screenshot("quick-2-observer-unlisted.png");
  await a.screenshot("quick-3-player-sealed.png");
  for (const page of [observer, a, b]) await page.page.context().close();
}

async function listScenario(browser) {
  step("the list: one page lists a lobby, another joins it from the list");
  const observer = await openPage(browser, "list-observer");
  const host = await openPage(browser, "list-host");
  const joiner = await openPage(browser, "list-joiner");
  const title = '<img src=x onerror="window.__injected = 1">Night game';
  await host.listed(title);
  await host.page.click("#start");
  const { lobby } = await host.waitInLobby();

  const shown = await joiner.waitListed(lobby, 1);
  if (shown.title !== title || shown.elements !== 0) {
    throw new Error(`the title should show as text, got ${JSON.stringify(shown)}`);
  }
  await joiner.page.click(`#open-lobbies li[data-lobby="${lobby}"] button.join`);
  const { myId: joinerId, lobby: joined } = await joiner.waitInLobby();
  if (joined !== lobby) throw new Error(`Join should join ${lobby}, got ${joined}`);
  await host.waitForPeers([joinerId]);
  await joiner.waitForPeers([1]);
  step("the list: the Join button joined the listed lobby");
  await observer.waitListed(lobby, 2);
  await observer.screenshot("list-1-observer-two-members.png");
  // A phone's width: the panel fits without sideways scrolling.
  await observer.page.setViewportSize({ width: 360, height: 800 });
  const overflow = await observer.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) throw new Error(`the page scrolls sideways by ${overflow}px at 360px wide`);
  await observer.screenshot("list-2-observer-narrow.png");

  await host.page.click("#seal");
  await host.waitForSeal();
  await joiner.waitForSeal();
  await observer.waitUnlisted(lobby);
  for (const page of [observer, host, joiner]) {
    const injected = await page.page.evaluate(() => window.__injected);
    if (injected !== undefined) throw new Error(`page ${page.name} ran the title's markup`);
    if (page.consoleErrors.length > 0) throw new Error(`page ${page.name}: ${page.consoleErrors.join(" | ")}`);
  }
  step("the list: sealed, the lobby left the list; no page ran the title as HTML");
  for (const page of [observer, host, joiner]) await page.page.context().close();
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
  await quickMatchScenario(browser);
  await listScenario(browser);
  checkLoopback({ atLeast: 4 }); // two links, seen from both ends
  step("all scenarios passed");
} catch (error) {
  failed = true;
  console.error(`[lobbies] FAILED: ${error.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
