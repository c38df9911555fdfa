// Talking to /ui/api/ and formatting what it says.

let csrf = "";

// setCSRF keeps the session's CSRF token for the changes.
export function setCSRF(token) { csrf = token; }

// ApiError is an answer other than 2xx, with the server's message.
export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(method, path, body) {
  const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
  const res = await fetch("/ui/api/" + path, opts);
  if (res.status === 401 && !path.startsWith("login")) {
    location.href = "/ui/login";
    throw new ApiError(401, "not logged in");
  }
  let data = null;
  try { data = await res.json(); } catch { /* no body */ }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || res.statusText);
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const patch = (path, body) => call("PATCH", path, body);

// query builds "?a=1&b=2" of the non-empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

const nf = new Intl.NumberFormat("en-US");
// n writes a number with thousands separators: 12,345.
export const n = (v) => nf.format(v ?? 0);

// h escapes text for HTML.
export function h(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// when writes a time as UTC: 2026-03-01 14:05 UTC.
export function when(t) {
  if (!t) return "—";
  const d = new Date(t);
  if (isNaN(d) || d.getUTCFullYear() < 1900) return "—";
  return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

// ago writes how long ago or ahead t is: "in 3 days", "5 hours ago".
export function relative(t, now = Date.now()) {
  const ms = new Date(t).getTime() - now;
  const abs = Math.abs(ms);
  const units = [["day", 86400000], ["hour", 3600000], ["minute", 60000]];
  let text = "now";
  for (const [u, size] of units) {
    if (abs >= size) {
      const v = Math.floor(abs / size);
      text = `${v} ${u}${v === 1 ? "" : "s"}`;
      break;
    }
  }
  if (text === "now") return text;
  return ms >= 0 ? "in " + text : text + " ago";
}

// el makes an element from HTML.
export function el(html) {
  const t = document.createElement("template");
  t.innerHTML = html.trim();
  return t.content.firstElementChild;
}
