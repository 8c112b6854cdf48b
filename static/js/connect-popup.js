/*
 * Latchkey Connect popup: the script of the pages under /sdk/oauth/connect
 * and of the result page at /sdk/oauth/callback. The CSP allows no inline
 * script, so everything the pages do in the browser is here.
 *
 * On the first page it takes the session token from the URL fragment
 * (#session=…), removes the fragment from the address bar and history at
 * once, and posts the token once to the exchange endpoint, which answers
 * with an HttpOnly cookie binding the session to this browser and the next
 * page to load.
 *
 * On the result page it reads the JSON data block the server rendered
 * (<script type="application/json" id="connect-result">) and posts its
 * message to window.opener with the exact target origin the server chose —
 * never "*" — then closes the window.
 *
 * The messages are those of @alter-ai/connect 0.8: alter_connect_success
 * {grants: […]} and alter_connect_error {error, error_description}.
 */
(function () {
  "use strict";

  // How long the result page stays open after posting, so the opener
  // processes the message before it sees the window close.
  var CLOSE_DELAY_MS = 600;

  function opener() {
    try {
      return window.opener && !window.opener.closed ? window.opener : null;
    } catch (e) {
      return null;
    }
  }

  // post sends msg to the opener at targetOrigin, which must be an exact
  // origin: a wildcard or an empty value sends nothing.
  function post(msg, targetOrigin) {
    var w = opener();
    if (!w || typeof targetOrigin !== "string" || targetOrigin === "" || targetOrigin === "*") {
      return false;
    }
    try {
      w.postMessage(msg, targetOrigin);
      return true;
    } catch (e) {
      return false;
    }
  }

  function closeSoon() {
    window.setTimeout(function () {
      window.close();
    }, CLOSE_DELAY_MS);
  }

  function bindCloseButtons() {
    var buttons = document.querySelectorAll("[data-connect-close]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function () {
        window.close();
      });
    }
  }

  // ---- first page: exchange the fragment's token ----

  function tokenFromFragment() {
    var hash = window.location.hash || "";
    if (hash.charAt(0) === "#") {
      hash = hash.slice(1);
    }
    var parts = hash.split("&");
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].split("=");
      if (kv[0] === "session" && kv.length > 1) {
        try {
          return decodeURIComponent(kv.slice(1).join("="));
        } catch (e) {
          return "";
        }
      }
    }
    return "";
  }

  function showExchangeError(code, message) {
    var loading = document.getElementById("connect-loading");
    var panel = document.getElementById("connect-error");
    if (loading) {
      loading.hidden = true;
    }
    if (panel) {
      document.getElementById("connect-error-code").textContent = code;
      document.getElementById("connect-error-message").textContent = message;
      panel.hidden = false;
    }
  }

  // sameOriginPath accepts only a path on this origin ("/…", not "//…").
  function sameOriginPath(p) {
    return typeof p === "string" && p.charAt(0) === "/" && p.charAt(1) !== "/" && p.charAt(1) !== "\\";
  }

  function exchange(root) {
    var token = tokenFromFragment();
    // The token must not stay in the address bar, the history or a
    // bookmark: drop the fragment before anything else happens.
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    if (!token) {
      showExchangeError("invalid_request", "This Connect link has no session. Start again from the application.");
      return;
    }
    var hasOpener = opener() !== null;
    var failed = function (body) {
      var err = (body && body.error) || {};
      var code = typeof err.code === "string" ? err.code : "internal";
      var message = typeof err.message === "string" ? err.message : "Connect could not start. Start again from the application.";
      var details = err.details || {};
      if (!hasOpener && isHTTPURL(details.redirect_url)) {
        window.location.replace(details.redirect_url);
        return;
      }
      showExchangeError(code, message);
      post({ type: "alter_connect_error", error: code, error_description: message }, details.target_origin);
    };
    window
      .fetch(root.getAttribute("data-exchange-url"), {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        redirect: "error",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ session_token: token, mode: hasOpener ? "popup" : "redirect" }),
      })
      .then(function (res) {
        return res.json().then(
          function (body) {
            return { ok: res.ok, body: body };
          },
          function () {
            return { ok: false, body: null };
          }
        );
      })
      .then(function (r) {
        if (r.ok && r.body && sameOriginPath(r.body.next)) {
          window.location.replace(r.body.next);
          return;
        }
        failed(r.body);
      })
      .catch(function () {
        failed(null);
      });
  }

  // isHTTPURL accepts an absolute http(s) URL: the server only
  // ever names the app's registered return URL here.
  function isHTTPURL(u) {
    return typeof u === "string" && /^https?:\/\//i.test(u);
  }

  // ---- result page: tell the app ----

  function deliver(el) {
    var data;
    try {
      data = JSON.parse(el.textContent);
    } catch (e) {
      return;
    }
    if (!data || !data.message) {
      return;
    }
    if (post(data.message, data.target_origin)) {
      closeSoon();
    }
  }

  function start() {
    bindCloseButtons();
    var root = document.getElementById("connect-loading");
    if (root && root.getAttribute("data-exchange-url")) {
      exchange(root);
    }
    var result = document.getElementById("connect-result");
    if (result) {
      deliver(result);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
