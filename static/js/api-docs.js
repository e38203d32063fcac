// The API reference page (/api/docs): Swagger UI on the portal's OpenAPI document. A file, not an inline
// script, so the page keeps the portal's Content-Security-Policy (script-src 'self').
(function () {
  "use strict";

  window.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("swagger-ui");
    window.SwaggerUIBundle({
      url: root.getAttribute("data-spec-url"),
      domNode: root,
      deepLinking: true,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      validatorUrl: null,
      tryItOutEnabled: false,
      persistAuthorization: false
    });
  });
})();
