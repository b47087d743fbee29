// webrtc-signal browser demo: a lobby client that follows the Godot 4
// webrtc_signaling client's conventions, so a tab and a Godot game can share
// a lobby:
//   - JOIN with id 0 asks for a mesh lobby, any other id for client-server;
//   - the ID message's data is "true" in a mesh lobby;
//   - on PEER_CONNECT(id) both sides make a connection to that peer, and only
//     the side whose own id is larger offers (so the host, id 1, never does);
//   - a candidate travels as data "\n<mid>\n<index>\n<candidate>".
// Chat runs over one negotiated data channel per peer; the server never sees it.
// Quick match connects to the server's /match/demo?size=N and sends JOIN with
// no name: the server picks the lobby. "Open lobbies" polls GET /lobbies.
// ICE servers come from the signaling server's GET /ice-servers (STUN, and
// TURN with fresh credentials), unless the page's ?ice=url,url gives them;
// ?policy=relay uses relay candidates only, to try a TURN server.
"use strict";

const TYPE = { JOIN: 0, ID: 1, PEER_CONNECT: 2, PEER_DISCONNECT: 3, OFFER: 4, ANSWER: 5, CANDIDATE: 6, SEAL: 7 };
const TYPE_NAME = Object.fromEntries(Object.entries(TYPE).map(([name, value]) => [value, name]));
// Pre-agreed on both sides (no in-band negotiation); clear of Godot's own 1-3.
const CHAT_CHANNEL = { label: "chat", negotiated: true, id: 64, ordered: true };
const MAX_LOG_LINES = 400;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const givenIceServers = params.has("ice")
  ? params.get("ice").split(",").filter(Boolean).map((url) => ({ urls: url }))
  : null;
const iceTransportPolicy = params.get("policy") === "relay" ? "relay" : "all";
const ICE_FETCH_MS = 5000;
// How often the open lobbies are fetched again (the server allows 5 a second).
const LOBBIES_REFRESH_MS = 3000;
const MATCH_POOL = "demo";
// A server with token auth wants ?token= on the WebSocket URL (browsers cannot
// set headers on it): this page passes on the one in its own URL. Share links
// leave it out: a token is its player's own.
const token = params.get("token") || "";

function withToken(url) {
  if (!token) return url;
  const target = new URL(url);
  target.searchParams.set("token", token);
  return target.toString();
}

const state = {
  ws: null,
  myId: 0,
  mesh: true,
  lobby: "",
  sealed: false,
  peers: new Map(), // id -> { id, pc, channel, chain, pair }
  iceServers: null, // null until known for this session
  attempt: 0, // a newer Start or a Stop cancels an older Start's wait
};

// -- signaling -----------------------------------------------------------------

function start(event) {
  event.preventDefault();
  const lobby = $("lobby-input").value.trim();
  // Only a new lobby can be listed; the title goes with it.
  const url = lobby ? $("server-url").value.trim() : withListing($("server-url").value.trim());
  begin(url, lobby, $("mesh").checked);
}

// Quick match: the server puts this page in the oldest lobby of the pool that
// waits for players (or makes it the host of a new one), and seals it once full.
function quickMatch() {
  const size = Math.min(64, Math.max(2, Math.round(Number($("match-size").value) || 2)));
  $("match-size").value = String(size);
  let url;
  try {
    url = new URL($("server-url").value.trim());
  } catch {
    log(`not a server URL: ${$("server-url").value}`, "error");
    return;
  }
  // Below whatever path the server URL has (a server mounted on a site).
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/match/${MATCH_POOL}`;
  url.searchParams.set("size", String(size));
  log(`quick match: pool ${MATCH_POOL}, ${size} players`, "note");
  begin(withListing(url.toString()), "", $("mesh").checked);
}

function withListing(serverUrl) {
  if (!$("listed").checked) return serverUrl;
  try {
    const url = new URL(serverUrl);
    url.searchParams.set("listed", "1");
    const title = $("title-input").value.trim();
    if (title) url.searchParams.set("title", title);
    return url.toString();
  } catch {
    return serverUrl; // the WebSocket reports the bad URL
  }
}

async function begin(url, lobby, mesh) {
  stop();
  const attempt = state.attempt;
  setStatus("connecting", `Fetching ICE servers from ${shownUrl(url)}`);
  const iceServers = await loadIceServers(withToken(url));
  if (attempt !== state.attempt) return;
  state.iceServers = iceServers;
  let ws;
  try {
    ws = new WebSocket(withToken(url));
  } catch (error) {
    log(`cannot connect to ${url}: ${error.message}`, "error");
    return;
  }
  Object.assign(state, { ws, myId: 0, mesh, lobby: "", sealed: false });
  setStatus("connecting", `Connecting to ${shownUrl(url)}`);
  log(`connecting to ${shownUrl(url)}`, "note");
  ws.onopen = () => {
    send(TYPE.JOIN, mesh ? 0 : 1, lobby);
    log(lobby ? `→ JOIN lobby ${lobby}` : `→ JOIN a new or matched ${mesh ? "mesh" : "client-server"} lobby`, "out");
  };
  ws.onmessage = (message) => receive(message.data);
  ws.onclose = (closed) => {
    if (state.ws !== ws) return;
    state.ws = null;
    log(`signaling closed: ${closed.code} ${closed.reason || "(no reason)"}`, closed.code === 1000 ? "note" : "error");
    refreshLobbies();
    if (state.sealed) {
      setStatus("sealed", `Sealed; the server closed signaling (${closed.code} ${closed.reason}). Peers stay connected.`);
    } else {
      // As the Godot client does: losing signaling before the seal ends the session.
      closePeers();
      setStatus("closed", `Closed: ${closed.code} ${closed.reason || ""}`.trim());
    }
    render();
  };
  render();
}

// The ICE servers of the signaling server at wsUrl: its /ice-servers (same
// host and port, ?token= kept), or the page's ?ice= list. A failure is logged
// and the page goes on without ICE servers (host candidates only).
async function loadIceServers(wsUrl) {
  if (givenIceServers) {
    log(`ICE servers from the page's ?ice=: ${iceUrls(givenIceServers) || "none"}`, "note");
    return givenIceServers;
  }
  let url;
  try {
    url = serverHttpUrl(wsUrl, "/ice-servers");
  } catch {
    return []; // the WebSocket reports the bad URL
  }
  const shown = `${url.origin}${url.pathname}`; // never the token
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ICE_FETCH_MS);
  try {
    const response = await fetch(url, { cache: "no-store", signal: abort.signal });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`HTTP ${response.status}${body.error ? ` (${body.error})` : ""}`);
    if (!Array.isArray(body.iceServers)) throw new Error("the answer has no iceServers list");
    log(`ICE servers from ${shown}: ${iceUrls(body.iceServers) || "none"}` +
      (body.ttl ? ` (credentials valid ${body.ttl} s)` : ""), "note");
    return body.iceServers;
  } catch (error) {
    const reason = error.name === "AbortError" ? `no answer within ${ICE_FETCH_MS / 1000} s` : error.message;
    log(`could not fetch ICE servers from ${shown}: ${reason}; going on without`, "error");
    return [];
  } finally {
    clearTimeout(timer);
  }
}

// A server URL as the log shows it: never its token.
function shownUrl(text) {
  try {
    const url = new URL(text);
    url.searchParams.delete("token");
    return url.toString();
  } catch {
    return text;
  }
}

// The HTTP(S) URL of a path on the signaling server of wsUrl, ?token= kept.
function serverHttpUrl(wsUrl, path) {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  const token = url.searchParams.get("token");
  url.pathname = path;
  url.search = "";
  if (token) url.searchParams.set("token", token);
  return url;
}

function iceUrls(servers) {
  return servers.flatMap((server) => [].concat(server.urls || [])).join(" ");
}

function stop() {
  state.attempt += 1;
  const ws = state.ws;
  state.ws = null;
  if (ws) {
    ws.close(1000);
    log("stopped", "note");
  }
  closePeers();
  Object.assign(state, { myId: 0, lobby: "", sealed: false, iceServers: null });
  setStatus("idle", "Not connected");
  render();
}

function seal() {
  send(TYPE.SEAL, 0, "");
  log("→ SEAL", "out");
}

function send(type, id, data) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type, id, data }));
  }
}

function receive(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    log(`← unparsable message: ${text.slice(0, 80)}`, "error");
    return;
  }
  const { type, id, data } = message;
  if (!Number.isInteger(type) || !Number.isInteger(id) || typeof data !== "string") {
    log(`← malformed message: ${text.slice(0, 80)}`, "error");
    return;
  }
  switch (type) {
    case TYPE.ID:
      state.myId = id;
      state.mesh = data === "true";
      log(`← ID ${id}${id === 1 ? " (host)" : ""}, ${state.mesh ? "mesh" : "client-server"}`);
      break;
    case TYPE.JOIN:
      state.lobby = data;
      setStatus("in-lobby", `In lobby as peer ${state.myId}`);
      log(`← JOIN ${data}`);
      refreshLobbies();
      break;
    case TYPE.PEER_CONNECT:
      log(`← PEER_CONNECT ${id}`);
      createPeer(id);
      break;
    case TYPE.PEER_DISCONNECT:
      log(`← PEER_DISCONNECT ${id}`);
      removePeer(id);
      break;
    case TYPE.OFFER:
    case TYPE.ANSWER:
      log(`← ${TYPE_NAME[type]} from ${id} (${data.length} bytes)`);
      remoteDescription(id, type === TYPE.OFFER ? "offer" : "answer", data);
      break;
    case TYPE.CANDIDATE:
      remoteCandidate(id, data);
      break;
    case TYPE.SEAL:
      state.sealed = true;
      setStatus("sealed", "Sealed: the server closes signaling soon; peers stay connected");
      log("← SEAL");
      refreshLobbies();
      break;
    default:
      log(`← unknown message type ${type}`, "error");
  }
  render();
}

// -- WebRTC --------------------------------------------------------------------

function createPeer(id) {
  removePeer(id);
  const pc = new RTCPeerConnection({ iceServers: state.iceServers || [], iceTransportPolicy });
  const { label, ...options } = CHAT_CHANNEL;
  const channel = pc.createDataChannel(label, options);
  const peer = { id, pc, channel, chain: Promise.resolve(), pair: null };
  state.peers.set(id, peer);

  pc.onicecandidate = ({ candidate }) => {
    if (candidate && candidate.candidate) {
      send(TYPE.CANDIDATE, id, `\n${candidate.sdpMid}\n${candidate.sdpMLineIndex}\n${candidate.candidate}`);
      log(`→ CANDIDATE to ${id}: ${candidate.candidate}`, "out");
    }
  };
  pc.onconnectionstatechange = () => {
    log(`peer ${id}: ${pc.connectionState}`, "note");
    if (pc.connectionState === "connected") showPair(peer);
    render();
  };
  channel.onopen = () => { log(`peer ${id}: data channel open`, "note"); showPair(peer); render(); };
  channel.onclose = () => render();
  channel.onmessage = (event) => addChat(id, String(event.data));

  if (id < state.myId) {
    queue(peer, async () => {
      await pc.setLocalDescription(await pc.createOffer());
      send(TYPE.OFFER, id, pc.localDescription.sdp);
      log(`→ OFFER to ${id}`, "out");
    });
  }
}

// Each peer's WebRTC calls run one after another, so a candidate that arrives
// right behind its offer waits for the offer to be applied.
function queue(peer, step) {
  peer.chain = peer.chain.then(step).catch((error) => log(`peer ${peer.id}: ${error.message}`, "error"));
}

function remoteDescription(id, type, sdp) {
  const peer = state.peers.get(id);
  if (!peer) return; // the Godot client ignores peers it was not told about
  queue(peer, async () => {
    await peer.pc.setRemoteDescription({ type, sdp });
    if (type === "offer") {
      await peer.pc.setLocalDescription(await peer.pc.createAnswer());
      send(TYPE.ANSWER, id, peer.pc.localDescription.sdp);
      log(`→ ANSWER to ${id}`, "out");
    }
  });
}

function remoteCandidate(id, data) {
  const parts = data.split("\n").filter((part) => part.length > 0);
  if (parts.length !== 3 || !/^\d+$/.test(parts[1])) {
    log(`← CANDIDATE from ${id} is not "\\n<mid>\\n<index>\\n<sdp>"`, "error");
    return;
  }
  const peer = state.peers.get(id);
  if (!peer) return;
  const [sdpMid, index, candidate] = parts;
  log(`← CANDIDATE from ${id}: ${candidate}`);
  queue(peer, () => peer.pc.addIceCandidate({ sdpMid, sdpMLineIndex: Number(index), candidate }));
}

// The candidate types (host, srflx, prflx or relay) of the pair ICE selected:
// "relay" means the data goes through the TURN server.
async function showPair(peer) {
  let stats;
  try {
    stats = await peer.pc.getStats();
  } catch {
    return; // closed meanwhile
  }
  let pair = null;
  stats.forEach((report) => {
    if (report.type === "transport" && report.selectedCandidatePairId) pair = stats.get(report.selectedCandidatePairId);
  });
  if (!pair) {
    stats.forEach((report) => {
      if (!pair && report.type === "candidate-pair" && report.nominated && report.state === "succeeded") pair = report;
    });
  }
  if (!pair) return;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  if (!local || !remote) return;
  const types = { local: local.candidateType, remote: remote.candidateType };
  if (!peer.pair || peer.pair.local !== types.local || peer.pair.remote !== types.remote) {
    peer.pair = types;
    log(`peer ${peer.id}: candidate pair ${types.local} ⇄ ${types.remote}` +
      (local.candidateType === "relay" || remote.candidateType === "relay" ? " (through TURN)" : ""), "note");
    render();
  }
}

function removePeer(id) {
  const peer = state.peers.get(id);
  if (!peer) return;
  state.peers.delete(id);
  peer.channel.close();
  peer.pc.close();
}

function closePeers() {
  for (const id of [...state.peers.keys()]) removePeer(id);
}

// -- chat ----------------------------------------------------------------------

function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value;
  if (!text) return;
  const open = [...state.peers.values()].filter((peer) => peer.channel.readyState === "open");
  for (const peer of open) peer.channel.send(text);
  addChat(state.myId, text, true);
  $("chat-input").value = "";
}

function addChat(from, text, mine = false) {
  const item = document.createElement("li");
  item.dataset.from = String(from);
  if (mine) item.className = "mine";
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = mine ? `me (${from})` : from === 1 ? "host (1)" : String(from);
  item.append(who, document.createTextNode(text));
  $("chat-log").append(item);
  item.scrollIntoView({ block: "nearest" });
}

// -- open lobbies --------------------------------------------------------------

const lobbyList = { fetching: false, again: false, error: "" };

// GET /lobbies of the server in the URL field: listed lobbies that take
// players, newest first. Titles are whatever their hosts typed: shown with
// textContent, never as HTML.
async function refreshLobbies() {
  if (lobbyList.fetching) {
    lobbyList.again = true;
    return;
  }
  lobbyList.fetching = true;
  try {
    const url = serverHttpUrl(withToken($("server-url").value.trim()), "/lobbies");
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), ICE_FETCH_MS);
    try {
      const response = await fetch(url, { cache: "no-store", signal: abort.signal });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(`HTTP ${response.status}${body.error ? ` (${body.error})` : ""}`);
      if (!Array.isArray(body.lobbies)) throw new Error("the answer has no lobbies list");
      lobbyList.error = "";
      renderLobbies(body.lobbies);
    } finally {
      clearTimeout(timer);
    }
  } catch (error) {
    const reason = error.name === "AbortError" ? "no answer in time" : error.message;
    if (reason !== lobbyList.error) log(`could not fetch the open lobbies: ${reason}`, "error");
    lobbyList.error = reason;
  } finally {
    lobbyList.fetching = false;
    if (lobbyList.again) {
      lobbyList.again = false;
      refreshLobbies();
    }
  }
}

function renderLobbies(lobbies) {
  const list = $("open-lobbies");
  list.replaceChildren(...lobbies.map((lobby) => {
    const item = document.createElement("li");
    item.dataset.lobby = lobby.name;
    const title = document.createElement("span");
    title.className = lobby.title ? "lobby-title" : "lobby-title untitled";
    title.textContent = lobby.title || lobby.name;
    title.title = lobby.name;
    const members = document.createElement("span");
    members.className = "badge members";
    members.textContent = lobby.size ? `${lobby.members}/${lobby.size}` : `${lobby.members} in`;
    const mode = document.createElement("span");
    mode.className = "badge mode";
    mode.textContent = lobby.mesh ? "mesh" : "client-server";
    const join = document.createElement("button");
    join.type = "button";
    join.className = "small join";
    join.textContent = "Join";
    join.disabled = lobby.name === state.lobby;
    join.addEventListener("click", () => {
      $("lobby-input").value = lobby.name;
      begin($("server-url").value.trim(), lobby.name, lobby.mesh);
    });
    item.append(title, members, mode, join);
    return item;
  }));
  $("lobby-count").textContent = String(lobbies.length);
  $("no-lobbies").hidden = lobbies.length > 0;
}

// -- the page ------------------------------------------------------------------

function setStatus(value, text) {
  $("status").dataset.state = value;
  $("status").textContent = text;
}

function log(text, kind = "") {
  const item = document.createElement("li");
  if (kind) item.className = kind;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString([], { hour12: false });
  item.append(time, document.createTextNode(text));
  const list = $("log");
  list.append(item);
  while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function badge(kind, value) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.dataset.value = value;
  span.title = kind === "pc" ? "WebRTC connection" : "data channel";
  span.textContent = kind === "pc" ? value : `channel ${value}`;
  return span;
}

function pairBadge(pair) {
  const span = document.createElement("span");
  span.className = "badge pair";
  // "relay" when either side relays: the connection goes through TURN.
  span.dataset.value = pair.local === "relay" || pair.remote === "relay" ? "relay" : pair.local;
  span.title = "ICE candidate pair in use: this page's candidate type ⇄ the peer's";
  span.textContent = pair.local === pair.remote ? pair.local : `${pair.local} ⇄ ${pair.remote}`;
  return span;
}

function render() {
  const connected = state.ws !== null;
  $("start").disabled = connected;
  $("quick-match").disabled = connected;
  $("stop").disabled = !connected && state.peers.size === 0;
  $("seal").disabled = !(connected && state.myId === 1 && state.lobby && !state.sealed);
  $("my-id").textContent = state.myId ? String(state.myId) + (state.myId === 1 ? " (host)" : "") : "–";
  $("mode").textContent = state.myId ? (state.mesh ? "mesh" : "client-server") : "–";
  $("lobby-name").textContent = state.lobby || "–";
  $("copy-lobby").disabled = $("copy-link").disabled = !state.lobby;
  const ice = state.iceServers;
  $("ice-servers").textContent = ice === null ? "–"
    : (iceUrls(ice) || "none") + (iceTransportPolicy === "relay" ? " (relay only)" : "");
  $("ice-servers").dataset.count = ice === null ? "" : String(ice.length);

  const list = $("peers");
  list.replaceChildren(...[...state.peers.values()].sort((a, b) => a.id - b.id).map((peer) => {
    const item = document.createElement("li");
    item.dataset.peerId = String(peer.id);
    item.dataset.connection = peer.pc.connectionState;
    item.dataset.channel = peer.channel.readyState;
    const name = document.createElement("span");
    name.className = "peer-id";
    name.textContent = peer.id === 1 ? "1 (host)" : String(peer.id);
    item.append(name, badge("pc", peer.pc.connectionState), badge("dc", peer.channel.readyState));
    if (peer.pair && peer.pc.connectionState === "connected") {
      item.dataset.localCandidate = peer.pair.local;
      item.dataset.remoteCandidate = peer.pair.remote;
      item.append(pairBadge(peer.pair));
    }
    return item;
  }));
  $("peer-count").textContent = String(state.peers.size);
  $("no-peers").hidden = state.peers.size > 0;
  $("no-peers").textContent = connected ? "Nobody yet. Share the lobby name." : "No peers.";
  const anyOpen = [...state.peers.values()].some((peer) => peer.channel.readyState === "open");
  $("chat-input").disabled = $("chat-send").disabled = !anyOpen;
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    // No clipboard on plain http off localhost: let the user copy by hand.
    window.prompt("Copy:", text);
  }
  setTimeout(() => { button.textContent = button.id === "copy-link" ? "Copy link" : "Copy"; }, 1200);
}

function shareLink() {
  const url = new URL(location.href);
  url.search = "";
  url.searchParams.set("lobby", state.lobby);
  if ($("server-url").value !== defaultServer()) url.searchParams.set("server", $("server-url").value);
  return url.toString();
}

function defaultServer() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
}

$("server-url").value = params.get("server") || defaultServer();
$("lobby-input").value = params.get("lobby") || "";
$("mesh").checked = params.get("mesh") !== "0";
$("connect-form").addEventListener("submit", start);
$("quick-match").addEventListener("click", quickMatch);
$("refresh-lobbies").addEventListener("click", refreshLobbies);
$("stop").addEventListener("click", stop);
$("seal").addEventListener("click", seal);
$("chat-form").addEventListener("submit", sendChat);
$("copy-lobby").addEventListener("click", (event) => copy(state.lobby, event.currentTarget));
$("copy-link").addEventListener("click", (event) => copy(shareLink(), event.currentTarget));
$("clear-log").addEventListener("click", () => $("log").replaceChildren());
window.addEventListener("beforeunload", () => state.ws && state.ws.close(1000));
render();
refreshLobbies();
setInterval(refreshLobbies, LOBBIES_REFRESH_MS);
