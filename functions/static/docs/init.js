// /api/docs: Swagger UI from the vendored copy (functions/static/vendor), reading the app's own OpenAPI document.
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  validatorUrl: null, // the default validator is another host
  persistAuthorization: false,
});
