package shopd

import (
	"bytes"
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func loadSpec(t *testing.T, data []byte) (*openapi3.T, error) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	return doc, doc.Validate(context.Background(),
		openapi3.EnableExamplesValidation(), openapi3.EnableSchemaFormatValidation())
}

// TestSpecExamplesAreValid validates the spec and every example in it
// against its schema, so an example can never drift from the contract.
func TestSpecExamplesAreValid(t *testing.T) {
	t.Parallel()
	if _, err := loadSpec(t, OpenAPIYAML); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	// The check bites: a price example that is not an integer is refused.
	broken := bytes.Replace(OpenAPIYAML, []byte("priceCents: 2500"), []byte("priceCents: 25.5"), 1)
	if bytes.Equal(broken, OpenAPIYAML) {
		t.Fatal("no example with priceCents: 2500 to break; update the test")
	}
	if _, err := loadSpec(t, broken); err == nil {
		t.Fatal("a float price example passed validation")
	}
}
