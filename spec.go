package shopd

import _ "embed"

// OpenAPIYAML is openapi.yaml as written, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte
