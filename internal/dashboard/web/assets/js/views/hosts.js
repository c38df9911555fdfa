// The list of infected addresses, for analysts and admins; every read is
// in the audit log.
import { get, query, n, h, when } from "../api.js";

export async function hostsTable(box, params) {
  box.innerHTML = "<p>Loading…</p>";
  try {
    const d = await get("hosts" + query(params));
    box.innerHTML = `<p class="muted">This list is personal data; your reading it is in the audit log.</p>
      <div class="scroll"><table id="hosts-table"><caption>Infected hosts (${n(d.hosts.length)}${d.hosts.length >= d.limit ? ", the first" : ""})</caption>
      <thead><tr><th scope="col">Address</th><th scope="col">Family</th><th scope="col">Network</th><th scope="col">Place</th>
      <th scope="col" class="num">Events</th><th scope="col">Last seen</th></tr></thead><tbody>` +
      d.hosts.map((x) => `<tr><td><code>${h(x.ip)}</code></td><td>${h(x.family)}</td><td>AS${x.asn} ${h(x.as_name)}</td>
        <td>${h(x.city)} ${h(x.cc)}</td><td class="num">${n(x.events)}</td><td>${when(x.last_seen)}</td></tr>`).join("") +
      "</tbody></table></div>";
  } catch (e) {
    box.innerHTML = `<p class="error" role="alert">${h(e.message)}</p>`;
  }
}
