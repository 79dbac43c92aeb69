// Package jsoncheck finds what a JSON schema cannot say about a JSON
// document: NUL characters in its strings, which PostgreSQL's text type
// refuses, and data after its one value, which Go's streaming decoders
// (the validator's, the generated server's) silently ignore.
package jsoncheck

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// NULMessage is what a client is told about a field holding a NUL.
const NULMessage = "Must not contain a NUL character."

// TrailingMessage is what a client is told about data after the value.
const TrailingMessage = "The body must be exactly one JSON value; data follows it."

// nulEscape is the only way a NUL can appear in JSON text: the raw byte
// is not allowed inside a string.
var nulEscape = []byte(`\u0000`)

// TrailingData reports whether doc is one complete JSON value followed by
// anything but whitespace. A doc whose first value is itself malformed is
// not trailing data: reporting that is the parser's job.
func TrailingData(doc []byte) bool {
	if json.Valid(doc) {
		return false // the fast path: one value, whitespace around it
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	var first json.RawMessage
	if err := dec.Decode(&first); err != nil {
		return false
	}
	return len(bytes.TrimSpace(doc[dec.InputOffset():])) > 0
}

// NULFields returns, sorted, the paths of the strings in doc's first value
// that hold a NUL: dotted member names and array indexes
// ("shippingAddress.line1", "tags.1"), "" for doc itself. A member name
// holding a NUL is reported at its object's path. A doc without the \u0000
// escape is not decoded; one that does not decode yields nil (reporting
// that is the parser's job).
func NULFields(doc []byte) []string {
	if !bytes.Contains(doc, nulEscape) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	var out []string
	walk(v, nil, &out)
	slices.Sort(out)
	return slices.Compact(out)
}

// walk appends the path of every string under v that holds a NUL.
func walk(v any, path []string, out *[]string) {
	switch v := v.(type) {
	case string:
		if strings.IndexByte(v, 0) >= 0 {
			*out = append(*out, strings.Join(path, "."))
		}
	case map[string]any:
		for k, e := range v {
			if strings.IndexByte(k, 0) >= 0 {
				*out = append(*out, strings.Join(path, "."))
				continue
			}
			walk(e, append(path, k), out)
		}
	case []any:
		for i, e := range v {
			walk(e, append(path, strconv.Itoa(i)), out)
		}
	}
}
