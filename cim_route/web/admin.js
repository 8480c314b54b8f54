// The operator page: with an API key (kept in sessionStorage) it lists the nodes and the online
// users, charts the messages per second this route accepted (sampled from its own /metrics
// counters), and drains a node or kicks a user after asking.

import { call, clock, el, toast } from "/web/api.js";

const STORE = "cim.apiKey";
const REFRESH_MS = 2000;
const WINDOW_MS = 5 * 60000;
const KINDS = ["p2p", "group", "push", "broadcast", "system"];
const COUNTER = /^cim_route_messages_total\{kind="([a-z0-9_]+)"\} ([0-9.eE+]+)$/;
const W = 600;
const H = 220;
const PAD = { left: 34, right: 8, top: 10, bottom: 22 };

const $ = (id) => document.getElementById(id);

const state = { key: "", samples: [], timer: null, busy: false, again: false };
const auth = () => ({ apiKey: state.key });

// ----- the key --------------------------------------------------------------------

async function useKey(key) {
  state.key = key;
  await call("GET", "/nodes", { auth: auth() }); // 401 bad_api_key when it is not one
  sessionStorage.setItem(STORE, key);
  $("signin").hidden = true;
  $("console").hidden = false;
  await refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
}

function askKey(message) {
  clearInterval(state.timer);
  sessionStorage.removeItem(STORE);
  $("console").hidden = true;
  $("signin").hidden = false;
  $("key-error").textContent = message || "";
  $("api-key").focus();
}

// ----- refreshing ------------------------------------------------------------------

async function refresh() {
  if (state.busy) {
    state.again = true; // one more round right after this one (a search was typed meanwhile)
    return;
  }
  state.busy = true;
  try {
    const [nodes, users] = await Promise.all([
      call("GET", "/nodes", { auth: auth() }),
      call("GET", "/users/online", { auth: auth(), query: { prefix: $("user-search").value.trim(), limit: 200 } }),
    ]);
    drawNodes(nodes);
    drawUsers(users);
    await sample();
    drawChart();
    const time = new Date().toLocaleTimeString();
    setStatus("online", `live · updated ${time}`);
  } catch (err) {
    if (err.status === 401) return askKey("That API key was refused.");
    setStatus("offline", `cannot reach the route: ${err.detail}`);
  } finally {
    state.busy = false;
  }
  if (state.again) {
    state.again = false;
    await refresh();
  }
}

function setStatus(kind, text) {
  $("status").dataset.state = kind;
  $("status").textContent = text;
}

function drawNodes(nodes) {
  const connections = nodes.reduce((sum, n) => sum + n.connections, 0);
  $("nodes-summary").textContent = `${nodes.length} node${nodes.length === 1 ? "" : "s"}, ${connections} connections`;
  $("nodes").replaceChildren(
    ...nodes.map((node) => {
      const drain = el("button", { type: "button", className: "small danger", textContent: "Drain" });
      drain.disabled = node.state !== "up";
      drain.addEventListener("click", () => drainNode(node));
      return el(
        "tr",
        { attrs: { "data-node": node.id } },
        el("td", { textContent: node.id }),
        el("td", {}, el("span", { className: `state ${node.state}`, textContent: node.state })),
        el("td", { className: "num", textContent: String(node.connections) }),
        el("td", { textContent: `${node.host}:${node.port}` }),
        el("td", { textContent: node.ws_url || "—" }),
        el("td", { textContent: node.started_at ? clock(node.started_at) : "" }),
        el("td", {}, drain),
      );
    }),
  );
}

function drawUsers({ users, total }) {
  $("users-total").textContent = `${total} online`;
  $("users").replaceChildren(
    ...users.map((name) => {
      const kick = el("button", { type: "button", className: "small danger", textContent: "Kick" });
      kick.addEventListener("click", () => kickUser(name));
      return el("li", { attrs: { "data-user": name } }, el("span", { textContent: name }), kick);
    }),
  );
  if (!users.length) $("users").append(el("li", { className: "muted", textContent: "Nobody." }));
}

// ----- actions ---------------------------------------------------------------------

function confirmed(title, text) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  dialog.returnValue = "no";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
  });
}

async function drainNode(node) {
  const ok = await confirmed(
    `Drain ${node.id}?`,
    `It takes no new logins and moves its ${node.connections} connections to the other nodes, then stops.`,
  );
  if (!ok) return;
  await act(() => call("POST", `/nodes/${encodeURIComponent(node.id)}/drain`, { auth: auth() }), `${node.id} is draining`);
}

async function kickUser(name) {
  const ok = await confirmed(`Kick ${name}?`, `${name}'s connection is closed; their client stops and they have to log in again.`);
  if (!ok) return;
  await act(() => call("DELETE", `/sessions/${encodeURIComponent(name)}`, { auth: auth() }), `${name} was kicked`);
}

async function act(request, done) {
  try {
    await request();
    toast(done);
  } catch (err) {
    if (err.status === 401) return askKey("That API key was refused.");
    toast(err.detail);
  }
  await refresh();
}

// ----- message rates ---------------------------------------------------------------

/** One reading of this route's ``cim_route_messages_total`` counters (by kind). */
async function sample() {
  const last = state.samples[state.samples.length - 1];
  if (last && Date.now() - last.t < REFRESH_MS / 2) return; // an extra refresh (a search): no sample
  const response = await fetch("/metrics", { cache: "no-store" });
  if (!response.ok) return;
  const counts = {};
  for (const line of (await response.text()).split("\n")) {
    const match = COUNTER.exec(line);
    if (match) counts[match[1]] = Number(match[2]);
  }
  const now = Date.now();
  state.samples.push({ t: now, counts });
  while (state.samples.length > 2 && state.samples[0].t < now - WINDOW_MS - REFRESH_MS) state.samples.shift();
}

/** Per kind: [{t, rate}] between consecutive samples (a restarted route's drop counts as 0). */
function rates() {
  const series = Object.fromEntries(KINDS.map((kind) => [kind, []]));
  for (let i = 1; i < state.samples.length; i++) {
    const [a, b] = [state.samples[i - 1], state.samples[i]];
    const seconds = (b.t - a.t) / 1000;
    for (const kind of KINDS) {
      const delta = (b.counts[kind] || 0) - (a.counts[kind] || 0);
      series[kind].push({ t: b.t, rate: seconds > 0 ? Math.max(0, delta) / seconds : 0 });
    }
  }
  return series;
}

function niceMax(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= value);
}

const svg = (tag, attrs, text) => {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
};

function drawChart() {
  const series = rates();
  const now = Date.now();
  const top = niceMax(Math.max(0, ...Object.values(series).flat().map((p) => p.rate)));
  const x = (t) => PAD.left + ((t - (now - WINDOW_MS)) / WINDOW_MS) * (W - PAD.left - PAD.right);
  const y = (rate) => H - PAD.bottom - (rate / top) * (H - PAD.top - PAD.bottom);
  const parts = [];
  for (const fraction of [0, 0.5, 1]) {
    const value = top * fraction;
    parts.push(svg("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y(value), y2: y(value) }));
    parts.push(svg("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }, formatRate(value)));
  }
  for (const [label, t] of [["−5 min", now - WINDOW_MS], ["−2.5 min", now - WINDOW_MS / 2], ["now", now]]) {
    const anchor = label === "now" ? "end" : label === "−5 min" ? "start" : "middle";
    parts.push(svg("text", { x: x(t), y: H - 6, "text-anchor": anchor }, label));
  }
  const legend = [];
  for (const kind of KINDS) {
    const points = series[kind].filter((p) => p.t >= now - WINDOW_MS);
    const current = points.length ? points[points.length - 1].rate : 0;
    if (points.length > 1) {
      const coords = points.map((p) => `${x(p.t).toFixed(1)},${y(p.rate).toFixed(1)}`).join(" ");
      parts.push(svg("polyline", { class: `kind-${kind}`, points: coords, "data-kind": kind }));
    }
    legend.push(el("span", { className: `kind-${kind}`, attrs: { "data-kind": kind }, textContent: `${kind} ${formatRate(current)}/s` }));
  }
  $("chart").replaceChildren(...parts);
  $("legend").replaceChildren(...legend);
}

const formatRate = (value) => (value >= 10 || value === 0 ? value.toFixed(0) : value.toFixed(1));

// ----- small things ------------------------------------------------------------------

function boot() {
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("key-error").textContent = "";
    try {
      await useKey($("api-key").value.trim());
    } catch (err) {
      askKey(err.status === 401 ? "That API key was refused." : err.detail);
    }
  });
  $("forget").addEventListener("click", () => askKey(""));
  $("user-search").addEventListener("input", () => refresh());
  $("user-search").addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.target.value = "";
      refresh();
    }
  });
  const saved = sessionStorage.getItem(STORE);
  if (saved) useKey(saved).catch((err) => askKey(err.status === 401 ? "That API key was refused." : err.detail));
  else askKey("");
}

boot();
