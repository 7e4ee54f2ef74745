// The shell on every page: the phone menu, the global shortcuts (? help, / search, and "g"
// then a letter to jump to a section), and the behaviours any page's markup may ask for:
// `form[data-autosubmit]` submits when a choice changes (the gateway switch, filters: each a
// plain form that works without JS), `form[data-confirm]` asks before it submits.
const topbar = document.querySelector(".topbar");
const toggle = document.getElementById("nav-toggle");

function setMenu(open) {
  if (!topbar || !toggle) return;
  topbar.classList.toggle("nav-open", open);
  toggle.setAttribute("aria-expanded", String(open));
}

document.addEventListener("click", (e) => {
  if (e.target.closest("#nav-toggle")) {
    setMenu(!topbar.classList.contains("nav-open"));
    return;
  }
  if (topbar && topbar.classList.contains("nav-open") && !e.target.closest(".nav")) setMenu(false);
  if (e.target.closest("[data-action=close-shortcuts]")) document.getElementById("shortcuts-dialog").close();
});

function typing(target) {
  return target.closest("input, textarea, select, [contenteditable=true]") !== null;
}

// "g" then a letter: the section's page, if the navigation offers it to this user.
const JUMPS = { o: "/", b: "/board/", t: "/tasks/", a: "/agents/", s: "/sessions/", c: "/costs/", w: "/gateways/", j: "/crons/" };
let jumpUntil = 0;

function jump(key) {
  const path = JUMPS[key];
  if (!path) return false;
  const link = document.querySelector(`#nav-sections a[href="${path}"]`);
  if (!link) return false;
  window.location.assign(link.href);
  return true;
}

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && topbar && topbar.classList.contains("nav-open")) {
    setMenu(false);
    toggle.focus();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target) || document.querySelector("dialog[open]")) return;
  if (jumpUntil && Date.now() < jumpUntil) {
    jumpUntil = 0;
    if (jump(e.key.toLowerCase())) e.preventDefault();
    return;
  }
  if (e.key === "g") {
    jumpUntil = Date.now() + 1500;
    return;
  }
  if (e.key === "?") {
    e.preventDefault();
    document.getElementById("shortcuts-dialog").showModal();
  } else if (e.key === "/") {
    const search = document.querySelector("main input[type=search]");
    if (search) {
      e.preventDefault();
      search.focus();
      search.select();
    }
  }
});

// Delegated, so forms swapped in later (htmx, live) behave the same.
document.addEventListener("change", (e) => {
  const form = e.target.form;
  if (!form || !form.hasAttribute("data-autosubmit")) return;
  if (e.target.matches("select, input[type=checkbox], input[type=radio], input[type=date]")) form.requestSubmit();
});
document.addEventListener("submit", (e) => {
  const message = e.target.dataset.confirm;
  if (message && !window.confirm(message)) e.preventDefault();
});

// `[data-shown-when="name=a,b"]`: a field that applies only to some choices of another (a
// budget's agent when it covers one agent; an enrollment key's registrations) is hidden while
// another is chosen. Without scripts every field shows; the server ignores what does not apply.
function applyShownWhen(root) {
  root.querySelectorAll("[data-shown-when]").forEach((el) => {
    const form = el.closest("form");
    const [name, values] = el.dataset.shownWhen.split("=");
    const control = form && form.elements.namedItem(name);
    if (!control) return;
    el.hidden = !values.split(",").includes(control.value);
  });
}
applyShownWhen(document);
document.addEventListener("change", (e) => {
  if (e.target.form) applyShownWhen(e.target.form);
});
document.addEventListener("htmx:afterSwap", (e) => applyShownWhen(e.target));

// `[data-copy=ID]`: copies the text of the element with that id (a new key, a snippet).
document.addEventListener("click", async (e) => {
  const button = e.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch (err) {
    // No clipboard (an insecure origin): select the text for Ctrl+C instead.
    window.getSelection().selectAllChildren(source);
    button.textContent = "Press Ctrl+C";
  }
});

// A refused htmx action (abort, retry: hx-swap="none") says why, in the page's toast: the
// server answers such requests with the reason as plain text (4xx; HTML answers are swapped).
let toastTimer = null;
document.body.addEventListener("htmx:afterRequest", (e) => {
  const toast = document.getElementById("toast");
  const xhr = e.detail.xhr;
  if (!toast || !xhr || xhr.status < 400) return;
  const plain = (xhr.getResponseHeader("Content-Type") || "").startsWith("text/plain");
  if (!plain && xhr.status < 500 && xhr.status !== 0) return;
  toast.textContent = (plain && xhr.responseText.trim().slice(0, 300)) || "That did not work: try again.";
  toast.dataset.kind = "error";
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toast.hidden = true), 6000);
});
