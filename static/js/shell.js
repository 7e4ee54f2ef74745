// The shell on every page: the phone menu, and the global shortcuts (? help, / search).
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

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && topbar && topbar.classList.contains("nav-open")) {
    setMenu(false);
    toggle.focus();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target) || document.querySelector("dialog[open]")) return;
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
