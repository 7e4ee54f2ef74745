// The command palette: Ctrl+K (⌘K) anywhere, type a name, Enter opens the task, agent, session
// or scheduled job. Results come from /search/ (what this user may see).
const dialog = document.getElementById("palette");
const input = dialog ? dialog.querySelector("input") : null;
const list = dialog ? dialog.querySelector("ol") : null;
let timer = null;
let active = -1;
let asked = 0;

function items() {
  return list ? [...list.querySelectorAll("a")] : [];
}

function mark(index) {
  const links = items();
  if (!links.length) return;
  active = (index + links.length) % links.length;
  links.forEach((a, i) => a.setAttribute("aria-selected", String(i === active)));
  links[active].scrollIntoView({ block: "nearest" });
}

function show(results) {
  list.replaceChildren();
  for (const r of results) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = r.url;
    a.setAttribute("role", "option");
    const kind = document.createElement("span");
    kind.className = "badge palette-kind";
    kind.textContent = r.kind;
    const title = document.createElement("span");
    title.className = "palette-title";
    title.textContent = r.title;
    const hint = document.createElement("span");
    hint.className = "muted small";
    hint.textContent = r.hint || "";
    a.append(kind, title, hint);
    li.append(a);
    list.append(li);
  }
  if (!results.length && input.value.trim()) {
    const li = document.createElement("li");
    li.className = "muted small palette-empty";
    li.textContent = "Nothing by that name.";
    list.append(li);
  }
  active = -1;
  if (results.length) mark(0);
}

async function ask() {
  const q = input.value.trim();
  const mine = ++asked;
  if (!q) return show([]);
  const response = await fetch(`/search/?q=${encodeURIComponent(q)}`, { credentials: "same-origin" });
  if (!response.ok || mine !== asked) return;
  show((await response.json()).results || []);
}

function open() {
  if (!dialog || dialog.open) return;
  dialog.showModal();
  input.value = "";
  show([]);
  input.focus();
}

if (dialog) {
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") {
      e.preventDefault();
      open();
    }
  });
  document.addEventListener("click", (e) => {
    if (e.target.closest("[data-action=open-palette]")) open();
  });
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(ask, 120);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") {
      e.preventDefault();
      mark(active + 1);
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      mark(active - 1);
    } else if (e.key === "Enter") {
      const links = items();
      if (links[active]) {
        e.preventDefault();
        window.location.assign(links[active].href);
      }
    }
  });
  dialog.addEventListener("click", (e) => {
    if (e.target === dialog) dialog.close();
  });
}
