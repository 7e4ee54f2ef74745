// The page's live connection: WebSocket (SSE fallback), pause when hidden, exact catch-up.
//
// Protocol (see missioncontrol/live.py): the server sends {type:"event", seq, prev, topic,
// event, payload}, {type:"ready", seq}, or {type:"resync", topics, seq}. Every event carries
// DOM ops that are idempotent, so a replayed duplicate does no harm; we still skip seq we saw.

const meta = document.querySelector('meta[name="mc-live"]');
const statusEl = document.getElementById("live-status");

const LABELS = { connecting: "Connecting", live: "Live", paused: "Paused", reconnecting: "Reconnecting", offline: "Offline" };

// Where WebSockets never opened (a proxy not forwarding the upgrade), this tab remembers it and
// goes straight to Server-Sent Events on every later page instead of ~2.5 s of "Reconnecting".
const MODE_KEY = "mc-live-mode";
function rememberedMode() {
  try {
    return window.sessionStorage.getItem(MODE_KEY) === "sse" ? "sse" : "ws";
  } catch (err) {
    return "ws";
  }
}

const state = {
  seq: meta ? Number(meta.content) || 0 : 0,
  socket: null,
  source: null,
  mode: rememberedMode(),
  reportFallback: false, // tell the server once (its Deployment page names the proxy fix)
  attempts: 0,
  wsOpenedOnce: false,
  wsFailures: 0,
  paused: false,
  pauseTimer: null,
  retryTimer: null,
  resyncing: null, // events buffered while panels reload
};
const graceMs = meta ? Number(meta.dataset.graceMs || 10000) : 10000;

function setStatus(name) {
  if (!statusEl) return;
  statusEl.dataset.state = name;
  const sse = name === "live" && state.mode === "sse";
  const label = statusEl.querySelector(".live-label");
  if (label) label.textContent = sse ? "Live (SSE)" : LABELS[name] || name;
  statusEl.title = sse
    ? "Live over Server-Sent Events: WebSocket connections did not get through (a proxy not forwarding the upgrade?). Updates still arrive."
    : "";
  document.documentElement.dataset.live = name;
}

function fallBackToSse() {
  state.mode = "sse";
  state.reportFallback = true;
  try {
    window.sessionStorage.setItem(MODE_KEY, "sse");
  } catch (err) {
    // private mode without storage: this page still uses SSE
  }
}

function topics() {
  const names = new Set();
  document.querySelectorAll("[data-live-topic]").forEach((el) => {
    el.dataset.liveTopic.split(",").forEach((t) => t && names.add(t.trim()));
  });
  return [...names];
}

function fragment(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

function activate(el) {
  if (window.htmx && el) window.htmx.process(el);
}

// A <details> the reader opened inside a replaced element stays open: with what it loaded
// while the element's state (its class) is unchanged, loaded afresh (its toggle) when it moved.
function keepOpen(existing, el) {
  const same = existing.className.replace(" live-new", "") === el.className.replace(" live-new", "");
  for (const was of existing.querySelectorAll("details[open][id]")) {
    const now = el.querySelector(`#${CSS.escape(was.id)}`);
    if (!now) continue;
    if (same) now.replaceWith(was);
    else now.open = true;
  }
}

// --- DOM ops -------------------------------------------------------------------------------
const OPS = {
  upsert(op) {
    const existing = document.getElementById(op.id);
    const hadFocus = existing && existing.contains(document.activeElement);
    const el = op.html ? fragment(op.html) : existing;
    if (!el) return;
    if (op.parent) {
      const parent = document.getElementById(op.parent);
      if (existing && existing !== el) existing.remove();
      if (!parent) return;
      // A list that shows only its first N items (data-complete="false") takes a card only
      // where its neighbour is loaded; past the loaded part it stays on the server.
      const complete = parent.dataset.complete !== "false";
      let before = null;
      if (op.first) before = parent.firstElementChild;
      else if (op.before) {
        before = document.getElementById(op.before);
        if (before && before.parentElement !== parent) before = null;
        if (!before && !complete) return;
      } else if (!complete) return;
      if (before && before !== el) parent.insertBefore(el, before);
      else if (!before) parent.appendChild(el);
      if (op.limit) while (parent.children.length > op.limit) parent.lastElementChild.remove();
    } else if (existing && existing !== el) {
      existing.replaceWith(el);
    } else {
      return;
    }
    if (el !== existing) {
      el.classList.add("live-new");
      activate(el);
      if (existing) keepOpen(existing, el);
      if (hadFocus) el.focus();
    }
  },
  remove(op) {
    const el = document.getElementById(op.id);
    if (el) el.remove();
  },
  text(op) {
    const el = document.getElementById(op.id);
    if (el) el.textContent = op.text;
  },
  attr(op) {
    const el = document.getElementById(op.id);
    if (!el) return;
    if (op.value === null || op.value === undefined) el.removeAttribute(op.name);
    else el.setAttribute(op.name, op.value);
  },
};

let refetchTimer = null;

// `[data-live-fetch=URL][data-live-topic=T][id]`: a piece whose content is each person's own
// (the spend chip: today's spend over the gateways they see), fetched again from its URL when an
// event of its topic arrives — at most once a second.
const pieceTimers = {};
function refetchPieces(topic) {
  document.querySelectorAll("[data-live-fetch][id]").forEach((piece) => {
    const wanted = piece.dataset.liveTopic.split(",").map((t) => t.trim());
    if (!wanted.includes(topic) || pieceTimers[piece.id]) return;
    pieceTimers[piece.id] = setTimeout(async () => {
      delete pieceTimers[piece.id];
      try {
        const response = await fetch(piece.dataset.liveFetch, { credentials: "same-origin" });
        if (!response.ok) return;
        const fresh = fragment(await response.text());
        const now = document.getElementById(piece.id);
        if (fresh && now) now.replaceWith(fresh);
      } catch (err) {
        // Offline for a moment: the next event, or the next resync, brings it.
      }
    }, 1000);
  });
}

function applyEvent(msg) {
  if (msg.seq <= state.seq) return;
  // A filtered panel (or the overview) cannot tell whether a change belongs in it: reload it
  // instead — throttled, not debounced: the first event schedules one reload 250 ms later and
  // the events after it ride along, so a steady stream (50 events/s) still refreshes the page
  // four times a second instead of never.
  if (document.querySelector(`[data-live-refetch~="${msg.topic}"]`)) {
    state.seq = msg.seq;
    if (!refetchTimer) {
      refetchTimer = setTimeout(() => {
        refetchTimer = null;
        resync({ seq: state.seq });
      }, 250);
    }
    return;
  }
  state.seq = msg.seq;
  refetchPieces(msg.topic);
  const ops = (msg.payload && msg.payload.ops) || [];
  for (const op of ops) {
    try {
      (OPS[op.op] || (() => {}))(op);
    } catch (err) {
      console.error("live: op failed", op, err);
    }
  }
  document.dispatchEvent(new CustomEvent("mc:live", { detail: msg }));
}

// --- Resync: reload the live panels in place (no full page reload) ----------------------------
async function resync(msg) {
  if (state.resyncing) return;
  state.resyncing = [];
  try {
    const response = await fetch(window.location.href, { headers: { "X-MC-Resync": "1" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`resync fetch ${response.status}`);
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    document.querySelectorAll("[data-live-topic][id]").forEach((panel) => {
      const fresh = doc.getElementById(panel.id);
      if (fresh) {
        panel.replaceWith(fresh);
        activate(fresh);
      }
    });
    const freshMeta = doc.querySelector('meta[name="mc-live"]');
    const freshSeq = freshMeta ? Number(freshMeta.content) || 0 : msg.seq;
    state.seq = freshSeq;
    const buffered = state.resyncing;
    state.resyncing = null;
    buffered.filter((m) => m.seq > freshSeq).forEach(applyEvent);
    document.dispatchEvent(new CustomEvent("mc:resync", { detail: { seq: freshSeq } }));
  } catch (err) {
    console.error("live: resync failed, reloading the page", err);
    window.location.reload();
  }
}

function handle(msg) {
  if (msg.type === "event") {
    if (state.resyncing) state.resyncing.push(msg);
    else applyEvent(msg);
  } else if (msg.type === "resync") {
    resync(msg);
  } else if (msg.type === "ready") {
    state.attempts = 0;
    setStatus("live");
  }
}

// --- Transport --------------------------------------------------------------------------------
function url(path) {
  const params = new URLSearchParams({ topics: topics().join(","), since: String(state.seq) });
  if (path === "/events/stream" && state.reportFallback) {
    params.set("fallback", "ws");
    state.reportFallback = false;
  }
  return `${path}?${params}`;
}

function connect() {
  clearTimeout(state.retryTimer);
  if (state.paused || !topics().length) {
    if (!topics().length) setStatus("live");
    return;
  }
  if (!navigator.onLine) {
    setStatus("offline");
    return;
  }
  if (state.mode === "sse") return connectSse();
  const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
  let socket;
  try {
    socket = new WebSocket(`${proto}//${window.location.host}${url("/ws/live/")}`);
  } catch (err) {
    // No WebSocket here (blocked by a proxy or policy): Server-Sent Events instead.
    fallBackToSse();
    return connectSse();
  }
  state.socket = socket;
  socket.onopen = () => {
    state.wsOpenedOnce = true;
    state.wsFailures = 0;
  };
  socket.onmessage = (e) => {
    try {
      handle(JSON.parse(e.data));
    } catch (err) {
      console.error("live: bad message", err);
    }
  };
  socket.onclose = (e) => {
    if (state.socket !== socket) return;
    state.socket = null;
    if (state.paused) return;
    if (!state.wsOpenedOnce) state.wsFailures += 1;
    if (state.wsFailures >= 3) fallBackToSse(); // WebSocket blocked somewhere: use SSE
    if (e.code === 4401 || e.code === 4403) {
      window.location.reload(); // signed out or role removed: let the server decide the page
      return;
    }
    retry();
  };
}

function connectSse() {
  const source = new EventSource(url("/events/stream"));
  state.source = source;
  source.onopen = () => {
    state.attempts = 0;
  };
  source.onmessage = (e) => {
    try {
      handle(JSON.parse(e.data));
    } catch (err) {
      console.error("live: bad message", err);
    }
  };
  source.onerror = () => {
    if (state.source !== source) return;
    source.close();
    state.source = null;
    if (!state.paused) retry();
  };
}

function retry() {
  setStatus(navigator.onLine ? "reconnecting" : "offline");
  state.attempts += 1;
  // Exponential back-off with jitter, capped: many tabs do not reconnect in step.
  const base = Math.min(15000, 500 * 2 ** Math.min(state.attempts - 1, 5));
  const delay = base / 2 + Math.random() * (base / 2);
  state.retryTimer = setTimeout(connect, delay);
}

function disconnect() {
  const { socket, source } = state;
  state.socket = null;
  state.source = null;
  if (socket) socket.close(1000, "paused");
  if (source) source.close();
}

// --- Hidden tab: stop after a grace period; catch up exactly on return -------------------------
function onVisibility() {
  if (document.hidden) {
    clearTimeout(state.pauseTimer);
    state.pauseTimer = setTimeout(() => {
      state.paused = true;
      clearTimeout(state.retryTimer);
      disconnect();
      setStatus("paused");
    }, graceMs);
  } else {
    clearTimeout(state.pauseTimer);
    if (state.paused) {
      state.paused = false;
      state.attempts = 0;
      setStatus("reconnecting");
      connect();
    }
  }
}

document.addEventListener("visibilitychange", onVisibility);
window.addEventListener("online", () => {
  if (!state.socket && !state.source && !state.paused) connect();
});
window.addEventListener("offline", () => setStatus("offline"));

// Let page modules tell the connection about new topics (e.g. a panel loaded by htmx).
document.addEventListener("mc:topics-changed", () => {
  disconnect();
  connect();
});

window.mcLive = { state, applyEvent, resync, setStatus };
connect();
if (document.hidden) onVisibility();
