/* The demo host app's page script: ask our backend for a Connect session,
 * open Latchkey's popup with the launcher, show the grant. */
(function () {
  "use strict";
  var root = document.querySelector("[data-testid=demo-host]");
  var base = root.getAttribute("data-latchkey-url");

  function show(grants) {
    var g = grants[0];
    document.getElementById("grant-id").textContent = g.grant_id;
    document.getElementById("account").textContent = g.account_identifier;
    document.getElementById("command").textContent =
      "LATCHKEY_API_KEY=<demo app key> go run ./cmd/latchkey request --grant " + g.grant_id +
      " " + base + "/demo/api/calendar/events";
    document.getElementById("result").hidden = false;
  }
  function fail(err) {
    var el = document.getElementById("error");
    el.textContent = "Connect failed: " + (err && (err.code || err.message) || "unknown error");
    el.hidden = false;
  }

  // Redirect flow (phones): the result comes back on this page's query.
  if (window.LatchkeyConnect && location.search.indexOf("alter_connect_") >= 0) {
    window.LatchkeyConnect.handleReturn({ onSuccess: show, onError: fail });
  }

  document.getElementById("connect").addEventListener("click", function () {
    fetch("/demo/host/session", { method: "POST" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (!s.session_token) { fail({ message: s.error }); return; }
        window.LatchkeyConnect.open({
          baseURL: base,
          sessionToken: s.session_token,
          onSuccess: show,
          onError: fail,
          onClose: function () {}
        });
      })
      .catch(fail);
  });
})();
