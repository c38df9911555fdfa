// Domains: state, last query, delegation and DS check; analysts move them through
// the lifecycle (the change is in the audit log with their name).
import { get, post, query, n, h, when, relative } from "../api.js";

let state = null;

export async function render(root, { session, params }) {
  state = { root, session, case: params.get("case") || "", state: params.get("state") || "", q: params.get("q") || "", offset: 0 };
  const cs = await get("cases");
  root.innerHTML = `<h1>Domains</h1>
    <div class="controls">
      <label>Case <select id="dom-case"><option value="">all</option>${cs.cases.map((c) => `<option>${h(c.name)}</option>`).join("")}</select></label>
      <label>State <select id="dom-state"><option value="">all</option>${["listed", "restrained", "sinkholed", "transferred", "released"].map((s) => `<option>${s}</option>`).join("")}</select></label>
      <label>Name contains <input id="dom-q" type="search" size="20"></label>
    </div>
    ${session.changes ? `<form class="bulk" id="dom-bulk">
      <label>Move the selected domains to <select id="dom-to">${["restrained", "sinkholed", "transferred", "released"].map((s) => `<option>${s}</option>`).join("")}</select></label>
      <label>Reason (for the audit log) <input id="dom-reason" size="30"></label>
      <button type="submit" id="dom-apply">Change state</button>
      <span id="dom-result" role="status"></span></form>` : ""}
    <div id="dom-list"></div>
    <div class="pager"><button type="button" class="secondary" id="dom-prev">Previous</button><button type="button" class="secondary" id="dom-next">Next</button></div>`;
  for (const [id, key] of [["#dom-case", "case"], ["#dom-state", "state"], ["#dom-q", "q"]]) {
    const e = root.querySelector(id);
    e.value = state[key];
    e.addEventListener("change", () => { state[key] = e.value; state.offset = 0; load(); });
  }
  root.querySelector("#dom-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - 100); load(); });
  root.querySelector("#dom-next").addEventListener("click", () => { state.offset += 100; load(); });
  root.querySelector("#dom-bulk")?.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const names = [...root.querySelectorAll("input.pick:checked")].map((c) => c.value);
    const out = root.querySelector("#dom-result");
    if (!names.length) { out.textContent = "Select domains first."; return; }
    try {
      const r = await post("domains/state", { names, to: root.querySelector("#dom-to").value, reason: root.querySelector("#dom-reason").value });
      out.className = "ok";
      out.textContent = `${n(r.domains.length)} domain(s) now ${root.querySelector("#dom-to").value}.`;
      await load();
    } catch (e) {
      out.className = "error";
      out.textContent = e.message;
    }
  });
  await load();
}

function delegation(x) {
  if (!x) return '<span class="muted">not checked</span>';
  const ns = x.ns.map(h).join(", ") + (x.addrs && x.addrs.length ? ` (${x.addrs.map(h).join(", ")})` : "");
  return (x.verified ? '<span class="ok">✓ ours</span>' : `<span class="bad">✗ ${h(x.problem || "not ours")}</span>`) +
    `<br><small>${ns || "no NS"}; ${when(x.checked_at)}</small>`;
}

// dnssec: what the DS records at the parent mean for validating resolvers.
function dnssec(x) {
  if (!x || !x.ds_state) return '<span class="muted">not checked</span>';
  const ds = (x.ds || []).map((r) => `<br><small>DS ${h(r)}</small>`).join("");
  switch (x.ds_state) {
    case "stale": return `<span class="bad">✗ stale DS: validating resolvers SERVFAIL; ask the registry to remove it</span>${ds}`;
    case "signed": return `<span class="ok">✓ signed, our DS</span>${ds}`;
    case "unsigned": return '<span class="ok">✓ unsigned</span>';
    default: return `<span class="bad">? DS not read: ${h(x.ds_problem || "")}</span>`;
  }
}

async function load() {
  const { root, session } = state;
  const d = await get("domains" + query({ case: state.case, state: state.state, q: state.q, offset: state.offset, limit: 100 }));
  const box = root.querySelector("#dom-list");
  box.innerHTML = `<table id="domains-table"><caption>Domains ${n(d.offset + 1)} to ${n(d.offset + d.domains.length)}${d.more ? " (more on the next page)" : ""}</caption>
    <thead><tr>${session.changes ? '<th scope="col"><span class="sr-only">Select</span></th>' : ""}<th scope="col">Domain</th><th scope="col">Case</th>
    <th scope="col">State</th><th scope="col">Since</th><th scope="col">Last query</th><th scope="col" class="num">Queries, ${d.days} days</th>
    <th scope="col">Delegation</th><th scope="col">DNSSEC</th></tr></thead><tbody>` +
    d.domains.map((x) => `<tr data-domain="${h(x.name)}">${session.changes ? `<td><input type="checkbox" class="pick" value="${h(x.name)}" aria-label="Select ${h(x.name)}"${x.next.length ? "" : " disabled"}></td>` : ""}
      <td>${h(x.name)}</td><td>${h(x.case)}</td><td><span class="state" data-state="${h(x.state)}">${h(x.state)}</span></td>
      <td>${when(x.state_since)}</td><td>${x.last_query ? `${when(x.last_query)}<br><small>${relative(x.last_query)}</small>` : '<span class="muted">none</span>'}</td>
      <td class="num">${n(x.queries)}</td><td>${delegation(x.delegation)}</td><td class="dnssec">${dnssec(x.delegation)}</td></tr>`).join("") + "</tbody></table>";
  root.querySelector("#dom-prev").disabled = d.offset === 0;
  root.querySelector("#dom-next").disabled = !d.more;
}
