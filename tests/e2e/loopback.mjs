// Keeps the browser tests' WebRTC on 127.0.0.1, and proves it.
//
// The suite talks to loopback addresses only (127.0.0.0/8, [::1]). A page
// without camera or microphone permission (the tests never grant it) gets no
// list of the machine's interfaces: Chromium binds each ICE socket to the
// wildcard address and announces it as a host candidate with the address of
// the default route (eth0's, e.g. 192.0.2.2), and nothing for loopback, even
// with --allow-loopback-in-peer-connection. The socket answers on 127.0.0.1
// as well, so each browser context gets an init script that wraps
// RTCPeerConnection before the page's own scripts run:
//
// - the page's own candidates (icecandidate events, onicecandidate, the
//   a=candidate lines of localDescription) are rewritten: an IPv4 host
//   candidate gets 127.0.0.1 for its address, same port; other candidates
//   that are not on 127.0.0.1 (IPv6, mDNS names, server-reflexive) are
//   dropped. The page signals only 127.0.0.1, so the other end sends only
//   there, and Chromium's replies leave the wildcard socket from 127.0.0.1;
// - remote candidates not on 127.0.0.1 are dropped (addIceCandidate, and the
//   a=candidate lines of setRemoteDescription): nothing is checked towards
//   another address;
// - when a connection comes up, and again after each remote candidate or
//   description it takes while up, its getStats() goes to Node through an
//   exposed binding: the selected pair, every pair that succeeded, every
//   remote candidate (peer-reflexive ones too, which no filter sees).
//   Chromium hides the address of a peer-reflexive remote candidate (a check
//   that came before the candidate was signaled); once the signaled
//   candidate arrives the pair shows it, so the last report of each
//   connection is the one checked.
//
// Relay candidates (turn.e2e.mjs, relay-only) are coturn's, on 127.0.0.1:
// they pass untouched; Chromium reaches coturn at 127.0.0.1 from the same
// wildcard sockets.
//
// A driver adds LOOPBACK_ARGS to Chromium's arguments, calls
// pinToLoopback(browser) right after launch() (every context it makes
// afterwards is pinned) and, at its end, checkLoopback(), which prints one
// "LOOPBACK <local> <remote>" line per connection and throws unless every
// address seen is 127.0.0.1 and enough connections came up.

// Chromium resolves no host name: its own background requests (clients2,
// accounts and update.googleapis.com, even with --disable-background-networking)
// would otherwise send DNS queries to the machine's resolver. The tests'
// URLs are IP literals.
export const LOOPBACK_ARGS = ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"];

const BINDING = "__webrtcSignalLoopbackReport";
// The last report of each connection, by id.
const seen = { connections: new Map(), rewritten: 0, dropped: 0 };

// Runs in the page, before any of its scripts. Self-contained: it goes to
// the page as source text.
function initScript(binding) {
  const Native = window.RTCPeerConnection;
  if (!Native || Native.loopbackPinned) return;
  const LOOPBACK = "127.0.0.1";
  const report = (entry) => {
    try {
      window[binding](JSON.stringify(entry));
    } catch {
      // The page is closing; its connections were reported when they came up.
    }
  };
  // "candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ..."
  const parse = (line) => {
    const prefix = line.startsWith("a=") ? "a=" : "";
    const words = line.slice(prefix.length).split(" ");
    return { prefix, words, address: words[4] || "", type: words[7] || "" };
  };
  // The page's own candidate: the line to signal instead, or null to drop it.
  const local = (line) => {
    const { prefix, words, address, type } = parse(line);
    if (address === LOOPBACK) return line;
    if (type !== "host" || !/^\d+\.\d+\.\d+\.\d+$/.test(address)) {
      report({ dropped: 1 });
      return null;
    }
    words[4] = LOOPBACK;
    report({ rewritten: 1 });
    return prefix + words.join(" ");
  };
  const remote = (line) => {
    if (parse(line).address === LOOPBACK) return line;
    report({ dropped: 1 });
    return null;
  };
  const sdpWith = (sdp, change) =>
    sdp
      .split("\r\n")
      .map((line) => (line.startsWith("a=candidate:") ? change(line) : line))
      .filter((line) => line !== null)
      .join("\r\n");
  const description = (value, change) =>
    value && typeof value.sdp === "string" ? { type: value.type, sdp: sdpWith(value.sdp, change) } : value;
  const localDescription = (value) => {
    const changed = description(value, local);
    return changed === value ? value : new RTCSessionDescription(changed);
  };

  const wrappers = new WeakMap();
  const onCandidate = (listener) => {
    if (!listener || (typeof listener !== "function" && typeof listener.handleEvent !== "function")) return listener;
    if (!wrappers.has(listener)) {
      wrappers.set(listener, function (event) {
        let delivered = event;
        const candidate = event.candidate;
        if (candidate && candidate.candidate) {
          const line = local(candidate.candidate);
          if (line === null) return undefined;
          if (line !== candidate.candidate) {
            const { sdpMid, sdpMLineIndex, usernameFragment } = candidate;
            delivered = new RTCPeerConnectionIceEvent("icecandidate", {
              candidate: new RTCIceCandidate({ candidate: line, sdpMid, sdpMLineIndex, usernameFragment }),
              url: event.url,
            });
          }
        }
        return typeof listener === "function" ? listener.call(this, delivered) : listener.handleEvent(delivered);
      });
    }
    return wrappers.get(listener);
  };

  async function inspect(pc, id) {
    const order = ++reports; // the reports of one connection may resolve out of order
    let stats;
    try {
      stats = await pc.getStats();
    } catch {
      return; // closed meanwhile
    }
    const where = (candidate) => candidate && {
      address: candidate.address || candidate.ip || "",
      port: candidate.port,
      type: candidate.candidateType,
    };
    const pair = (entry) => entry && {
      local: where(stats.get(entry.localCandidateId)),
      remote: where(stats.get(entry.remoteCandidateId)),
    };
    let selected = null;
    const succeeded = [];
    const remotes = [];
    stats.forEach((entry) => {
      if (entry.type === "transport" && entry.selectedCandidatePairId) selected = stats.get(entry.selectedCandidatePairId);
      if (entry.type === "candidate-pair" && entry.state === "succeeded") succeeded.push(pair(entry));
      if (entry.type === "remote-candidate") remotes.push(where(entry));
    });
    report({ connection: id, order, selected: pair(selected), succeeded, remotes });
  }

  const pageId = Math.random().toString(36).slice(2, 8);
  let count = 0;
  let reports = 0;
  class LoopbackPeerConnection extends Native {
    constructor(...args) {
      super(...args);
      const id = `page ${pageId} connection ${++count}`;
      this.loopbackId = id;
      super.addEventListener("connectionstatechange", () => this.inspectIfUp());
    }

    inspectIfUp() {
      if (this.connectionState === "connected") inspect(this, this.loopbackId);
    }

    addEventListener(type, listener, options) {
      return super.addEventListener(type, type === "icecandidate" ? onCandidate(listener) : listener, options);
    }

    removeEventListener(type, listener, options) {
      return super.removeEventListener(type, type === "icecandidate" ? onCandidate(listener) : listener, options);
    }

    get onicecandidate() {
      return this.pageOnIceCandidate || null;
    }

    set onicecandidate(handler) {
      this.pageOnIceCandidate = handler;
      super.onicecandidate = onCandidate(handler);
    }

    get localDescription() {
      return localDescription(super.localDescription);
    }

    get currentLocalDescription() {
      return localDescription(super.currentLocalDescription);
    }

    get pendingLocalDescription() {
      return localDescription(super.pendingLocalDescription);
    }

    async setRemoteDescription(value, ...rest) {
      const result = await super.setRemoteDescription(description(value, remote), ...rest);
      this.inspectIfUp();
      return result;
    }

    addIceCandidate(candidate, ...rest) {
      const line = candidate && (typeof candidate === "string" ? candidate : candidate.candidate);
      if (line && remote(line) === null) return Promise.resolve();
      return super.addIceCandidate(candidate, ...rest).then((result) => {
        this.inspectIfUp();
        return result;
      });
    }
  }
  LoopbackPeerConnection.loopbackPinned = true;
  window.RTCPeerConnection = LoopbackPeerConnection;
  if (window.webkitRTCPeerConnection) window.webkitRTCPeerConnection = LoopbackPeerConnection;
}

function record(text) {
  const entry = JSON.parse(text);
  seen.rewritten += entry.rewritten || 0;
  seen.dropped += entry.dropped || 0;
  const last = seen.connections.get(entry.connection);
  if (entry.connection && !(last && last.order > entry.order)) seen.connections.set(entry.connection, entry);
}

// Every context the browser makes from now on is pinned to loopback.
export function pinToLoopback(browser) {
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (...args) => {
    const context = await newContext(...args);
    await context.exposeBinding(BINDING, (_source, text) => record(text));
    await context.addInitScript(`(${initScript})(${JSON.stringify(BINDING)});`);
    return context;
  };
  return browser;
}

const show = (candidate) => (candidate ? `${candidate.address}:${candidate.port}/${candidate.type}` : "none");

// Throws unless at least `atLeast` connections came up and every one used
// 127.0.0.1 on both ends: its selected pair, every pair that succeeded,
// every remote candidate. Prints "LOOPBACK <local> <remote>" per connection.
export function checkLoopback({ atLeast = 1 } = {}) {
  const problems = [];
  // A peer-reflexive remote candidate whose signaled twin never replaced it
  // keeps its address hidden, whatever the timing of the last report. The
  // far end is a page of this browser: its own report shows the socket on
  // 127.0.0.1 under the same port, which places the hidden address.
  const loopbackPorts = new Set();
  for (const { selected, succeeded } of seen.connections.values()) {
    for (const pair of [selected, ...succeeded].filter(Boolean)) {
      if (pair.local?.address === "127.0.0.1") loopbackPorts.add(pair.local.port);
    }
  }
  const onLoopback = (candidate) =>
    candidate?.address === "127.0.0.1" ||
    (candidate?.type === "prflx" && !candidate.address && loopbackPorts.has(candidate.port));
  for (const { connection, selected, succeeded, remotes } of seen.connections.values()) {
    // A hidden address placed by its port is printed as placed.
    const placed = (candidate) => (candidate && !candidate.address && onLoopback(candidate) ? { ...candidate, address: "127.0.0.1" } : candidate);
    console.log(`LOOPBACK ${show(selected?.local)} ${show(placed(selected?.remote))}`);
    if (!selected) problems.push(`${connection}: no selected pair`);
    for (const pair of [selected, ...succeeded].filter(Boolean)) {
      if (pair.local?.address !== "127.0.0.1" || !onLoopback(pair.remote)) {
        problems.push(`${connection}: pair ${show(pair.local)} ⇄ ${show(pair.remote)}`);
      }
    }
    for (const candidate of remotes) {
      if (!onLoopback(candidate)) problems.push(`${connection}: remote candidate ${show(candidate)}`);
    }
  }
  console.log(
    `[loopback] ${seen.connections.size} connection(s); ${seen.rewritten} candidate(s) moved to 127.0.0.1, ` +
      `${seen.dropped} dropped`,
  );
  if (seen.connections.size < atLeast) {
    problems.push(`${seen.connections.size} connection(s) came up, expected at least ${atLeast}`);
  }
  if (problems.length > 0) throw new Error(`WebRTC left 127.0.0.1:\n  ${[...new Set(problems)].join("\n  ")}`);
}
