// The route's HTTP API as the two pages use it: JSON in and out, errors as ApiError.
// Shared by chat.js and admin.js (an ES module; no build step).

export const API = "/api/v1";

/** An error answer ({error, detail}) or a network failure (status 0, code "network"). */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.detail = detail || code;
  }
}

/**
 * One call of `API + path`. `auth` is {token} (a user) or {apiKey} (an operator); `body` is sent as JSON;
 * `query` is an object of search parameters (empty values left out). Resolves to the
 * decoded answer, or null for 204.
 */
export async function call(method, path, { auth = {}, body, query } = {}) {
  const headers = { Accept: "application/json" };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  if (auth.apiKey) headers["X-API-Key"] = auth.apiKey;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let url = API + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += "?" + text;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "network", "the route cannot be reached");
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const answer = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const code = (answer && answer.error) || `http_${response.status}`;
    throw new ApiError(response.status, code, (answer && answer.detail) || response.statusText);
  }
  return answer;
}

/** A random id for client_msg_id (crypto.randomUUID needs a secure context; this does not). */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** document.createElement with properties, attributes (`attrs`) and children in one call. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { attrs, ...rest } = props;
  Object.assign(node, rest);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** "14:03", or "Mon 14:03" / "3 Dec 14:03" for older times. */
export function clock(ts) {
  const date = new Date(ts);
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const age = Date.now() - ts;
  if (age < 0 || new Date().toDateString() === date.toDateString()) return time;
  if (age < 6 * 86400000) return date.toLocaleDateString([], { weekday: "short" }) + " " + time;
  return date.toLocaleDateString([], { day: "numeric", month: "short" }) + " " + time;
}

let toastTimer = null;

/** Show ``text`` in the page's ``#toast`` box for 4 s (both pages have one). */
export function toast(text) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), 4000);
}
