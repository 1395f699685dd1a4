// The checkout bundle: the Pay button stays disabled until this script has run. The hosted checkout
// (/checkout/hosted) takes the card number from the payment provider's frame, shows a cookie banner
// until it is accepted, and lets the customer pick a product in stock. `window.demoShop` is the app's
// own state (`ready`, the last `order`), for scripts that wait on it.
(function () {
  "use strict";
  var form = document.getElementById("checkout");
  var button = document.getElementById("pay");
  var status = document.querySelector(".status");
  var order = document.getElementById("order");
  var shop = (window.demoShop = { ready: false, order: null, sku: null });
  if (!form || !button || !status) {
    return;
  }
  function cardNumber() {
    var input = document.getElementById("card");
    if (input) {
      return input.value;
    }
    var frame = document.getElementById("card-frame");
    var field = frame && frame.contentDocument && frame.contentDocument.getElementById("number");
    return field ? field.value : "";
  }
  var consent = document.getElementById("consent");
  if (consent) {
    consent.hidden = document.cookie.indexOf("consent=yes") >= 0;
    document.getElementById("accept").addEventListener("click", function () {
      document.cookie = "consent=yes; path=/";
      consent.hidden = true;
    });
  }
  document.querySelectorAll("#products .add").forEach(function (add) {
    add.addEventListener("click", function () {
      var item = add.closest("li");
      shop.sku = item.dataset.sku;
      document.getElementById("picked").textContent = "Picked " + item.dataset.sku;
    });
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    status.textContent = "Working…";
    fetch("/api/pay", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        cart_id: form.dataset.cart,
        card: cardNumber(),
      }),
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (response.ok && body.status === "paid") {
            status.textContent = "Paid";
            order.textContent = body.order_id;
            shop.order = body.order_id;
          } else {
            status.textContent = "Failed: HTTP " + response.status;
            button.disabled = false;
          }
        });
      })
      .catch(function (err) {
        status.textContent = "Failed: " + err;
        button.disabled = false;
      });
  });
  button.disabled = false;
  shop.ready = true;
})();
