// Refreshes the live part of the operations page in place, every
// data-every milliseconds, from /ops/live (same origin, so the browser
// sends the credentials it signed in with).
"use strict";
(() => {
  const live = document.getElementById("live");
  const status = document.getElementById("status");
  if (!live || !status) return;
  const every = Math.max(1000, Number(live.dataset.every) || 5000);
  const tick = async () => {
    try {
      const r = await fetch("/ops/live", { cache: "no-store", credentials: "same-origin" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      live.innerHTML = await r.text();
      status.textContent = "live · updated " + new Date().toLocaleTimeString();
      status.classList.remove("stale");
    } catch (e) {
      status.textContent = "not updating: " + e.message;
      status.classList.add("stale");
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
})();
