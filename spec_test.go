package shopd

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/shopd/shopd/gen"
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

// TestEmbeddedSpecIsTheWholeContract checks the spec the server embeds
// (the one /openapi.json and /docs serve and the validator loads) against
// openapi.yaml: the code generator drops the operations it is told to
// leave out of the strict server from the spec it embeds, which once left
// the Stripe webhook undocumented and its tag empty in Swagger UI.
func TestEmbeddedSpecIsTheWholeContract(t *testing.T) {
	t.Parallel()
	written, err := loadSpec(t, OpenAPIYAML)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	embedded, err := gen.GetSpec()
	if err != nil {
		t.Fatalf("embedded spec: %v", err)
	}
	operationsPerTag := map[string]int{}
	for path, item := range written.Paths.Map() {
		for method, op := range item.Operations() {
			var got *openapi3.Operation
			if e := embedded.Paths.Value(path); e != nil {
				got = e.GetOperation(method)
			}
			if got == nil || got.OperationID != op.OperationID {
				t.Errorf("embedded spec lacks %s %s (%s)", method, path, op.OperationID)
				continue
			}
			for _, tag := range got.Tags {
				operationsPerTag[tag]++
			}
		}
	}
	for _, tag := range embedded.Tags {
		if operationsPerTag[tag.Name] == 0 {
			t.Errorf("tag %q has no operation in the embedded spec", tag.Name)
		}
	}

	// The webhook reads its raw body, so the strict server must not
	// have it; the rest of the contract must.
	strict := reflect.TypeFor[gen.StrictServerInterface]()
	if _, ok := strict.MethodByName("HandleStripeWebhook"); ok {
		t.Error("the strict server has the Stripe webhook; it must stay a raw Echo route")
	}
	if _, ok := strict.MethodByName("Checkout"); !ok {
		t.Error("the strict server lacks Checkout: is it generated from openapi.yaml?")
	}
}

// TestEveryResponseDeclaresRequestID: every response, success or error,
// documents X-Request-Id through the one shared header, so the response
// check in the handler tests verifies it on everything the server sends.
func TestEveryResponseDeclaresRequestID(t *testing.T) {
	t.Parallel()
	doc, err := loadSpec(t, OpenAPIYAML)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	const want = "#/components/headers/XRequestId"
	if h := doc.Components.Headers["XRequestId"]; h == nil || h.Value == nil || !h.Value.Required {
		t.Fatal("components/headers/XRequestId is missing or not required")
	}
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, r := range op.Responses.Map() {
				n++
				if h := r.Value.Headers["X-Request-Id"]; h == nil || h.Ref != want {
					t.Errorf("%s %s %s: X-Request-Id is not declared as %s", method, path, status, want)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no responses found")
	}
}
