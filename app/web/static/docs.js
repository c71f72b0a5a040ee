// Starts Swagger UI on /docs. Kept out of the page so that its CSP (script-src 'self') holds;
// the OpenAPI document's URL comes from the page's data-openapi-url. No online validator.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var bundle = window.SwaggerUIBundle;
  window.ui = bundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [bundle.presets.apis],
  });
})();
