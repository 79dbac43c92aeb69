// Package gen holds the code generated from openapi.yaml: models, the strict
// Echo server interface and the embedded spec. Never edit it by hand; run
// `make generate`.
package gen

//go:generate go tool oapi-codegen -config cfg.yaml ../openapi.yaml
//go:generate go tool oapi-codegen -config spec.cfg.yaml ../openapi.yaml
