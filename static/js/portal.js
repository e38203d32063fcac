// Failed htmx requests are never silent: the problem shows in one fixed region (#request-problem in
// base.html) until dismissed. Ended sessions are handled by the server (HX-Redirect to the login page).
(function () {
  "use strict";

  var NETWORK = "Could not reach the portal. Check your connection, then try again.";
  var TIMEOUT = "The portal took too long to answer. Please try again.";

  function region() {
    return document.getElementById("request-problem");
  }

  function show(text) {
    var box = region();
    if (!box) {
      return;
    }
    box.querySelector("[data-problem-text]").textContent = text;
    box.hidden = false;
  }

  // The portal's own error fragment (templates/errors/_error.html) says what went wrong, with the request id.
  function messageOf(xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    if (type.indexOf("text/html") === 0 && xhr.responseText) {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var alert = doc.querySelector(".alert-error") || doc.querySelector(".error-page");
      if (alert) {
        return alert.textContent.replace(/\s+/g, " ").trim();
      }
    }
    return "The portal answered with an error (" + xhr.status + "). Please reload the page and try again.";
  }

  document.addEventListener("htmx:responseError", function (event) {
    show(messageOf(event.detail.xhr));
  });
  document.addEventListener("htmx:sendError", function () {
    show(NETWORK);
  });
  document.addEventListener("htmx:timeout", function () {
    show(TIMEOUT);
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-problem-dismiss]");
    if (button) {
      region().hidden = true;
    }
  });
})();
