// Theme switch: light / dark, remembered in a cookie so the server renders the right one first.
const root = document.documentElement;

function current() {
  const set = root.dataset.theme;
  if (set === "light" || set === "dark") return set;
  return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function apply(theme) {
  root.dataset.theme = theme;
  document.cookie = `mc_theme=${theme}; path=/; max-age=31536000; samesite=lax`;
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("#theme-toggle, [data-action=toggle-theme]");
  if (button) apply(current() === "dark" ? "light" : "dark");
});

// The user's time zone, for the server to render times in (missioncontrol/middleware.py).
try {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const had = document.cookie.split("; ").find((c) => c.startsWith("mc_tz="));
  if (zone && had !== `mc_tz=${zone}`) {
    document.cookie = `mc_tz=${zone}; path=/; max-age=31536000; samesite=lax`;
  }
} catch (err) {
  // No Intl time zone here: the server's MC_TIME_ZONE applies.
}
