// Stripe Elements on the checkout page, loaded only when the shop takes
// payments with Stripe. The card is typed into Stripe's iframe; on submit
// Stripe.js turns it into a PaymentMethod and only its ID (pm_...) is
// posted to the shop with the rest of the form.
(function () {
  "use strict";
  var form = document.querySelector("form[data-stripe-key]");
  if (!form || typeof window.Stripe !== "function") return;
  var stripe = window.Stripe(form.getAttribute("data-stripe-key"));
  var card = stripe.elements().create("card", { hidePostalCode: true });
  card.mount("#card-element");
  var errors = document.getElementById("card-errors");
  var button = form.querySelector("button[type=submit]");
  function show(msg) {
    errors.textContent = msg;
    errors.hidden = !msg;
  }
  card.on("change", function (e) { show(e.error ? e.error.message : ""); });
  form.addEventListener("submit", function (e) {
    if (form.elements.payment_method.value) return; // the PaymentMethod is made: submit
    e.preventDefault();
    if (!form.reportValidity()) return;
    button.disabled = true;
    stripe.createPaymentMethod({
      type: "card",
      card: card,
      billing_details: { name: form.elements.name.value, email: form.elements.email.value },
    }).then(function (r) {
      if (r.error) {
        show(r.error.message);
        button.disabled = false;
        return;
      }
      form.elements.payment_method.value = r.paymentMethod.id;
      form.submit();
    });
  });
})();
