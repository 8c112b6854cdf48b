/*
 * Latchkey Connect launcher — for apps that do not use @alter-ai/connect.
 *
 *   <script src="https://latchkey.example.com/static/js/connect.js"></script>
 *   LatchkeyConnect.open({
 *     baseURL: "https://latchkey.example.com",
 *     sessionToken: session.session_token,   // from your backend, once
 *     onSuccess: function (grants) { … },
 *     onError: function (error) { … },       // {code, message, details}
 *     onClose: function () { … },            // closed before finishing
 *     mode: "popup"                          // or "redirect"; default: by device
 *   });
 *
 * It behaves like @alter-ai/connect 0.8 (see docs/connect.md): a centred
 * 500×700 popup at {baseURL}/sdk/oauth/connect#session=<token>, a full-page
 * redirect on phones and portrait tablets, messages accepted only from
 * baseURL's origin (and only from the popup it opened), and the popup's
 * closing noticed by polling. In the redirect flow the result comes back as
 * query parameters on the session's return_url; call
 * LatchkeyConnect.handleReturn({onSuccess, onError}) on that page.
 *
 * No dependencies, no globals besides LatchkeyConnect.
 */
(function (global) {
  "use strict";

  var POPUP_WIDTH = 500;
  var POPUP_HEIGHT = 700;
  var POLL_MS = 500;
  var WINDOW_NAME = "latchkey_connect";

  function noop() {}

  // isPhoneLike follows @alter-ai/connect's choice of the redirect flow:
  // phones (mobile and at most 480 px wide), and tablets held upright.
  function isPhoneLike() {
    var ua = global.navigator.userAgent || "";
    var mobileUA = /Android|webOS|iPhone|iPad|iPod|BlackBerry|IEMobile|Opera Mini/i.test(ua);
    var touch = "ontouchstart" in global || global.navigator.maxTouchPoints > 0;
    var w = global.innerWidth;
    var mobile = mobileUA || (touch && w <= 768);
    if (!mobile) {
      return false;
    }
    if (w <= 480) {
      return true;
    }
    return w <= 1024 && global.innerHeight > w;
  }

  function connectURL(baseURL, token) {
    return baseURL.replace(/\/+$/, "") + "/sdk/oauth/connect#session=" + encodeURIComponent(token);
  }

  function error(code, message, details) {
    var e = { code: code, message: message };
    if (details) {
      e.details = details;
    }
    return e;
  }

  // normalizeGrants keeps the grants that name an id and a provider, with
  // the defaults @alter-ai/connect applies.
  function normalizeGrants(raw) {
    var out = [];
    if (!raw || typeof raw.length !== "number") {
      return out;
    }
    for (var i = 0; i < raw.length; i++) {
      var g = raw[i] || {};
      if (!g.grant_id || !g.provider) {
        continue;
      }
      out.push({
        grant_id: String(g.grant_id),
        provider: String(g.provider),
        provider_name: g.provider_name || g.provider,
        account_identifier: g.account_identifier || "",
        timestamp: g.timestamp || new Date().toISOString(),
        operation: g.operation === "reauth" ? "reauth" : "creation",
        scopes: Array.isArray(g.scopes) ? g.scopes : [],
        status: g.status || "active",
        metadata: g.metadata,
      });
    }
    return out;
  }

  function open(opts) {
    opts = opts || {};
    var onSuccess = typeof opts.onSuccess === "function" ? opts.onSuccess : noop;
    var onError = typeof opts.onError === "function" ? opts.onError : noop;
    var onClose = typeof opts.onClose === "function" ? opts.onClose : noop;
    var token = opts.sessionToken || opts.token;
    if (typeof token !== "string" || token === "") {
      throw new Error("LatchkeyConnect.open: sessionToken is required (mint it on your backend)");
    }
    var expectedOrigin;
    try {
      expectedOrigin = new URL(opts.baseURL).origin;
    } catch (e) {
      throw new Error("LatchkeyConnect.open: baseURL must be an absolute URL such as https://latchkey.example.com");
    }
    if (expectedOrigin === "null") {
      throw new Error("LatchkeyConnect.open: baseURL must be an http(s) URL");
    }
    var url = connectURL(opts.baseURL, token);
    var mode = opts.mode === "popup" || opts.mode === "redirect" ? opts.mode : isPhoneLike() ? "redirect" : "popup";

    if (mode === "redirect") {
      global.location.assign(url);
      return { close: noop };
    }

    var left = global.screenX + (global.outerWidth - POPUP_WIDTH) / 2;
    var top = global.screenY + (global.outerHeight - POPUP_HEIGHT) / 2;
    var features = [
      "width=" + POPUP_WIDTH,
      "height=" + POPUP_HEIGHT,
      "left=" + Math.max(0, Math.round(left)),
      "top=" + Math.max(0, Math.round(top)),
      "resizable=yes",
      "scrollbars=yes",
      "status=yes",
    ].join(",");
    var popup = global.open(url, WINDOW_NAME, features);
    var settled = false;
    var timer = null;

    function cleanup() {
      settled = true;
      if (timer !== null) {
        global.clearInterval(timer);
        timer = null;
      }
      global.removeEventListener("message", onMessage);
    }

    function closePopup() {
      try {
        if (popup && !popup.closed) {
          popup.close();
        }
      } catch (e) {
        /* cross-origin or already gone */
      }
    }

    function onMessage(event) {
      // Only the Latchkey origin, and only the window this call opened.
      if (settled || event.origin !== expectedOrigin || event.source !== popup) {
        return;
      }
      var data = event.data;
      if (!data || typeof data !== "object") {
        return;
      }
      if (data.type === "alter_connect_success") {
        var grants = normalizeGrants(data.grants);
        cleanup();
        closePopup();
        if (grants.length === 0) {
          onError(error("invalid_response", "Latchkey answered success without grants"));
          return;
        }
        onSuccess(grants);
      } else if (data.type === "alter_connect_error") {
        cleanup();
        closePopup();
        onError(error(data.error || "oauth_error", data.error_description || "The connection failed", data));
      }
    }

    if (!popup) {
      onError(error("popup_blocked", "The browser blocked the Connect popup; allow popups for this site, or use mode: 'redirect'."));
      return { close: noop };
    }
    global.addEventListener("message", onMessage);
    timer = global.setInterval(function () {
      if (!settled && (!popup || popup.closed)) {
        cleanup();
        onClose();
      }
    }, POLL_MS);

    return {
      close: function () {
        if (!settled) {
          cleanup();
          closePopup();
        }
      },
    };
  }

  // handleReturn reads the redirect flow's result from the current URL
  // (alter_connect_success=true&grant_id=… or alter_connect_error=true&…),
  // calls the matching callback, and removes the parameters from the
  // address bar. It returns false when the URL carries no result.
  function handleReturn(opts) {
    opts = opts || {};
    var params = new URLSearchParams(global.location.search);
    var success = params.get("alter_connect_success") === "true";
    var failure = params.get("alter_connect_error") === "true";
    if (!success && !failure) {
      return false;
    }
    var keys = [
      "alter_connect_success", "alter_connect_error", "grant_id", "provider", "provider_name",
      "account_identifier", "timestamp", "operation", "scopes", "status", "error_code", "error_description",
    ];
    var result;
    if (success) {
      result = normalizeGrants([{
        grant_id: params.get("grant_id"),
        provider: params.get("provider"),
        provider_name: params.get("provider_name"),
        account_identifier: params.get("account_identifier"),
        timestamp: params.get("timestamp"),
        operation: params.get("operation"),
        scopes: params.get("scopes") ? params.get("scopes").split(",") : [],
        status: params.get("status"),
      }]);
    } else {
      result = error(params.get("error_code") || "oauth_error", params.get("error_description") || "The connection failed");
    }
    for (var i = 0; i < keys.length; i++) {
      params.delete(keys[i]);
    }
    if (global.history && global.history.replaceState) {
      var q = params.toString();
      global.history.replaceState(null, "", global.location.pathname + (q ? "?" + q : "") + global.location.hash);
    }
    if (success && result.length > 0) {
      (opts.onSuccess || noop)(result);
    } else if (success) {
      (opts.onError || noop)(error("invalid_response", "The return URL carries an incomplete grant"));
    } else {
      (opts.onError || noop)(result);
    }
    return true;
  }

  global.LatchkeyConnect = { open: open, handleReturn: handleReturn };
})(window);
