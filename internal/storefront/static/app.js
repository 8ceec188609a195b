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
