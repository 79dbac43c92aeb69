package handlers

import (
	"net/http"

	"github.com/swaggest/swgui"
	"github.com/swaggest/swgui/v5emb"
)

// publicOperationsUnlocked is a Swagger UI plugin. Swagger UI draws a lock
// on an operation unless its security is empty or only the empty
// requirement ({}); an operation that takes a token but does not need one
// (security: [bearerAuth, {}], such as the product list for admins) would
// get a lock although anyone may call it. It is drawn without one. The lock
// is only drawn: "Try it out" still sends an authorized token, because
// requests are built from the spec's security, not from this summary.
const publicOperationsUnlocked = `function PublicOperationsUnlocked() {
	return {
		wrapComponents: {
			OperationSummary: function (Original, system) {
				return function (props) {
					var security = props.operationProps.get("security");
					if (security && security.some(function (r) { return r.isEmpty(); })) {
						props = Object.assign({}, props, { operationProps: props.operationProps.set("security", security.clear()) });
					}
					return system.React.createElement(Original, props);
				};
			}
		}
	};
}`

// swaggerUI serves Swagger UI at /docs/ for the spec at /openapi.json.
func swaggerUI() http.Handler {
	return v5emb.NewWithConfig(swgui.Config{
		SettingsUI: map[string]string{
			// swgui hides the Schemas section (-1); admins read the models
			// there, so show it, each model collapsed.
			"defaultModelsExpandDepth": "1",
			"plugins":                  "[SwaggerUIBundle.plugins.DownloadUrl, " + publicOperationsUnlocked + "]",
		},
	})("shopd API", "/openapi.json", "/docs/")
}
