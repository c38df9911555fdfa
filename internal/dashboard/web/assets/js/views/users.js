// Users, for admins: add, change the role, disable.
import { get, post, patch, h, when } from "../api.js";

export async function render(root) {
  const d = await get("users");
  root.innerHTML = `<h1>Users</h1>
    <table id="users-table"><caption>People who may log in</caption><thead><tr><th scope="col">Name</th><th scope="col">Role</th>
      <th scope="col">Last login</th><th scope="col">Disabled</th></tr></thead><tbody>` +
    d.users.map((u) => `<tr><td>${h(u.name)}</td><td><select data-user="${h(u.name)}" class="role" aria-label="Role of ${h(u.name)}">` +
      ["viewer", "analyst", "admin"].map((r) => `<option${r === u.role ? " selected" : ""}>${r}</option>`).join("") + `</select></td>
      <td>${when(u.last_login)}</td><td><input type="checkbox" class="disabled" data-user="${h(u.name)}" aria-label="${h(u.name)} disabled"${u.disabled ? " checked" : ""}></td></tr>`).join("") +
    `</tbody></table>
    <form id="user-add" class="card side bulk">
      <label>Name <input id="ua-name" required></label>
      <label>Role <select id="ua-role"><option>viewer</option><option>analyst</option><option>admin</option></select></label>
      <label>Password (10 characters or more) <input id="ua-password" type="password" autocomplete="new-password" required></label>
      <button type="submit">Add user</button>
    </form><p id="users-result" role="status"></p>`;
  const out = root.querySelector("#users-result");
  const done = async (p) => {
    try { await p; await render(root); root.querySelector("#users-result").textContent = "Saved."; } catch (e) { out.className = "error"; out.textContent = e.message; }
  };
  root.querySelector("#user-add").addEventListener("submit", (ev) => {
    ev.preventDefault();
    done(post("users", { name: root.querySelector("#ua-name").value, role: root.querySelector("#ua-role").value, password: root.querySelector("#ua-password").value }));
  });
  for (const s of root.querySelectorAll("select.role")) s.addEventListener("change", () => done(patch("users/" + encodeURIComponent(s.dataset.user), { role: s.value })));
  for (const c of root.querySelectorAll("input.disabled")) c.addEventListener("change", () => done(patch("users/" + encodeURIComponent(c.dataset.user), { disabled: c.checked })));
}
