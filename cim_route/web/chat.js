// The web chat: sign in through the route, hold one WebSocket to a node (JSON frames), send
// through the route's HTTP API. Replay and ack follow the SDK's rules: a stored message
// (seq > 0) at or below the highest seq shown is a duplicate and is dropped; the highest seq
// shown is acked (cumulative) shortly after it is on screen, and given as `last_seq` on the
// next login, so a reconnect replays only what this page has not shown yet.

import { call, clock, el, randomId, toast } from "/web/api.js";

const STORE = "cim.session";
const DEVICE = "cim.device";
const PRESENCE_MS = 5000;
const ACK_DELAY_MS = 100;
const ACK_EVERY = 50;
const HISTORY_PAGE = 50;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const NOTICES = "n:notices";

const $ = (id) => document.getElementById(id);

const state = {
  me: "",
  token: "",
  lastSeq: 0, // the highest seq shown (and so acked soon)
  acked: 0,
  running: false,
  socket: null,
  convs: new Map(), // key ("u:bob", "g:team", NOTICES) -> conversation
  current: null,
  online: new Set(),
  wake: null, // resolves the back-off wait early ("Retry now", the browser going online)
};

// ----- the session in sessionStorage -------------------------------------------------

function save() {
  sessionStorage.setItem(STORE, JSON.stringify({ me: state.me, token: state.token, lastSeq: state.lastSeq }));
}

function restore() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE) || "null");
    if (saved && saved.token && saved.me) {
      Object.assign(state, { me: saved.me, token: saved.token, lastSeq: saved.lastSeq || 0 });
      state.acked = state.lastSeq;
      return true;
    }
  } catch (err) {
    sessionStorage.removeItem(STORE);
  }
  return false;
}

const auth = () => ({ token: state.token });

/** This tab's device name (v0.2): its own session, cursor and carbons beside the user's other
 * devices, so a second tab or a terminal chat does not kick it. Kept for the tab's life. */
function device() {
  let name = sessionStorage.getItem(DEVICE);
  if (!name) {
    name = "web-" + randomId().slice(0, 8);
    sessionStorage.setItem(DEVICE, name);
  }
  return name;
}

// ----- signing in -----------------------------------------------------------------

async function signIn(register) {
  const form = $("signin-form");
  if (!form.reportValidity()) return;
  const username = $("username").value.trim();
  const password = $("password").value;
  const error = $("signin-error");
  error.textContent = "";
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  try {
    if (register) await call("POST", "/users", { body: { username, password } });
    const answer = await call("POST", "/login", { body: { username, password, device: device() } });
    Object.assign(state, { me: answer.username, token: answer.token, lastSeq: 0, acked: 0 });
    save();
    start(answer.node);
  } catch (err) {
    error.textContent = signInMessage(err);
  } finally {
    for (const button of form.querySelectorAll("button")) button.disabled = false;
  }
}

function signInMessage(err) {
  if (err.code === "username_taken") return "That name is taken. Log in instead, or pick another.";
  if (err.code === "bad_credentials") return "Wrong username or password.";
  if (err.code === "invalid_request") return "Usernames: 1–32 of A–Z a–z 0–9 _ . - ; passwords: 8 or more characters.";
  return err.detail || "Something went wrong; try again.";
}

function signOut(message) {
  state.running = false;
  sessionStorage.removeItem(STORE);
  if (message) sessionStorage.setItem("cim.notice", message);
  if (state.socket) state.socket.close();
  location.reload(); // a clean page: nothing of this user stays in memory
}

// ----- the app ----------------------------------------------------------------------

function start(node) {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("me").textContent = state.me;
  state.running = true;
  conversation(NOTICES); // always there, at the end of the list
  renderLists();
  refreshGroups();
  refreshPresence();
  setInterval(refreshPresence, PRESENCE_MS);
  connectLoop(node);
  $("open-input").focus();
}

/** The conversation of `key`, created on first use. */
function conversation(key) {
  let conv = state.convs.get(key);
  if (!conv) {
    const [type, name] = key === NOTICES ? ["notices", "Notices"] : [key[0] === "g" ? "group" : "user", key.slice(2)];
    conv = { key, type, name, messages: [], ids: new Set(), unread: 0, loaded: false, more: false, members: [] };
    state.convs.set(key, conv);
  }
  return conv;
}

function keyOf(msg) {
  if (msg.kind === "group") return "g:" + (msg.group || msg.to);
  if (msg.kind === "p2p") return "u:" + (msg.from === state.me ? msg.to : msg.from);
  return NOTICES;
}

// ----- the link to the node ---------------------------------------------------------

function setStatus(kind, text) {
  const status = $("status");
  status.dataset.state = kind;
  status.textContent = text;
  status.title = text;
}

/** Connect, and connect again after every loss: to `node` first, then wherever the route says. */
async function connectLoop(node) {
  let attempt = 0;
  while (state.running) {
    if (!node) {
      setStatus("connecting", "connecting…");
      try {
        node = (await call("POST", "/connect", { auth: auth() })).node;
      } catch (err) {
        if (err.status === 401) return signOut("Your session ended; please log in again.");
        await backoff(attempt++, err.code === "no_nodes" ? "no node is up" : "the route is unreachable");
        continue;
      }
    }
    if (!node.ws_url) {
      node = null;
      await backoff(attempt++, "the node takes no browser connections");
      continue;
    }
    setStatus("connecting", `connecting to ${node.id}…`);
    const end = await runSocket(node);
    node = null;
    if (!state.running) return;
    if (end.welcomed) attempt = 0;
    if (end.kick === "duplicate_login") {
      setStatus("offline", "offline: signed in from another window");
      return offerReconnect();
    }
    if (end.kick === "logout" || end.kick === "revoked" || end.error === "bad_token") {
      return signOut(end.kick === "revoked" ? "An operator ended your session." : "You were logged out.");
    }
    if (end.kick !== "drain") await backoff(attempt++, "connection lost"); // drain: move at once
  }
}

function offerReconnect() {
  const status = $("status");
  const again = el("button", { type: "button", className: "small", textContent: "Use here" });
  again.addEventListener("click", () => connectLoop(null), { once: true });
  status.append(" ", again);
}

/** Wait before the next try (exponential, with jitter); "Retry now" or going online ends it early. */
function backoff(attempt, why) {
  const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
  const delay = Math.round(base * (0.5 + Math.random() / 2));
  const until = Date.now() + delay;
  return new Promise((resolve) => {
    const tick = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setStatus("offline", `offline (${why}), retrying${left ? ` in ${left} s` : "…"}`);
    };
    tick();
    const ticker = setInterval(tick, 250);
    const done = () => {
      clearInterval(ticker);
      clearTimeout(timer);
      state.wake = null;
      resolve();
    };
    const timer = setTimeout(done, delay);
    state.wake = done;
  });
}

/** One WebSocket session; resolves when it closes, saying how it ended. */
function runSocket(node) {
  return new Promise((resolve) => {
    const end = { welcomed: false, kick: null, error: null };
    let socket;
    try {
      socket = new WebSocket(node.ws_url);
    } catch (err) {
      resolve(end);
      return;
    }
    state.socket = socket;
    let pinger = null;
    socket.addEventListener("open", () => {
      const login = { t: "login", token: state.token };
      if (state.lastSeq) login.last_seq = state.lastSeq;
      socket.send(JSON.stringify(login));
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (frame.t === "msg") onMessage(frame);
      else if (frame.t === "welcome") {
        end.welcomed = true;
        state.lastSeq = Math.max(state.lastSeq, frame.last_seq || 0);
        state.acked = Math.max(state.acked, frame.last_seq || 0);
        save();
        setStatus("online", `connected · ${frame.node}`);
        const period = Math.max(1, frame.heartbeat_s || 30) * 1000;
        pinger = setInterval(() => sendFrame({ t: "ping" }), period);
      } else if (frame.t === "kick") end.kick = frame.reason;
      else if (frame.t === "error") end.error = frame.code;
    });
    socket.addEventListener("close", () => {
      clearInterval(pinger);
      if (state.socket === socket) state.socket = null;
      resolve(end);
    });
  });
}

function sendFrame(frame) {
  const socket = state.socket;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

let ackTimer = null;

/** Ack what is shown: soon, or at once when many are waiting. */
function scheduleAck() {
  if (state.lastSeq - state.acked >= ACK_EVERY) return ackNow();
  if (!ackTimer) ackTimer = setTimeout(ackNow, ACK_DELAY_MS);
}

function ackNow() {
  clearTimeout(ackTimer);
  ackTimer = null;
  if (state.lastSeq > state.acked && state.socket && state.socket.readyState === WebSocket.OPEN) {
    sendFrame({ t: "ack", seq: state.lastSeq });
    state.acked = state.lastSeq;
  }
}

function onMessage(msg) {
  if (msg.seq && msg.seq <= state.lastSeq) return; // a replay of one already shown
  if (EVENTS.has(msg.kind)) applyEvent(msg);
  else showMessage(msg);
  if (msg.seq) {
    state.lastSeq = msg.seq;
    save();
    scheduleAck();
  }
}

/** v0.2 events about other messages: shown by changing those, never as messages themselves. */
const EVENTS = new Set(["receipt", "typing", "edit", "recall"]);

function applyEvent(msg) {
  if (msg.kind !== "edit" && msg.kind !== "recall") return; // receipts and typing: not drawn
  for (const conv of state.convs.values()) {
    const target = conv.messages.find((m) => m.id === msg.ref);
    if (!target) continue;
    if (msg.kind === "edit") {
      target.body = msg.body;
      if (conv === state.current) redraw(target);
    } else {
      conv.messages.splice(conv.messages.indexOf(target), 1);
      if (conv === state.current) drawTimeline();
    }
  }
}

function showMessage(msg) {
  const conv = conversation(keyOf(msg));
  const fresh = addMessage(conv, msg);
  if (fresh && msg.from !== state.me && (conv !== state.current || document.hidden)) {
    conv.unread += 1;
  }
  if (conv.type === "group" && !conv.known) refreshGroups();
  renderLists();
}

// ----- messages ---------------------------------------------------------------------

/** Put `msg` in `conv` in time order (once per id); draw it if `conv` is open. */
function addMessage(conv, msg) {
  if (conv.ids.has(msg.id)) return false;
  conv.ids.add(msg.id);
  const list = conv.messages;
  let at = list.length;
  while (at > 0 && list[at - 1].ts > msg.ts) at -= 1;
  list.splice(at, 0, msg);
  if (conv === state.current) drawInsert(msg, at);
  return true;
}

function messageItem(msg, previous) {
  const mine = msg.from === state.me;
  const continued =
    previous && previous.from === msg.from && msg.ts - previous.ts < 5 * 60000 && !previous.failed;
  const item = el("li", {
    className: `msg ${mine ? "mine" : "theirs"}${continued ? " cont" : ""}${msg.pending ? " pending" : ""}`,
    attrs: { "data-id": msg.id, "data-kind": msg.kind },
  });
  if (!continued) {
    const who = msg.kind === "p2p" || msg.kind === "group" ? msg.from : msg.kind;
    item.append(el("div", { className: "meta" }, el("span", { className: "who", textContent: who }),
      el("time", { textContent: clock(msg.ts), dateTime: new Date(msg.ts).toISOString() })));
  }
  item.append(el("div", { className: "body", textContent: msg.body }));
  if (msg.failed) {
    item.classList.add("failed");
    item.append(el("div", { className: "why", textContent: `not sent: ${msg.failed}` }));
  }
  return item;
}

function drawInsert(msg, at) {
  const timeline = $("timeline");
  const stick = nearBottom(timeline) || msg.from === state.me;
  timeline.querySelector("li.empty")?.remove();
  const items = timeline.querySelectorAll("li.msg");
  const item = messageItem(msg, state.current.messages[at - 1]);
  if (at < items.length) items[at].before(item);
  else timeline.append(item);
  if (stick) timeline.scrollTop = timeline.scrollHeight;
  else $("jump").hidden = false;
}

function redraw(msg) {
  const conv = state.current;
  const old = conv && $("timeline").querySelector(`li[data-id="${CSS.escape(msg.oldId || msg.id)}"]`);
  if (!old) return;
  const index = conv.messages.indexOf(msg);
  old.replaceWith(messageItem(msg, conv.messages[index - 1]));
}

const nearBottom = (box) => box.scrollHeight - box.scrollTop - box.clientHeight < 48;

function drawTimeline() {
  const timeline = $("timeline");
  const conv = state.current;
  timeline.replaceChildren();
  if (!conv) return;
  if (conv.more) {
    const older = el("button", { type: "button", className: "small older", textContent: "Older messages" });
    older.addEventListener("click", () => loadHistory(conv, true));
    timeline.append(el("li", { className: "older-row" }, older));
  }
  conv.messages.forEach((msg, i) => timeline.append(messageItem(msg, conv.messages[i - 1])));
  if (!conv.messages.length && conv.loaded) {
    timeline.append(el("li", { className: "empty", textContent: emptyText(conv) }));
  }
  timeline.scrollTop = timeline.scrollHeight;
  $("jump").hidden = true;
}

function emptyText(conv) {
  if (conv.type === "notices") return "Broadcasts and pushes land here.";
  return conv.type === "group" ? `No messages in ${conv.name} yet.` : `Say hello to ${conv.name}.`;
}

async function loadHistory(conv, older = false) {
  if (conv.type === "notices") {
    conv.loaded = true;
    return;
  }
  const query = { limit: HISTORY_PAGE, [conv.type === "group" ? "group" : "with"]: conv.name };
  if (older && conv.messages.length) query.before = conv.messages[0].ts;
  try {
    const page = await call("GET", "/history", { auth: auth(), query });
    for (const msg of page.messages) addQuietly(conv, msg);
    conv.more = page.messages.length === HISTORY_PAGE;
  } catch (err) {
    if (err.status === 401) return signOut("Your session ended; please log in again.");
    if (err.status !== 404) toast(`history: ${err.detail}`);
  }
  conv.loaded = true;
  if (conv === state.current) {
    const timeline = $("timeline");
    const fromBottom = timeline.scrollHeight - timeline.scrollTop;
    drawTimeline();
    if (older) timeline.scrollTop = timeline.scrollHeight - fromBottom; // keep the view still
  }
}

/** Insert without drawing (a history page is drawn in one go). */
function addQuietly(conv, msg) {
  const open = state.current;
  state.current = null;
  addMessage(conv, msg);
  state.current = open;
}

async function send(text) {
  const conv = state.current;
  if (!conv || conv.type === "notices" || !text.trim()) return;
  const clientId = randomId();
  const local = {
    id: "local-" + clientId,
    kind: conv.type === "group" ? "group" : "p2p",
    from: state.me,
    to: conv.name,
    body: text,
    ts: Date.now(),
    pending: true,
  };
  if (conv.type === "group") local.group = conv.name;
  addMessage(conv, local);
  const [path, body] =
    conv.type === "group"
      ? [`/groups/${encodeURIComponent(conv.name)}/messages`, { body: text, client_msg_id: clientId }]
      : ["/messages", { to: conv.name, body: text, client_msg_id: clientId }];
  try {
    const answer = await call("POST", path, { auth: auth(), body });
    if (conv.ids.has(answer.id)) return dropLocal(conv, local); // its carbon came first
    local.oldId = local.id;
    local.id = answer.id;
    conv.ids.add(answer.id);
    local.pending = false;
  } catch (err) {
    if (err.status === 401) return signOut("Your session ended; please log in again.");
    local.pending = false;
    local.failed = err.code === "unknown_user" ? `${conv.name} does not exist` : err.detail;
  }
  redraw(local);
  delete local.oldId;
}

/** Remove the pending copy `local` of a message `conv` already shows (by its carbon). */
function dropLocal(conv, local) {
  conv.messages.splice(conv.messages.indexOf(local), 1);
  conv.ids.delete(local.id);
  if (conv === state.current) $("timeline").querySelector(`li[data-id="${CSS.escape(local.id)}"]`)?.remove();
}

// ----- lists: groups and people -----------------------------------------------------

async function refreshGroups() {
  try {
    const { groups } = await call("GET", "/groups", { auth: auth() });
    for (const group of groups) {
      const conv = conversation("g:" + group.name);
      conv.known = true;
      conv.members = group.members;
    }
    renderLists();
    if (state.current) renderHead();
  } catch (err) {
    if (err.status === 401) signOut("Your session ended; please log in again.");
  }
}

async function refreshPresence() {
  try {
    const { users } = await call("GET", "/users/online", { auth: auth(), query: { limit: 200 } });
    const online = new Set(users.filter((u) => u !== state.me));
    const changed = online.size !== state.online.size || [...online].some((u) => !state.online.has(u));
    state.online = online;
    $("online-count").textContent = `${online.size} online`;
    if (changed) {
      renderLists();
      if (state.current) renderHead();
    }
  } catch (err) {
    if (err.status === 401) signOut("Your session ended; please log in again.");
  }
}

function renderLists() {
  const convs = [...state.convs.values()];
  const groups = convs.filter((c) => c.type === "group").sort(byName);
  const people = new Map(convs.filter((c) => c.type === "user").map((c) => [c.name, c]));
  for (const name of state.online) if (!people.has(name)) people.set(name, null);
  const names = [...people.keys()].sort((a, b) => a.localeCompare(b));
  $("groups").replaceChildren(...groups.map((c) => listItem(c.key, c.name, c, null)));
  $("people").replaceChildren(
    ...names.map((name) => listItem("u:" + name, name, people.get(name), state.online.has(name))),
    listItem(NOTICES, "Notices", state.convs.get(NOTICES), null),
  );
  const unread = convs.reduce((sum, c) => sum + c.unread, 0);
  document.title = unread ? `(${unread}) cim chat` : "cim chat";
}

const byName = (a, b) => a.name.localeCompare(b.name);

function marker(key, online) {
  if (key[0] === "g") return "group";
  if (key === NOTICES) return "notices";
  return online ? "on" : "off";
}

function listItem(key, name, conv, online) {
  const unread = conv ? conv.unread : 0;
  const button = el(
    "button",
    { type: "button", className: "conv", attrs: { "data-key": key, "data-name": name } },
    el("span", { className: `dot ${marker(key, online)}`, attrs: { "aria-hidden": "true" } }),
    el("span", { className: "name", textContent: name }),
    el("span", { className: "badge", textContent: unread ? String(unread) : "", hidden: !unread }),
  );
  if (state.current && state.current.key === key) button.setAttribute("aria-current", "true");
  button.addEventListener("click", () => open(key));
  return el("li", {}, button);
}

// ----- opening a conversation -------------------------------------------------------

function open(key) {
  const conv = conversation(key);
  state.current = conv;
  conv.unread = 0;
  closeResults();
  $("search").value = "";
  $("app").classList.add("show-chat");
  for (const id of ["message", "send"]) $(id).disabled = conv.type === "notices";
  $("search").disabled = conv.type === "notices";
  renderHead();
  renderLists();
  drawTimeline();
  if (!conv.loaded) loadHistory(conv);
  if (conv.type === "user") refreshPresence(); // say whether they are online now, not 5 s ago
  if (conv.type !== "notices") $("message").focus();
}

function renderHead() {
  const conv = state.current;
  $("chat-title").textContent = conv.type === "group" ? `# ${conv.name}` : conv.name;
  let sub = "";
  if (conv.type === "group") sub = `${conv.members.length} members: ${conv.members.join(", ")}`;
  else if (conv.type === "user") sub = state.online.has(conv.name) ? "online" : "offline";
  $("chat-sub").textContent = sub;
}

function step(delta) {
  const buttons = [...document.querySelectorAll(".sidebar button.conv")];
  const at = buttons.findIndex((b) => state.current && b.dataset.key === state.current.key);
  const next = buttons[(at + delta + buttons.length) % buttons.length];
  if (next) open(next.dataset.key);
}

// ----- search -----------------------------------------------------------------------

async function search(text) {
  const conv = state.current;
  if (!conv || conv.type === "notices") return;
  if (!text.trim()) return closeResults();
  const query = { q: text, limit: HISTORY_PAGE, [conv.type === "group" ? "group" : "with"]: conv.name };
  let page;
  try {
    page = await call("GET", "/history", { auth: auth(), query });
  } catch (err) {
    return toast(`search: ${err.detail}`);
  }
  const count = page.messages.length;
  $("results-title").textContent = `${count}${page.more ? "+" : ""} result${count === 1 ? "" : "s"} for “${text}”`;
  $("results-list").replaceChildren(...page.messages.map((msg) => highlighted(messageItem(msg, null), text)));
  if (!count) $("results-list").append(el("li", { className: "empty", textContent: "Nothing found." }));
  $("results").hidden = false;
}

/** Wrap each case-insensitive occurrence of `text` in the item's body in <mark>. */
function highlighted(item, text) {
  const body = item.querySelector(".body");
  const source = body.textContent;
  const lower = source.toLowerCase();
  const needle = text.toLowerCase();
  const parts = [];
  let from = 0;
  for (let at = lower.indexOf(needle); at >= 0 && needle; at = lower.indexOf(needle, from)) {
    parts.push(source.slice(from, at), el("mark", { textContent: source.slice(at, at + needle.length) }));
    from = at + needle.length;
  }
  parts.push(source.slice(from));
  body.replaceChildren(...parts);
  return item;
}

function closeResults() {
  $("results").hidden = true;
  $("results-list").replaceChildren();
}

// ----- groups dialog ----------------------------------------------------------------

async function createGroup() {
  const name = $("group-name").value.trim();
  const members = $("group-members").value.split(/[\s,]+/).filter(Boolean);
  const error = $("group-error");
  error.textContent = "";
  try {
    const group = await call("POST", "/groups", { auth: auth(), body: { name, members } });
    const conv = conversation("g:" + group.name);
    Object.assign(conv, { known: true, members: group.members, loaded: true });
    $("group-dialog").close();
    open(conv.key);
  } catch (err) {
    error.textContent = err.code === "group_exists" ? "That group name is taken." : err.detail;
  }
}

// ----- small things -----------------------------------------------------------------

function growComposer() {
  const box = $("message");
  box.style.height = "auto";
  box.style.height = Math.min(box.scrollHeight, 160) + "px";
}

function wire() {
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn(false);
  });
  $("register").addEventListener("click", () => signIn(true));
  $("logout").addEventListener("click", async () => {
    await call("POST", "/logout", { auth: auth() }).catch(() => null);
    signOut("");
  });
  $("open-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("open-input");
    const name = input.value.trim();
    if (!name || !input.checkValidity()) return;
    input.value = "";
    open(name === state.me ? NOTICES : "u:" + name);
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const box = $("message");
    const text = box.value;
    box.value = "";
    growComposer();
    send(text);
  });
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("message").addEventListener("input", growComposer);
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search($("search").value);
  });
  $("results-close").addEventListener("click", closeResults);
  $("back").addEventListener("click", () => $("app").classList.remove("show-chat"));
  $("jump").addEventListener("click", () => {
    const timeline = $("timeline");
    timeline.scrollTop = timeline.scrollHeight;
    $("jump").hidden = true;
  });
  $("timeline").addEventListener("scroll", (e) => {
    if (nearBottom(e.target)) $("jump").hidden = true;
  });
  $("new-group").addEventListener("click", () => {
    $("group-form").reset();
    $("group-error").textContent = "";
    $("group-dialog").showModal();
  });
  $("group-form").addEventListener("submit", (e) => {
    e.preventDefault();
    createGroup();
  });
  $("group-cancel").addEventListener("click", () => $("group-dialog").close());
  $("status").addEventListener("click", (e) => {
    if (e.target === $("status") && state.wake) state.wake(); // retry now
  });
  window.addEventListener("online", () => state.wake && state.wake());
  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.current && state.current.unread) {
      state.current.unread = 0;
      renderLists();
    }
  });
  // The page may only open WebSockets to the nodes listed when it was served: a node that
  // joined since is refused by the browser; a reload (the session is kept) fetches a new list.
  document.addEventListener("securitypolicyviolation", (e) => {
    const last = Number(sessionStorage.getItem("cim.reloaded") || 0);
    if (e.effectiveDirective === "connect-src" && Date.now() - last > 10000) {
      sessionStorage.setItem("cim.reloaded", String(Date.now()));
      location.reload();
    }
  });
}

function onKey(e) {
  if (e.key === "Escape") {
    if (!$("results").hidden) return closeResults();
    if ($("search").value && document.activeElement === $("search")) return ($("search").value = "");
    if ($("app").classList.contains("show-chat")) $("app").classList.remove("show-chat");
    return;
  }
  const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement?.tagName);
  if ((e.key === "k" && (e.ctrlKey || e.metaKey)) || (e.key === "/" && !typing)) {
    e.preventDefault();
    $("open-input").focus();
  } else if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
    e.preventDefault();
    step(e.key === "ArrowUp" ? -1 : 1);
  }
}

function boot() {
  wire();
  const notice = sessionStorage.getItem("cim.notice");
  sessionStorage.removeItem("cim.notice");
  if (restore()) return start(null);
  $("signin").hidden = false;
  if (notice) $("signin-error").textContent = notice;
  $("username").focus();
}

boot();
