package shopd

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

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

// walkStrings calls fn for every string value in v under an object key,
// however deep: every example value in the spec, as JSON.
func walkStrings(v any, fn func(key, value string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok {
				fn(k, s)
			}
			walkStrings(x, fn)
		}
	case []any:
		for _, x := range v {
			walkStrings(x, fn)
		}
	}
}

// specJSON is the spec as generic JSON.
func specJSON(t *testing.T) any {
	t.Helper()
	doc, err := loadSpec(t, OpenAPIYAML)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// isServerUUID reports whether s is a UUID as the server makes them
// (PostgreSQL's gen_random_uuid: version 4, RFC 4122 variant, lower case).
func isServerUUID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.Version() == 4 && u.Variant() == uuid.RFC4122 && u.String() == s
}

// stripeID is a Stripe object id (pi_..., evt_...), as in webhook events.
var stripeID = regexp.MustCompile(`^(pi|evt|ch|re|cus)_[A-Za-z0-9]{14,}$`)

// TestExampleIDsLookReal: the ids in examples are shaped as the server
// makes them, so a request built from the documentation reaches the lookup
// instead of failing on the id's shape: resources are UUIDs, ledger entries
// and order events are sequence numbers, Stripe's objects keep their ids.
func TestExampleIDsLookReal(t *testing.T) {
	t.Parallel()
	uuidKeys := map[string]bool{"productId": true, "orderId": true, "customerId": true, "referenceId": true, "sub": true}
	seen := 0
	walkStrings(specJSON(t), func(key, value string) {
		switch {
		case uuidKeys[key]:
			seen++
			if !isServerUUID(value) {
				t.Errorf("example %s %q is not a UUID as the server makes them", key, value)
			}
		case key == "id":
			seen++
			_, err := strconv.ParseInt(value, 10, 64)
			if err != nil && !isServerUUID(value) && !stripeID.MatchString(value) {
				t.Errorf("example id %q is neither a UUID, a sequence number nor a Stripe id", value)
			}
		}
	})
	if seen < 20 {
		t.Fatalf("only %d example ids found", seen)
	}
	if isServerUUID("9b2f4c1e") || isServerUUID("9B2F4C1E-3D5A-4F6B-8C7D-0E1F2A3B4C5D") {
		t.Fatal("isServerUUID accepts ids the server never makes")
	}
}

// TestExampleTokensVerify: the example access tokens are real ones, signed
// by the example JWKS's key and naming it by its kid (the RFC 7638
// thumbprint), so a partner can try their verification on the examples.
func TestExampleTokensVerify(t *testing.T) {
	t.Parallel()
	doc, err := loadSpec(t, OpenAPIYAML)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	jwks := doc.Paths.Value("/.well-known/jwks.json").Get.Responses.Status(200).Value.Content.Get("application/json").Example
	b, err := json.Marshal(jwks)
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(b)
	if err != nil {
		t.Fatalf("example JWKS: %v", err)
	}
	for i := range set.Len() {
		key, _ := set.Key(i)
		tp, err := key.Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if want := base64.RawURLEncoding.EncodeToString(tp); key.KeyID() != want {
			t.Errorf("example kid %q is not the key's thumbprint %q", key.KeyID(), want)
		}
	}
	var tokens []string
	walkStrings(specJSON(t), func(key, value string) {
		if key == "accessToken" {
			tokens = append(tokens, value)
		}
	})
	if len(tokens) == 0 {
		t.Fatal("no example access tokens")
	}
	for _, tok := range tokens {
		parsed, err := jwt.ParseString(tok, jwt.WithKeySet(set), jwt.WithValidate(false))
		if err != nil {
			t.Errorf("example token does not verify with the example JWKS: %v", err)
			continue
		}
		if role, _ := parsed.PrivateClaims()["role"].(string); parsed.Issuer() != "shop" || role == "" || !isServerUUID(parsed.Subject()) {
			t.Errorf("example token claims iss %q, role %q, sub %q", parsed.Issuer(), role, parsed.Subject())
		}
	}
}

// missingFields returns the properties of schema that example leaves out,
// as dotted paths, looking into nested objects and array items.
func missingFields(schema *openapi3.Schema, example any, at string) []string {
	var out []string
	switch v := example.(type) {
	case map[string]any:
		for name, prop := range schema.Properties {
			field := strings.TrimPrefix(at+"."+name, ".")
			x, ok := v[name]
			if !ok {
				out = append(out, field)
				continue
			}
			out = append(out, missingFields(prop.Value, x, field)...)
		}
	case []any:
		if schema.Items != nil {
			for _, x := range v {
				out = append(out, missingFields(schema.Items.Value, x, at+"[]")...)
			}
		}
	}
	return out
}

// requestSchemas adds s and every schema it contains to seen.
func requestSchemas(s *openapi3.SchemaRef, seen map[*openapi3.Schema]string) {
	if s == nil || s.Value == nil {
		return
	}
	if _, ok := seen[s.Value]; ok {
		return
	}
	seen[s.Value] = s.Ref
	for _, p := range s.Value.Properties {
		requestSchemas(p, seen)
	}
	requestSchemas(s.Value.Items, seen)
}

// TestRequestExamplesShowEveryField: every request example, and the
// example of every schema a request body uses, shows every field the
// schema has, optional ones included, so generated contract tests and
// "Try it out" exercise all of them; every parameter has an example.
func TestRequestExamplesShowEveryField(t *testing.T) {
	t.Parallel()
	doc, err := loadSpec(t, OpenAPIYAML)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	schemas := map[*openapi3.Schema]string{}
	checked := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
				pv := p.Value
				if pv.Example == nil && len(pv.Examples) == 0 && (pv.Schema == nil || pv.Schema.Value.Example == nil) {
					t.Errorf("%s %s: parameter %s has no example", method, path, pv.Name)
				}
			}
			if op.RequestBody == nil {
				continue
			}
			for ct, mt := range op.RequestBody.Value.Content {
				requestSchemas(mt.Schema, schemas)
				examples := map[string]any{}
				if mt.Example != nil {
					examples["example"] = mt.Example
				}
				for name, ex := range mt.Examples {
					examples[name] = ex.Value.Value
				}
				if len(examples) == 0 {
					t.Errorf("%s %s: %s request body has no example", method, path, ct)
				}
				for name, ex := range examples {
					checked++
					if missing := missingFields(mt.Schema.Value, ex, ""); len(missing) > 0 {
						slices.Sort(missing)
						t.Errorf("%s %s: request example %q lacks %v", method, path, name, missing)
					}
				}
			}
		}
	}
	for s, ref := range schemas {
		if s.Example == nil {
			continue
		}
		checked++
		if missing := missingFields(s, s.Example, ""); len(missing) > 0 {
			slices.Sort(missing)
			t.Errorf("schema %s: example lacks %v", ref, missing)
		}
	}
	if checked < 10 {
		t.Fatalf("only %d request examples found", checked)
	}
}
