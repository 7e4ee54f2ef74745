// The board: drag and drop, keyboard moves, the move menu, the new-task dialog, filters.
// Moves are optimistic: the card moves at once and goes back with a message if refused.

// The board element is looked up on use: a live resync replaces it with a fresh copy.
const getBoard = () => document.getElementById("board");
const role = document.body.dataset.role;
const canEdit = role === "operator" || role === "admin";
const menu = document.getElementById("move-menu");
const toast = document.getElementById("toast");
const STATUSES = [...document.querySelectorAll("#board .cards")].map((l) => l.dataset.status);

function csrf() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

let toastTimer = null;
function say(message, kind = "error") {
  if (!toast) return;
  toast.textContent = message;
  toast.dataset.kind = kind;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toast.hidden = true), 5000);
}

function listOf(status) {
  return document.getElementById(`col-${status}-list`);
}

function cardId(card) {
  return Number(card.dataset.taskId);
}

// --- Moving -------------------------------------------------------------------------------------
async function move(card, toStatus, beforeCard) {
  const fromList = card.parentElement;
  const fromNext = card.nextElementSibling;
  const fromStatus = card.dataset.status;
  const targetList = listOf(toStatus);
  if (!targetList) return;
  // Optimistic: move now.
  if (beforeCard) targetList.insertBefore(card, beforeCard);
  else if (toStatus === "done" && fromStatus !== "done") targetList.prepend(card);
  else targetList.appendChild(card);
  card.dataset.status = toStatus;
  bumpCount(fromStatus, -1, toStatus);
  card.focus();

  const body = new URLSearchParams({ status: toStatus, version: card.dataset.version || "" });
  if (beforeCard) body.set("before", String(cardId(beforeCard)));
  const url = getBoard().dataset.moveUrl.replace("/0/", `/${cardId(card)}/`);
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(), "Accept": "application/json" },
    });
  } catch (err) {
    response = null;
  }
  let data = {};
  try {
    data = response ? await response.json() : {};
  } catch (err) {
    data = {};
  }
  if (response && response.ok) {
    card.dataset.version = String(data.task.version);
    return;
  }
  // Refused: put it back where it was and say why.
  if (fromList) {
    if (fromNext && fromNext.parentElement === fromList) fromList.insertBefore(card, fromNext);
    else fromList.appendChild(card);
  }
  card.dataset.status = fromStatus;
  bumpCount(toStatus, -1, fromStatus);
  card.focus();
  let message = "The move did not go through (network error). The card is back where it was.";
  if (response) {
    const detail = data.detail;
    if (typeof detail === "string") message = detail;
    else if (detail && typeof detail === "object") message = Object.values(detail).flat().map((d) => d.message || d).join(" ");
    else message = `The server refused the move (${response.status}).`;
  }
  say(message);
  // A conflict means our picture is out of date: reload the board in place to show the truth.
  if (response && response.status === 409 && window.mcLive) window.mcLive.resync({ seq: 0 });
}

function bumpCount(fromStatus, delta, toStatus) {
  if (fromStatus === toStatus) return;
  const from = document.getElementById(`count-${fromStatus}`);
  const to = document.getElementById(`count-${toStatus}`);
  if (from) from.textContent = String(Math.max(0, Number(from.textContent) + delta));
  if (to) to.textContent = String(Number(to.textContent) - delta);
}

function moveStep(card, step) {
  const list = card.parentElement;
  if (step < 0) {
    const prev = card.previousElementSibling;
    if (prev) move(card, card.dataset.status, prev);
  } else {
    const next = card.nextElementSibling;
    if (!next) return;
    move(card, card.dataset.status, next.nextElementSibling);
  }
  return list;
}

function moveColumn(card, delta) {
  const index = STATUSES.indexOf(card.dataset.status) + delta;
  if (index < 0 || index >= STATUSES.length) return;
  move(card, STATUSES[index], null);
}

// --- Drag and drop ------------------------------------------------------------------------------
let dragged = null;

function dropTarget(list, y) {
  const cards = [...list.querySelectorAll(".task-card:not(.dragging)")];
  return cards.find((c) => {
    const box = c.getBoundingClientRect();
    return y < box.top + box.height / 2;
  }) || null;
}

if (canEdit) {
  // Cards become draggable on first touch (fragments from live updates are role-neutral).
  document.addEventListener("pointerdown", (e) => {
    const card = e.target.closest("#board .task-card");
    if (card) card.draggable = true;
  });
  document.addEventListener("dragstart", (e) => {
    const card = e.target.closest && e.target.closest("#board .task-card");
    if (!card) return;
    dragged = card;
    card.classList.add("dragging");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", card.id);
  });
  document.addEventListener("dragend", () => {
    if (dragged) dragged.classList.remove("dragging");
    document.querySelectorAll(".drop-here").forEach((l) => l.classList.remove("drop-here"));
    dragged = null;
  });
  document.addEventListener("dragover", (e) => {
    const column = e.target.closest && e.target.closest("#board .column");
    if (!dragged || !column) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "move";
    document.querySelectorAll(".drop-here").forEach((l) => l !== column && l.classList.remove("drop-here"));
    column.classList.add("drop-here");
  });
  document.addEventListener("drop", (e) => {
    const column = e.target.closest && e.target.closest("#board .column");
    if (!dragged || !column) return;
    e.preventDefault();
    const list = column.querySelector(".cards");
    const before = dropTarget(list, e.clientY);
    const card = dragged;
    column.classList.remove("drop-here");
    if (before === card || (card.parentElement === list && card.nextElementSibling === before)) return;
    move(card, list.dataset.status, before);
  });
}

// --- Dispatch: hand the card's task to its agent (the run then shows on the card, live) ---------
async function dispatch(card) {
  if (!card.dataset.agent) {
    say("Assign the task to an agent first.");
    return;
  }
  const body = new URLSearchParams({ land_in: "review", nonce: `${cardId(card)}-${Date.now()}` });
  let response;
  try {
    response = await fetch(`/tasks/${cardId(card)}/dispatch/`, {
      method: "POST",
      body,
      headers: { "X-CSRFToken": csrf(), "HX-Request": "true" },
      credentials: "same-origin",
    });
  } catch {
    say("Not dispatched: the server cannot be reached.");
    return;
  }
  if (response.ok) say(`Dispatched to ${card.dataset.agent}.`, "ok");
  else say((await response.text()) || "Not dispatched.");
}

// --- Keyboard and the move menu ------------------------------------------------------------------
let menuCard = null;

function openMenu(card, anchor) {
  if (!menu) return;
  menuCard = card;
  menu.hidden = false;
  const box = (anchor || card).getBoundingClientRect();
  const viewH = document.documentElement.clientHeight;
  const viewW = document.documentElement.clientWidth;
  // Below the anchor when it fits, else above it; never off the screen (phones: a short screen).
  const below = box.bottom + 4;
  const above = box.top - 4 - menu.offsetHeight;
  const top = below + menu.offsetHeight <= viewH - 8 || above < 8 ? Math.min(below, Math.max(8, viewH - 8 - menu.offsetHeight)) : above;
  const left = Math.max(8, Math.min(box.left, viewW - menu.offsetWidth - 8));
  // CSSOM positioning (allowed by the CSP, unlike style attributes).
  menu.style.top = `${window.scrollY + top}px`;
  menu.style.left = `${window.scrollX + left}px`;
  menu.querySelectorAll("[data-move-to]").forEach((b) => (b.disabled = b.dataset.moveTo === card.dataset.status));
  const dispatchButton = menu.querySelector("[data-action=dispatch]");
  if (dispatchButton) dispatchButton.disabled = !card.dataset.agent;
  const first = menu.querySelector("button:not([disabled])");
  if (first) first.focus();
}

function closeMenu(refocus = true) {
  if (!menu || menu.hidden) return;
  menu.hidden = true;
  if (refocus && menuCard) menuCard.focus();
  menuCard = null;
}

if (menu) {
  menu.addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button || !menuCard) return;
    const card = menuCard;
    closeMenu(false);
    if (button.dataset.moveTo) move(card, button.dataset.moveTo, null);
    else if (button.dataset.action === "dispatch") dispatch(card);
    else moveStep(card, Number(button.dataset.moveStep));
  });
  menu.addEventListener("keydown", (e) => {
    const buttons = [...menu.querySelectorAll("button:not([disabled])")];
    const i = buttons.indexOf(document.activeElement);
    if (e.key === "Escape") { e.preventDefault(); closeMenu(); }
    else if (e.key === "ArrowDown") { e.preventDefault(); buttons[(i + 1) % buttons.length].focus(); }
    else if (e.key === "ArrowUp") { e.preventDefault(); buttons[(i - 1 + buttons.length) % buttons.length].focus(); }
    else if (e.key === "Tab") closeMenu(false);
  });
  document.addEventListener("click", (e) => {
    if (!menu.hidden && !menu.contains(e.target) && !e.target.closest("[data-action=move-menu]")) closeMenu(false);
  });
}

{
  document.addEventListener("click", (e) => {
    const button = e.target.closest("#board [data-action=move-menu]");
    if (!button || !canEdit) return;
    e.preventDefault();
    openMenu(button.closest(".task-card"), button);
  });
  document.addEventListener("keydown", (e) => {
    const card = e.target.closest("#board .task-card");
    if (!card || e.target !== card) return;
    if (e.key === "Enter") {
      card.querySelector(".card-title").click();
    } else if (!canEdit) {
      return;
    } else if (e.key === "d" || e.key === "D") {
      e.preventDefault();
      dispatch(card);
    } else if (e.key === "m" || e.key === "M") {
      e.preventDefault();
      openMenu(card, card.querySelector("[data-action=move-menu]"));
    } else if (e.altKey && e.key === "ArrowUp") {
      e.preventDefault(); moveStep(card, -1);
    } else if (e.altKey && e.key === "ArrowDown") {
      e.preventDefault(); moveStep(card, 1);
    } else if (e.altKey && e.key === "ArrowLeft") {
      e.preventDefault(); moveColumn(card, -1);
    } else if (e.altKey && e.key === "ArrowRight") {
      e.preventDefault(); moveColumn(card, 1);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const next = e.key === "ArrowDown" ? card.nextElementSibling : card.previousElementSibling;
      if (next) next.focus();
    } else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      e.preventDefault();
      const index = STATUSES.indexOf(card.dataset.status) + (e.key === "ArrowRight" ? 1 : -1);
      const list = listOf(STATUSES[index]);
      if (list && list.firstElementChild) list.firstElementChild.focus();
    }
  });
}

// --- New task dialog -----------------------------------------------------------------------------
const dialog = document.getElementById("new-task-dialog");
document.addEventListener("click", (e) => {
  if (e.target.closest("[data-action=new-task]") && dialog) {
    dialog.showModal();
    const title = dialog.querySelector("input[name=title]");
    if (title) title.focus();
  }
  if (e.target.closest("[data-action=close-dialog]") && dialog && dialog.open) dialog.close();
});
document.body.addEventListener("mc:task-created", () => {
  if (dialog && dialog.open) dialog.close();
  say("Task created.", "ok");
});
document.addEventListener("keydown", (e) => {
  const typing = e.target.closest("input, textarea, select, [contenteditable]");
  if (!typing && (e.key === "n" || e.key === "N") && dialog && !dialog.open && !e.ctrlKey && !e.metaKey && !e.altKey) {
    e.preventDefault();
    dialog.showModal();
    // The title, not the dialog's first button (✕): typing must not close it.
    const title = dialog.querySelector("input[name=title]");
    if (title) title.focus();
  }
});

// --- Load more keeps the column's "complete" flag right for live inserts ------------------------
document.body.addEventListener("htmx:afterSettle", () => {
  document.querySelectorAll(".column").forEach((column) => {
    const list = column.querySelector(".cards");
    const more = column.querySelector(".load-more button");
    if (list) list.dataset.complete = more ? "false" : "true";
  });
});
