// "Turn on browser notifications" on /account/notifications/: register the service worker, ask
// for permission, subscribe with the server's VAPID key, and hand the subscription to the
// server (a channel of yours). Every failure is said in words next to the button.
"use strict";

function csrf() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function keyBytes(base64url) {
  const padded = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function browserName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrome\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  return os ? `${browser} on ${os}` : browser;
}

async function turnOn(button, status) {
  const say = (text) => { status.textContent = text; };
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    say("This browser cannot receive push notifications (on iPhone and iPad: add Mission Control to the home screen first).");
    return;
  }
  button.disabled = true;
  try {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      say("Notifications are blocked for this site: allow them in the browser's site settings, then try again.");
      return;
    }
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: keyBytes(button.dataset.pushKey),
    });
    const response = await fetch(button.dataset.pushUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify({ subscription: subscription.toJSON(), name: browserName() }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      say(`The server refused it: ${body.detail || response.status}`);
      return;
    }
    say("Browser notifications are on for this browser.");
    window.location.reload();
  } catch (error) {
    say(`Could not turn them on: ${error.message || error}`);
  } finally {
    button.disabled = false;
  }
}

for (const button of document.querySelectorAll("[data-push-key]")) {
  const status = document.getElementById(button.getAttribute("aria-describedby"));
  button.addEventListener("click", () => turnOn(button, status));
}
