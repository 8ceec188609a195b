// Progressive enhancement only: every page works without this script.
(function () {
  "use strict";
  // Header: cart count and account name come from a small uncached
  // endpoint, so every page itself stays cacheable.
  if (window.fetch) {
    fetch("/api/v1/me", { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (me) {
      if (!me) return;
      var cartLink = document.querySelector("[data-me-cart]");
      if (cartLink && me.cart && me.cart.item_count > 0) cartLink.textContent = "Cart (" + me.cart.item_count + ")";
      var nameLink = document.querySelector("[data-me-name]");
      if (nameLink && me.customer) nameLink.textContent = me.customer.name || "Account";
    }).catch(function () {});
  }
})();
(function () {
  "use strict";
  // Product page: show the chosen variant's price and stock at once.
  var form = document.querySelector("form.variants");
  if (!form) return;
  var price = document.getElementById("price");
  var stock = document.getElementById("stock");
  function stockText(n) {
    if (n <= 0) return "Sold out";
    if (n < 6) return "Only " + n + " left";
    return "In stock";
  }
  form.addEventListener("change", function (e) {
    var input = e.target;
    if (!input || input.name !== "sku") return;
    price.textContent = input.getAttribute("data-price");
    stock.textContent = stockText(parseInt(input.getAttribute("data-available"), 10) || 0);
    if (history.replaceState) history.replaceState(null, "", "?sku=" + encodeURIComponent(input.value));
  });
})();
(function () {
  "use strict";
  // Drop times: the page says the start in the shop's time zone; show
  // it in the visitor's own as well.
  var times = document.querySelectorAll("time[data-local]");
  for (var i = 0; i < times.length; i++) {
    var t = new Date(times[i].getAttribute("datetime"));
    if (isNaN(t.getTime())) continue;
    try {
      times[i].textContent = t.toLocaleString(undefined, { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
    } catch (e) { /* keep the server's words */ }
  }
  // Drop page: a countdown to the start; at the start the page reloads
  // to show the drop live.
  var drop = document.querySelector(".drop[data-start]");
  var cd = drop && drop.querySelector("[data-countdown]");
  if (cd) {
    var start = parseInt(drop.getAttribute("data-start"), 10) * 1000;
    // Reload once, only when the page was opened before the start (a
    // page still cached from before it does not reload over and over).
    var ahead = start > Date.now();
    var tick = function () {
      var s = Math.max(0, Math.round((start - Date.now()) / 1000));
      var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
      cd.textContent = "in " + (d ? d + (d === 1 ? " day " : " days ") : "") + (d || h ? h + " h " : "") + m + " min " + sec + " s";
      if (s > 0) { setTimeout(tick, 1000); } else if (ahead) { setTimeout(function () { location.reload(); }, 1500); }
    };
    tick();
  }
})();
(function () {
  "use strict";
  // Waiting-room page: follow the status without reloading; reload when
  // the state changes so the server renders the next step.
  var q = document.querySelector(".queue[data-drop]");
  if (!q || !window.fetch) return;
  var id = q.getAttribute("data-drop");
  var box = document.getElementById("queue-state");
  var state = box.getAttribute("data-state");
  var pow = parseInt(q.getAttribute("data-pow"), 10) || 0;
  function wait(s) {
    if (s <= 0) return "any moment now";
    if (s < 60) return Math.round(s) + " seconds";
    if (s < 3600) return Math.round(s / 60) + " minutes";
    return (s / 3600).toFixed(1) + " hours";
  }
  function set(sel, v) { var e = box.querySelector(sel); if (e) e.textContent = v; }
  function poll() {
    fetch("/api/v1/drops/" + encodeURIComponent(id) + "/queue", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (st) {
        if (!st) { setTimeout(poll, 5000); return; }
        if (st.state !== state) { location.reload(); return; }
        set("[data-position]", st.position);
        set("[data-ahead]", st.ahead);
        set("[data-wait]", wait(st.estimated_wait_seconds));
        if (st.poll_after_seconds > 0) setTimeout(poll, st.poll_after_seconds * 1000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  // Proof of work: find a nonce whose SHA-256 with the challenge starts
  // with the asked number of zero bits, then join.
  function leadingZeros(buf) {
    var b = new Uint8Array(buf), n = 0;
    for (var i = 0; i < b.length; i++) {
      if (b[i] === 0) { n += 8; continue; }
      for (var m = 0x80; m && !(b[i] & m); m >>= 1) n++;
      break;
    }
    return n;
  }
  function solve(ch, diff) {
    var enc = new TextEncoder(), nonce = 0;
    function step() {
      var batch = [];
      for (var i = 0; i < 256; i++, nonce++) batch.push(nonce);
      return Promise.all(batch.map(function (n) {
        return crypto.subtle.digest("SHA-256", enc.encode(ch + ":" + n)).then(function (h) { return [n, leadingZeros(h)]; });
      })).then(function (res) {
        for (var j = 0; j < res.length; j++) if (res[j][1] >= diff) return ch + ":" + res[j][0];
        return step();
      });
    }
    return step();
  }
  if (state === "" && pow > 0 && window.crypto && crypto.subtle) {
    box.querySelector("button") && (box.querySelector("button").disabled = true);
    set("p", "Getting you a place in line…");
    fetch("/api/v1/drops/" + encodeURIComponent(id) + "/queue/challenge", { method: "POST", credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (c) { return solve(c.challenge, c.difficulty); })
      .then(function (p) {
        return fetch("/api/v1/drops/" + encodeURIComponent(id) + "/queue/join", {
          method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ pow: p })
        });
      })
      .then(function () { location.reload(); });
    return;
  }
  if (id === "standby" && state === "admitted") { location.reload(); return; }
  if (state === "pre_queue" || state === "waiting" || state === "sold_out") {
    setTimeout(poll, 2000);
  }
})();
