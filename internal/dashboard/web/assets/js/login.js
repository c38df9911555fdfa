// The login form.
import { post, ApiError } from "./api.js";

const form = document.getElementById("login");
const error = document.getElementById("error");
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  error.textContent = "";
  const button = document.getElementById("submit");
  button.disabled = true;
  try {
    await post("login", { name: document.getElementById("name").value, password: document.getElementById("password").value });
    location.href = "/ui/";
  } catch (e) {
    error.textContent = e instanceof ApiError ? e.message : "The server did not answer.";
    const pw = document.getElementById("password");
    pw.value = "";
    pw.focus();
  } finally {
    button.disabled = false;
  }
});
