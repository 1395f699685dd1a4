// The checkout bundle: the Pay button stays disabled until this script has run.
(function () {
  "use strict";
  var form = document.getElementById("checkout");
  var button = document.getElementById("pay");
  var status = document.querySelector(".status");
  var order = document.getElementById("order");
  if (!form || !button || !status) {
    return;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    status.textContent = "Working…";
    fetch("/api/pay", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        cart_id: form.dataset.cart,
        card: document.getElementById("card").value,
      }),
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (response.ok && body.status === "paid") {
            status.textContent = "Paid";
            order.textContent = body.order_id;
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
})();
