// "Last seen 12 s ago" that stays live: every element with data-seen shows its age.
function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function tick() {
  document.querySelectorAll("[data-seen]").forEach((el) => {
    const label = el.querySelector(".seen-ago");
    if (label) label.textContent = ago(el.dataset.seen);
  });
}

tick();
setInterval(tick, 1000);

// A session's transcript opens at its newest line, and follows new ones while the reader is at
// the end (not when they scrolled up to read).
const transcript = document.querySelector(".transcript");
let atEnd = true;
if (transcript) {
  transcript.scrollTop = transcript.scrollHeight;
  transcript.addEventListener("scroll", () => {
    atEnd = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
  });
  document.addEventListener("mc:live", () => {
    if (atEnd) transcript.scrollTop = transcript.scrollHeight;
  });
}
document.addEventListener("mc:live", tick);
