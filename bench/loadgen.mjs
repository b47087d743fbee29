// Load generator for the benchmark: Node + `ws`, so that the load is cheap
// next to either server. bench/run.py starts it pinned to its own core:
//
//   node bench/loadgen.mjs <scenario> '<json parameters>'
//
// and reads one JSON line of figures from its stdout. `batch` runs several
// loads one after another in one process (--quick, where starting Node for
// each would cost more than the loads): its parameters are those common to
// all plus "loads": [[scenario, parameters], ...], and it prints one line
// for each. It samples the server's
// CPU time and RSS from /proc/<serverPid> itself, at the exact edges of its
// measuring window, and reports its own CPU use beside the server's so a
// reader can see that it was not the bottleneck.
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import WebSocket from "ws";

const [scenario, rawParams] = process.argv.slice(2);
const P = JSON.parse(rawParams);
const CLK_TCK = P.clockTicks || 100;
const T = { JOIN: 0, ID: 1, PEER_CONNECT: 2, PEER_DISCONNECT: 3, CANDIDATE: 6 };

// -- measuring ----------------------------------------------------------------

// A cluster (two nodes and redis-server) is measured as one: the CPU of
// every process in serverPids, summed.
const SERVER_PIDS = P.serverPids || [P.serverPid];

function processCpu(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime + stime
}

/** CPU time to the nanosecond: the sum over the process's threads of the
 * scheduler's run time. Only comparable between two samples with the same
 * threads (a thread that ended takes its time with it). */
function threadsCpu(pid) {
  const threads = readdirSync(`/proc/${pid}/task`).sort();
  let ns = 0;
  for (const tid of threads) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      return null; // a thread ended while being read
    }
  }
  return { seconds: ns / 1e9, threads: `${pid}:${threads.join(",")}` };
}

function serverCpu() {
  return SERVER_PIDS.reduce((total, pid) => total + processCpu(pid), 0);
}

/** Both readings of the server's CPU time: clock ticks (10 ms steps) and,
 * where the kernel keeps it, the threads' run time in nanoseconds. */
function serverCpuSample() {
  const ticks = serverCpu();
  const precise = SERVER_PIDS.map((pid) => {
    try {
      return threadsCpu(pid);
    } catch {
      return null;
    }
  });
  if (precise.some((p) => p === null)) return { ticks, precise: null, threads: null };
  return {
    ticks,
    precise: precise.reduce((total, p) => total + p.seconds, 0),
    threads: precise.map((p) => p.threads).join(";"),
  };
}

/** CPU seconds between two samples: the precise figure when the same
 * threads ran throughout and it agrees with the ticks (within their 10 ms
 * steps and 5%), else the ticks. */
function cpuBetween(a, b) {
  const ticks = b.ticks - a.ticks;
  if (a.precise === null || b.precise === null || a.threads !== b.threads) return ticks;
  const precise = b.precise - a.precise;
  const step = (2 * SERVER_PIDS.length) / CLK_TCK;
  return Math.abs(precise - ticks) <= step + 0.05 * ticks ? precise : ticks;
}

function serverRssKb() {
  return SERVER_PIDS.reduce((total, pid) => {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return total + Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  }, 0);
}

function ownCpu() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** Marks a window: wall time, server CPU, own CPU. */
function mark() {
  return { wall: now(), server: serverCpuSample(), own: ownCpu() };
}

function spent(start, end) {
  const wall = end.wall - start.wall;
  const serverCpuS = cpuBetween(start.server, end.server);
  return {
    wall,
    serverCpu: serverCpuS,
    serverUtil: serverCpuS / wall,
    loadgenUtil: (end.own - start.own) / wall,
  };
}

/** Waits `duration`, then on until `progress()` has counted one thing (a
 * starved machine may not have finished a single one in a short window),
 * at most 30 s more: a figure is never made of nothing. */
async function measuringWindow(duration, progress) {
  await sleep(duration);
  const until = now() + 30;
  while (progress() < 1 && now() < until) await sleep(0.01);
}

function fail(message, status = 2) {
  console.error(`loadgen: ${message}`);
  process.exit(status);
}

// The exit status that tells bench/run.py the load generator could not
// offer the load asked of it (so the round's figures would be wrong).
const BEHIND = 3;

function bounded(promise, seconds, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${seconds}s: ${what}`)), seconds * 1000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// -- a signaling client --------------------------------------------------------

class Client {
  constructor(url) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.id = 0;
    this.onRelay = null;
    this.waiters = [];
    this.closed = new Promise((resolve) => this.ws.on("close", resolve));
    // A close while something is awaited fails the wait, naming the reason.
    this.ws.on("close", (code, reason) => {
      for (const { reject } of this.waiters) reject(new Error(`server closed the connection: ${code} ${reason}`));
      this.waiters = [];
    });
    this.ws.on("message", (data) => this.receive(data.toString()));
    this.ws.on("error", () => {});
  }

  opened() {
    return new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("close", (code) => reject(new Error(`closed before open (${code})`)));
    });
  }

  send(type, id, data) {
    this.ws.send(JSON.stringify({ type, id, data }));
  }

  receive(text) {
    const message = JSON.parse(text);
    if (message.type === T.CANDIDATE && this.onRelay) {
      this.onRelay(message);
      return;
    }
    if (message.type === T.ID) this.id = message.id;
    this.waiters = this.waiters.filter(({ test, resolve }) => !(test(message) && (resolve(message), true)));
  }

  next(test) {
    return new Promise((resolve, reject) => this.waiters.push({ test, resolve, reject }));
  }
}

/** A lobby of `size` clients: the host (id 1) and size - 1 joiners, all of
 * whom know each other's ids. The joiners connect to `guestUrl` (another
 * node of a cluster, for the cluster scenarios). */
async function lobby(url, size, guestUrl = url) {
  const host = new Client(url);
  await host.opened();
  const joined = host.next((m) => m.type === T.JOIN);
  host.send(T.JOIN, 0, "");
  const name = (await joined).data;
  const members = [host];
  for (let i = 1; i < size; i += 1) {
    const guest = new Client(guestUrl);
    await guest.opened();
    const guestJoined = guest.next((m) => m.type === T.JOIN);
    const seen = host.next((m) => m.type === T.PEER_CONNECT);
    guest.send(T.JOIN, 0, name);
    await guestJoined;
    await seen;
    members.push(guest);
  }
  return members;
}

/** `count` lobbies of `size`, `parallel` at a time. */
async function lobbies(url, count, size, parallel = 50, guestUrl = url) {
  const made = [];
  for (let start = 0; start < count; start += parallel) {
    const batch = Math.min(parallel, count - start);
    made.push(...(await Promise.all(Array.from({ length: batch }, () => lobby(url, size, guestUrl)))));
  }
  return made;
}

function closeAll(clients) {
  for (const client of clients) client.ws.terminate();
}


// -- other signaling servers, for comparison --------------------------------------
//
// bench/run.py --others peerjs,y-webrtc also measures the PeerJS server and
// y-webrtc's signaling server in churn and rate, each spoken to in its own
// protocol (P.protocol). A "pair" is what two peers need there before they
// can exchange WebRTC signaling, and its ends relay opaque strings.

let namesMade = 0;
const uniqueName = (prefix) => `${prefix}${process.pid}n${(namesMade += 1)}r${Math.random().toString(36).slice(2, 10)}`;

/** Waits for the first message that passes `test`; a close first fails it. */
function awaitMessage(ws, test, what) {
  return new Promise((resolve, reject) => {
    const onMessage = (raw) => {
      const message = JSON.parse(raw.toString());
      if (!test(message)) return;
      ws.off("message", onMessage);
      resolve(message);
    };
    ws.on("message", onMessage);
    ws.once("close", (code) => reject(new Error(`closed (${code}) while waiting for ${what}`)));
  });
}

function socketTo(url) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on("error", () => {});
  const closed = new Promise((resolve) => ws.on("close", resolve));
  const opened = new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("close", (code) => reject(new Error(`closed before open (${code})`)));
  });
  return { ws, closed, opened };
}

/** PeerJS: a peer registers an id in its URL and is told OPEN; a message
 * names its destination id, and arrives with the sender's id as `src`. */
async function peerJsPeer(url) {
  const id = uniqueName("p");
  const peer = socketTo(`${url.replace(/\/$/, "")}/peerjs?key=peerjs&id=${id}&token=${uniqueName("t")}`);
  await awaitMessage(peer.ws, (m) => m.type === "OPEN" || m.type === "ID-TAKEN" || m.type === "ERROR", "OPEN").then((m) => {
    if (m.type !== "OPEN") throw new Error(`PeerJS answered ${m.type}: ${JSON.stringify(m.payload)}`);
  });
  return { ...peer, id };
}

/** y-webrtc: a peer subscribes to a topic (unanswered) and publishes to
 * it; the server sends each publish to every subscriber, the sender too. */
function yPublish(peer, topic, data) {
  peer.ws.send(JSON.stringify({ type: "publish", topic, from: peer.tag, data }));
}

async function yPeer(url, topic) {
  const peer = { ...socketTo(url), tag: uniqueName("y") };
  await peer.opened;
  peer.ws.send(JSON.stringify({ type: "subscribe", topics: [topic] }));
  return peer;
}

/** Two peers that can signal each other, and the ends of both directions:
 * send(data), and listen(callback(data, fromThePartner)). */
/** A bare TCP echo server (bench/echo.py, bench/echo.mjs): each end of a
 * "pair" is a connection of its own, a message a line, sent back as it came.
 * The floor of `rate`: socket calls and the runtime's event loop, nothing more. */
async function echoPair(url) {
  const { hostname, port } = new URL(url);
  const open = () => new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => resolve(socket));
    socket.setNoDelay(true);
    socket.once("error", reject);
  });
  const end = (socket) => ({
    send: (data) => socket.write(`${data}\n`),
    listen: (callback) => {
      let held = "";
      socket.setEncoding("utf8");
      socket.on("data", (chunk) => {
        held += chunk;
        for (let at = held.indexOf("\n"); at >= 0; at = held.indexOf("\n")) {
          callback(held.slice(0, at), true);
          held = held.slice(at + 1);
        }
      });
    },
  });
  const sockets = [await open(), await open()];
  return { peers: sockets.map((socket) => ({ ws: { terminate: () => socket.destroy() } })), directions: sockets.map(end) };
}

async function signalingPair(protocol, url, guestUrl = url) {
  if (protocol === "echo") return echoPair(url);
  if (protocol === "peerjs") {
    const a = await peerJsPeer(url);
    const b = await peerJsPeer(guestUrl);
    const end = (from, to) => ({
      send: (data) => from.ws.send(JSON.stringify({ type: "CANDIDATE", dst: to.id, payload: data })),
      listen: (callback) => to.ws.on("message", (raw) => {
        const m = JSON.parse(raw.toString());
        if (m.type === "CANDIDATE") callback(m.payload, m.src === from.id);
      }),
    });
    return { peers: [a, b], directions: [end(a, b), end(b, a)] };
  }
  if (protocol === "ywebrtc") {
    // Subscriptions are not answered: each peer's own echo shows its
    // subscription in place, and b's "ready" reaching a shows both are.
    const topic = uniqueName("room");
    const a = await yPeer(url, topic);
    const aEcho = awaitMessage(a.ws, (m) => m.type === "publish" && m.from === a.tag, "a's echo");
    yPublish(a, topic, "ready");
    await aEcho;
    const b = await yPeer(guestUrl, topic);
    const bReady = awaitMessage(a.ws, (m) => m.type === "publish" && m.from === b.tag, "b's ready");
    const bEcho = awaitMessage(b.ws, (m) => m.type === "publish" && m.from === b.tag, "b's echo");
    yPublish(b, topic, "ready");
    await Promise.all([bReady, bEcho]);
    const end = (from, to) => ({
      send: (data) => yPublish(from, topic, data),
      listen: (callback) => to.ws.on("message", (raw) => {
        const m = JSON.parse(raw.toString());
        if (m.type === "publish" && m.from !== to.tag) callback(m.data, m.from === from.tag && m.topic === topic);
      }),
    });
    return { peers: [a, b], directions: [end(a, b), end(b, a)] };
  }
  const [host, guest] = await lobby(url, 2, guestUrl);
  const end = (from, to, dest, seenAs) => ({
    send: (data) => from.ws.send(JSON.stringify({ type: T.CANDIDATE, id: dest, data })),
    listen: (callback) => { to.onRelay = (m) => callback(m.data, m.id === seenAs); },
  });
  return { peers: [host, guest], directions: [end(host, guest, guest.id, 1), end(guest, host, 1, guest.id)] };
}

async function signalingPairs(protocol, url, count, guestUrl = url, parallel = 50) {
  const pairs = [];
  for (let start = 0; start < count; start += parallel) {
    const batch = Math.min(parallel, count - start);
    pairs.push(...(await Promise.all(Array.from({ length: batch }, () => signalingPair(protocol, url, guestUrl)))));
  }
  return pairs;
}

/** One churn round trip on another server: both peers connect and reach
 * each other (PeerJS: register, one OFFER relayed; y-webrtc: subscribe,
 * one publish delivered), then both close. */
async function otherRoundTrip(protocol, url) {
  if (protocol === "peerjs") {
    const a = await peerJsPeer(url);
    const b = await peerJsPeer(url);
    const offered = awaitMessage(a.ws, (m) => m.type === "OFFER" && m.src === b.id, "the OFFER");
    b.ws.send(JSON.stringify({ type: "OFFER", dst: a.id, payload: "offer" }));
    await offered;
    b.ws.close(1000);
    a.ws.close(1000);
    await Promise.all([a.closed, b.closed]);
    return;
  }
  const { peers } = await signalingPair(protocol, url);
  for (const peer of peers) peer.ws.close(1000);
  await Promise.all(peers.map((peer) => peer.closed));
}

// -- scenarios -----------------------------------------------------------------

/** Pairs keep `window` CANDIDATE messages in flight each way. */
async function relay({ url, guestUrl, pairs, window, dataBytes, warmup, duration }) {
  const made = await bounded(lobbies(url, pairs, 2, 50, guestUrl || url), 120, "setting up the relay pairs");
  return runRelay(made, { window, dataBytes, warmup, duration });
}

async function runRelay(made, { window, dataBytes, warmup, duration }) {
  const data = "x".repeat(dataBytes);
  let received = 0;
  let running = true;
  for (const [host, guest] of made) {
    const toGuest = JSON.stringify({ type: T.CANDIDATE, id: guest.id, data });
    const toHost = JSON.stringify({ type: T.CANDIDATE, id: 1, data });
    host.onRelay = () => { received += 1; if (running) host.ws.send(toGuest); };
    guest.onRelay = () => { received += 1; if (running) guest.ws.send(toHost); };
    for (let i = 0; i < window; i += 1) {
      host.ws.send(toGuest);
      guest.ws.send(toHost);
    }
  }
  await sleep(warmup);
  const start = mark();
  const before = received;
  await measuringWindow(duration, () => received - before);
  const end = mark();
  const messages = received - before;
  running = false;
  const rssKb = serverRssKb();
  closeAll(made.flat());
  const used = spent(start, end);
  if (messages === 0) fail("no message was relayed");
  return {
    messages,
    messagesPerS: messages / used.wall,
    serverCpuSPer100k: (used.serverCpu / messages) * 1e5,
    serverUtil: used.serverUtil,
    loadgenUtil: used.loadgenUtil,
    serverRssKb: rssKb,
  };
}

/** A fixed offered rate; each message carries its send time. */
async function latency({ url, guestUrl, pairs, rate, dataBytes, warmup, duration }) {
  const made = await bounded(lobbies(url, pairs, 2, 50, guestUrl || url), 120, "setting up the latency pairs");
  const senders = [];
  const samples = [];
  let recording = false;
  const pad = " ".repeat(dataBytes);
  for (const [host, guest] of made) {
    const onRelay = (message) => {
      if (recording) samples.push(now() - Number(message.data.slice(0, message.data.indexOf(" "))));
    };
    host.onRelay = onRelay;
    guest.onRelay = onRelay;
    senders.push([host, guest.id], [guest, 1]);
  }
  const began = now();
  let sent = 0;
  let next = 0;
  const ticker = setInterval(() => {
    const due = Math.floor((now() - began) * rate);
    for (; sent < due; sent += 1) {
      const [client, to] = senders[next];
      next = (next + 1) % senders.length;
      const data = `${now()} ${pad}`.slice(0, Math.max(dataBytes, 24));
      client.ws.send(JSON.stringify({ type: T.CANDIDATE, id: to, data }));
    }
  }, 1);
  await sleep(warmup);
  recording = true;
  const start = mark();
  await measuringWindow(duration, () => samples.length);
  const end = mark();
  recording = false;
  clearInterval(ticker);
  closeAll(made.flat());
  if (samples.length === 0) fail("no latency sample");
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] * 1000;
  const used = spent(start, end);
  return {
    rate,
    samples: samples.length,
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    p999Ms: at(0.999),
    maxMs: samples[samples.length - 1] * 1000,
    serverUtil: used.serverUtil,
    loadgenUtil: used.loadgenUtil,
  };
}

/** Workers loop: create a lobby, a second client joins, both see each other, both close. */
async function churn({ url, workers, warmup, duration, protocol = "godot" }) {
  let roundTrips = 0;
  let running = true;
  const errors = [];
  async function worker() {
    while (running) {
      if (protocol !== "godot") {
        await otherRoundTrip(protocol, url);
        roundTrips += 1;
        continue;
      }
      const host = new Client(url);
      await host.opened();
      const joined = host.next((m) => m.type === T.JOIN);
      host.send(T.JOIN, 0, "");
      const name = (await joined).data;
      const guest = new Client(url);
      await guest.opened();
      const guestJoined = guest.next((m) => m.type === T.JOIN);
      const seen = host.next((m) => m.type === T.PEER_CONNECT);
      guest.send(T.JOIN, 0, name);
      await Promise.all([guestJoined, seen]);
      guest.ws.close(1000);
      host.ws.close(1000);
      await Promise.all([guest.closed, host.closed]);
      roundTrips += 1;
    }
  }
  const running_workers = Array.from({ length: workers }, () => worker().catch((e) => errors.push(e)));
  await sleep(warmup);
  const start = mark();
  const before = roundTrips;
  await measuringWindow(duration, () => roundTrips - before);
  const end = mark();
  const count = roundTrips - before;
  running = false;
  await bounded(Promise.all(running_workers), 30, "churn workers to finish");
  if (errors.length) fail(`churn: ${errors[0].message}`);
  if (count === 0) fail("churn: no round trip was completed");
  const used = spent(start, end);
  return {
    roundTrips: count,
    roundTripsPerS: count / used.wall,
    serverCpuMsPerRoundTrip: (used.serverCpu / count) * 1000,
    serverUtil: used.serverUtil,
    loadgenUtil: used.loadgenUtil,
  };
}

/** Many joined connections doing nothing: memory per connection, setup time. */
async function idle({ url, connections, lobbySize, settle }) {
  const baseKb = serverRssKb();
  const start = mark();
  const made = await bounded(lobbies(url, connections / lobbySize, lobbySize), 300, "establishing idle connections");
  const end = mark();
  await sleep(settle);
  const rssKb = serverRssKb();
  closeAll(made.flat());
  const used = spent(start, end);
  return {
    connections,
    establishS: used.wall,
    serverCpuMsPerConnection: (used.serverCpu / connections) * 1000,
    baseRssKb: baseKb,
    rssKb,
    kbPerConnection: (rssKb - baseKb) / connections,
  };
}

/** `connections` in all: 50 relaying pairs, the rest idle in lobbies of 10
 * (both servers allow 1024 lobbies). Does the cost of a relayed message or of
 * a connection grow with the number of connections? */
async function scale({ url, connections, window, dataBytes, warmup, duration, settle }) {
  const active = 50;
  const idleLobbySize = 10;
  if ((connections - 2 * active) % idleLobbySize !== 0) fail(`scale: connections must be 100 + a multiple of ${idleLobbySize}`);
  const baseKb = serverRssKb();
  const idleCount = (connections - 2 * active) / idleLobbySize;
  const idleLobbies = await bounded(lobbies(url, idleCount, idleLobbySize), 300, "establishing idle lobbies");
  const activePairs = await bounded(lobbies(url, active, 2), 120, "establishing relaying pairs");
  await sleep(settle);
  const rssKb = serverRssKb();
  const result = await runRelay(activePairs, { window, dataBytes, warmup, duration });
  closeAll(idleLobbies.flat());
  return {
    connections,
    serverCpuSPer100k: result.serverCpuSPer100k,
    messagesPerS: result.messagesPerS,
    kbPerConnection: (rssKb - baseKb) / connections,
    loadgenUtil: result.loadgenUtil,
  };
}

/** Open loop: `rate` messages a second in all, over `pairs` lobbies of 2
 * sending both ways, each message sent when the clock says it is due and
 * never in answer to anything. Every message carries its direction's
 * sequence number and send time, and every one is checked on arrival:
 * from the right peer, in order, none lost or repeated, data intact. The
 * round fails (status BEHIND) if the generator falls more than maxLagMs
 * behind its schedule in the window. */
async function rate({ url, guestUrl, pairs, rate, dataBytes, warmup, duration, maxLagMs, drainS = 10, protocol = "godot" }) {
  const made = await bounded(signalingPairs(protocol, url, pairs, guestUrl || url), 120, "setting up the rate pairs");
  const directions = made.flatMap((pair) => pair.directions.map((end) => ({ ...end, sent: 0, received: 0 })));
  let wrong = null;
  const samples = [];
  let window = null; // [start, end) of the measured window, in send times
  const padFor = (prefix) => "x".repeat(Math.max(0, dataBytes - prefix.length));
  for (const direction of directions) {
    direction.listen((data, fromThePartner) => {
      const space = data.indexOf(" ", data.indexOf(" ") + 1);
      const prefix = data.slice(0, space + 1);
      const [seqText, sentText] = prefix.split(" ");
      if (!fromThePartner) wrong ??= "a message from another peer than the partner";
      else if (Number(seqText) !== direction.received) wrong ??= `message ${seqText} arrived, expected ${direction.received}`;
      else if (data !== prefix + padFor(prefix)) wrong ??= `message ${seqText}'s data was altered`;
      direction.received += 1;
      const sentAt = Number(sentText);
      if (window && sentAt >= window[0] && (window[1] === null || sentAt < window[1])) {
        samples.push(now() - sentAt);
      }
    });
  }
  const began = now();
  let sent = 0;
  let lagMax = 0;
  let next = 0;
  const ticker = setInterval(() => {
    const at = now();
    const due = Math.floor((at - began) * rate);
    if (sent < due && window) lagMax = Math.max(lagMax, at - (began + sent / rate));
    for (; sent < due; sent += 1) {
      const direction = directions[next];
      next = (next + 1) % directions.length;
      const prefix = `${direction.sent} ${now()} `;
      direction.sent += 1;
      direction.send(prefix + padFor(prefix));
    }
  }, 1);
  await sleep(warmup);
  const start = mark();
  window = [start.wall, null];
  const sentBefore = sent;
  await measuringWindow(duration, () => samples.length);
  const end = mark();
  window[1] = end.wall;
  // Behind at the very end too (the ticker may not have run since).
  lagMax = Math.max(lagMax, end.wall - (began + sent / rate));
  const sentInWindow = sent - sentBefore;
  clearInterval(ticker);
  // Everything sent must arrive: wait for the stragglers, bounded.
  const allArrived = () => directions.every((d) => d.received === d.sent);
  const drainDeadline = now() + drainS;
  while (!allArrived() && !wrong && now() < drainDeadline) await sleep(0.01);
  const rssKb = serverRssKb();
  closeAll(made.flatMap((pair) => pair.peers));
  if (wrong) fail(`rate: ${wrong}`);
  if (!allArrived()) {
    const missing = directions.reduce((total, d) => total + d.sent - d.received, 0);
    fail(`rate: ${missing} message(s) never arrived`);
  }
  const used = spent(start, end);
  const offered = sentInWindow / used.wall;
  // Within maxLagMs of the schedule throughout, the offered rate is the
  // rate (over 8 s, 100 ms behind is 1.25% short at the very most).
  if (lagMax * 1000 > maxLagMs) {
    fail(
      `rate: the load generator could not keep the rate: ${offered.toFixed(0)} of ${rate} msg/s, ` +
        `up to ${(lagMax * 1000).toFixed(1)} ms behind schedule (limit ${maxLagMs} ms)`,
      BEHIND,
    );
  }
  if (samples.length === 0) fail("rate: no message was delivered in the window");
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] * 1000;
  return {
    rate,
    sent: sentInWindow,
    delivered: samples.length,
    offeredPerS: offered,
    lagMaxMs: lagMax * 1000,
    serverCpuS: used.serverCpu,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: samples[samples.length - 1] * 1000,
    serverUtil: used.serverUtil,
    loadgenUtil: used.loadgenUtil,
    serverRssKb: rssKb,
  };
}

const SCENARIOS = { relay, latency, churn, idle, rate, scale };
const loads = scenario === "batch" ? P.loads : [[scenario, {}]];
for (const [name] of loads) if (!(name in SCENARIOS)) fail(`unknown scenario ${name}`);
for (const [name, params] of loads) {
  try {
    console.log(JSON.stringify(await SCENARIOS[name]({ ...P, ...params })));
  } catch (error) {
    fail(`${name}: ${error.message}`);
  }
}
process.exit(0);
