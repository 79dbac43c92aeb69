package jsoncheck_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/shopd/shopd/internal/jsoncheck"
)

func TestTrailingData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		doc  string
		want bool
	}{
		{`{"a":1}`, false},
		{" \n\t{\"a\":1} \r\n", false},
		{`[1,2]`, false},
		{`"text"`, false},
		{`{"a":1}xyz`, true},
		{`{"a":1}{"a":2}`, true},
		{`{"a":1} []`, true},
		{"{\"a\":1}\n1", true},
		{`{"a":1}}`, true},
		{`{"a":`, false}, // malformed, not trailing
		{`nope`, false},
		{``, false},
	} {
		if got := jsoncheck.TrailingData([]byte(tc.doc)); got != tc.want {
			t.Errorf("TrailingData(%q) = %v, want %v", tc.doc, got, tc.want)
		}
	}
}

func TestNULFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		doc  string
		want []string
	}{
		{`{"name":"plain"}`, nil},
		{`{"name":"C:\\u0000"}`, nil}, // an escaped backslash, then "u0000"
		{`{"name":"a\u0000b"}`, []string{"name"}},
		{`"\u0000"`, []string{""}},
		{`{"shippingAddress":{"line1":"x\u0000","city":"ok"}}`, []string{"shippingAddress.line1"}},
		{`{"tags":["ok","b\u0000d"]}`, []string{"tags.1"}},
		{`{"b":"\u0000","a":[{"c":"\u0000"}]}`, []string{"a.0.c", "b"}},
		{`{"k\u0000":"v"}`, []string{""}},
		{`{"o":{"k\u0000":"v"}}`, []string{"o"}},
		{`{"n":"\u0000"`, nil}, // malformed: the parser reports it
		{`{"n":1}{"n":"\u0000"}`, nil},
	} {
		if got := jsoncheck.NULFields([]byte(tc.doc)); !slices.Equal(got, tc.want) {
			t.Errorf("NULFields(%s) = %q, want %q", tc.doc, got, tc.want)
		}
	}
}

// A typical checkout body: the checks every JSON request pays for.
var checkoutBody = []byte(`{"shippingAddress":{"firstName":"Ada","lastName":"Lovelace","line1":"12 St James's Square",` +
	`"city":"London","postalCode":"SW1Y 4JH","country":"GB","phone":"+447700900123"}}`)

func BenchmarkCleanBody(b *testing.B) {
	for b.Loop() {
		if jsoncheck.TrailingData(checkoutBody) || jsoncheck.NULFields(checkoutBody) != nil {
			b.Fatal("clean body refused")
		}
	}
}

func BenchmarkBodyWithNUL(b *testing.B) {
	doc := bytes.Replace(checkoutBody, []byte("London"), []byte(`Lon\u0000don`), 1)
	for b.Loop() {
		if len(jsoncheck.NULFields(doc)) != 1 {
			b.Fatal("NUL not found")
		}
	}
}
