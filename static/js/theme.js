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
  const button = event.target.closest("#theme-toggle");
  if (button) apply(current() === "dark" ? "light" : "dark");
});
