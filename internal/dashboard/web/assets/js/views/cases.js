// Cases: court orders with their deadlines, counting down.
import { get, n, h, when, relative } from "../api.js";

let timer = null;

export async function render(root) {
  const d = await get("cases");
  const countdown = (t) => `<time datetime="${h(t)}" data-due="${h(t)}">${relative(endOfDay(t))}</time>`;
  root.innerHTML = `<h1>Cases</h1>
    <section class="card"><h2>Next deadlines</h2>
    ${d.deadlines.length ? `<table id="deadlines-table"><caption>Deadlines of the next year, soonest first (a deadline is a whole UTC day)</caption>
      <thead><tr><th scope="col">Due</th><th scope="col">Left</th><th scope="col">Case</th><th scope="col">Order</th><th scope="col">Kind</th></tr></thead><tbody>` +
      d.deadlines.map((x) => `<tr><td>${h(x.due.slice(0, 10))}</td><td>${countdown(x.due)}</td><td>${h(x.case)}</td>
        <td>${h(x.order_type)} ${h(x.reference || "")}</td><td>${h(x.kind)}</td></tr>`).join("") + "</tbody></table>"
      : `<p class="muted">No deadline in the next year.</p>`}
    ${d.stale_ds.length ? `<p class="bad" id="stale-ds" role="alert">Stale DS records at the parent of ${n(d.stale_ds.length)} domain(s): validating resolvers answer SERVFAIL for them
      until their registry removes (or replaces) the DS records; the registrars' packages say what to ask:
      ${d.stale_ds.map((x) => `<a href="#/domains?q=${encodeURIComponent(x.name)}">${h(x.name)}</a> (${h(x.case)})`).join(", ")}.</p>` : ""}</section>` +
    d.cases.map((c) => `<section class="card side" aria-labelledby="case-${h(c.name)}">
      <h2 id="case-${h(c.name)}">${h(c.title || c.name)} <span class="muted">(${h(c.name)})</span></h2>
      <p>${h(c.court)}, docket ${h(c.docket)}${c.family ? `; family ${h(c.family)}` : ""}.
        Domains: ${Object.entries(c.domains || {}).map(([s, k]) => `${n(k)} ${h(s)}`).join(", ") || "none"}.</p>
      <table><caption>Court orders of ${h(c.name)}</caption><thead><tr><th scope="col">Order</th><th scope="col">Issued</th>
        <th scope="col">Objection deadline</th><th scope="col">Expires</th></tr></thead><tbody>` +
      (c.orders || []).map((o) => `<tr><td>${h(o.type)} ${h(o.reference || "")}</td><td>${h(o.issued.slice(0, 10))}</td>
        <td>${o.objection_deadline ? `${h(o.objection_deadline.slice(0, 10))} (${countdown(o.objection_deadline)})` : "—"}</td>
        <td>${o.expires ? `${h(o.expires.slice(0, 10))} (${countdown(o.expires)})` : "—"}</td></tr>`).join("") +
      `</tbody></table></section>`).join("") +
    `<p class="muted">As of ${when(d.now)}.</p>`;
  clearInterval(timer);
  timer = setInterval(() => {
    if (!document.body.contains(root.querySelector("time[data-due]"))) { clearInterval(timer); return; }
    for (const t of root.querySelectorAll("time[data-due]")) t.textContent = relative(endOfDay(t.dataset.due));
  }, 30000);
}

// endOfDay: a deadline day lasts until its end, UTC.
function endOfDay(t) { return new Date(new Date(t).getTime() + 86400000 - 1); }
