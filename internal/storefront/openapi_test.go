package storefront_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"go.yaml.in/yaml/v3"

	"github.com/surge-commerce/surge/internal/admission"
	"github.com/surge-commerce/surge/internal/storefront"
)

// openAPIValidator parses docs/openapi.yaml with libopenapi and returns a
// validator for it.
func openAPIValidator(t *testing.T) validator.Validator {
	t.Helper()
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("openapi.yaml: %v", errs)
	}
	return v
}

// TestOpenAPIIsValid validates docs/openapi.yaml against the OpenAPI 3.1
// schema.
func TestOpenAPIIsValid(t *testing.T) {
	v := openAPIValidator(t)
	ok, errs := v.ValidateDocument()
	for _, e := range errs {
		t.Errorf("openapi.yaml line %d: %s: %s", e.SpecLine, e.Message, e.Reason)
		for _, se := range e.SchemaValidationErrors {
			t.Errorf("  line %d %s: %s", se.Line, se.KeywordLocation, se.Reason)
		}
	}
	if !ok && len(errs) == 0 {
		t.Error("openapi.yaml is not valid")
	}
}

// schemaKeywords are the keywords a Schema Object may hold in OpenAPI 3.1:
// JSON Schema 2020-12's and OpenAPI's own. The OpenAPI meta-schema lets a
// schema carry any other key (JSON Schema ignores unknown keywords), so a
// typo, or a YAML flow mapping whose unquoted comma turned half a
// description into a key, passes it; this check does not let them.
var schemaKeywords = map[string]bool{
	"$schema": true, "$id": true, "$ref": true, "$anchor": true, "$dynamicRef": true, "$dynamicAnchor": true, "$defs": true,
	"$comment": true, "$vocabulary": true,
	"allOf": true, "anyOf": true, "oneOf": true, "not": true, "if": true, "then": true, "else": true,
	"dependentSchemas": true, "prefixItems": true, "items": true, "contains": true, "properties": true,
	"patternProperties": true, "additionalProperties": true, "propertyNames": true,
	"unevaluatedItems": true, "unevaluatedProperties": true,
	"type": true, "enum": true, "const": true, "multipleOf": true, "maximum": true, "exclusiveMaximum": true,
	"minimum": true, "exclusiveMinimum": true, "maxLength": true, "minLength": true, "pattern": true,
	"maxItems": true, "minItems": true, "uniqueItems": true, "maxContains": true, "minContains": true,
	"maxProperties": true, "minProperties": true, "required": true, "dependentRequired": true,
	"format": true, "contentEncoding": true, "contentMediaType": true, "contentSchema": true,
	"title": true, "description": true, "default": true, "deprecated": true, "readOnly": true, "writeOnly": true,
	"examples":      true,
	"discriminator": true, "xml": true, "externalDocs": true, "example": true,
}

// schemaProblems walks the Schema Objects of an OpenAPI document and
// names every key that is not a schema keyword (nor an x- extension).
func schemaProblems(root *yaml.Node) []string {
	var out []string
	var schema func(n *yaml.Node, path string)
	each := func(n *yaml.Node, path string, f func(*yaml.Node, string)) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				f(n.Content[i+1], path+"/"+n.Content[i].Value)
			}
		}
	}
	schema = func(n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			return // true/false schemas
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			p := path + "/" + k
			switch {
			case strings.HasPrefix(k, "x-"):
			case !schemaKeywords[k]:
				out = append(out, fmt.Sprintf("line %d: %s: %q is not a schema keyword", n.Content[i].Line, path, k))
			case k == "properties" || k == "patternProperties" || k == "$defs" || k == "dependentSchemas":
				each(v, p, schema)
			case k == "allOf" || k == "anyOf" || k == "oneOf" || k == "prefixItems":
				for j, s := range v.Content {
					schema(s, fmt.Sprintf("%s/%d", p, j))
				}
			case k == "items" || k == "additionalProperties" || k == "not" || k == "if" || k == "then" || k == "else" ||
				k == "contains" || k == "propertyNames" || k == "unevaluatedItems" || k == "unevaluatedProperties" || k == "contentSchema":
				schema(v, p)
			}
		}
	}
	// Schemas sit under components/schemas and under every "schema" key
	// (parameters, headers, media types).
	var find func(n *yaml.Node, path string)
	find = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for j, c := range n.Content {
				find(c, fmt.Sprintf("%s/%d", path, j))
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i].Value, n.Content[i+1]
				switch {
				case k == "schema":
					schema(v, path+"/schema")
				case k == "schemas" && path == "/0/components":
					each(v, path+"/schemas", schema)
				default:
					find(v, path+"/"+k)
				}
			}
		}
	}
	find(root, "")
	return out
}

// TestOpenAPISchemasHoldOnlyKeywords: see schemaProblems.
func TestOpenAPISchemasHoldOnlyKeywords(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	for _, p := range schemaProblems(&root) {
		t.Error(p)
	}
}

// TestProblemTypesDocumented: every kind of problem the shop answers with
// has its type URI in the OpenAPI Problem schema and a section in
// docs/problems.md, and the schema lists no other.
func TestProblemTypesDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Type struct {
							Enum []string `yaml:"enum"`
						} `yaml:"type"`
					} `yaml:"properties"`
				} `yaml:"Problem"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile("../../docs/problems.md")
	if err != nil {
		t.Fatal(err)
	}
	enum := map[string]bool{}
	for _, u := range doc.Components.Schemas.Problem.Properties.Type.Enum {
		enum[u] = true
	}
	kinds := append(storefront.ProblemKinds(), admission.ProblemKinds()...)
	known := map[string]bool{}
	for _, k := range kinds {
		u := storefront.ProblemType(k)
		known[u] = true
		if !enum[u] {
			t.Errorf("problem type %s is not in the OpenAPI Problem schema's enum", u)
		}
		if !strings.Contains(string(md), "\n## "+k+"\n") {
			t.Errorf("docs/problems.md has no section %q", k)
		}
	}
	for u := range enum {
		if !known[u] {
			t.Errorf("the OpenAPI Problem schema lists %s, which the shop never answers", u)
		}
	}
	if admission.ProblemTypeBase != storefront.ProblemTypeBase {
		t.Errorf("admission and storefront problem types start differently: %s, %s", admission.ProblemTypeBase, storefront.ProblemTypeBase)
	}
}

// TestResponsesMatchOpenAPI sends requests of several kinds to a real shop
// and validates each answer (status, headers, body, problem types)
// against docs/openapi.yaml.
func TestResponsesMatchOpenAPI(t *testing.T) {
	v := openAPIValidator(t)
	h, _ := apiTestServer(t, 10)
	slug := firstProductSlug(t, h)
	auth := []string{"Authorization", "Bearer " + apiTestToken}
	for _, tc := range []struct {
		method, target, body string
		hdr                  []string
		status               int
	}{
		{"GET", "/api/v1/products?limit=2", "", nil, 200},
		{"GET", "/api/v1/products/" + slug, "", nil, 200},
		{"GET", "/api/v1/categories", "", nil, 200},
		{"GET", "/api/v1/products/no-such-product", "", nil, 404},
		{"GET", "/api/v1/products?limit=1000", "", nil, 400},
		{"GET", "/api/v1/cart", "", nil, 200},
		{"POST", "/api/v1/cart/items", `{"sku":"NOPE"}`, []string{"Content-Type", "application/json"}, 422},
		{"POST", "/api/v1/cart/items", `{"sku":`, []string{"Content-Type", "application/json"}, 400},
		{"POST", "/api/v1/sessions", `{"email":"nobody@example.com","password":"wrong password"}`, []string{"Content-Type", "application/json"}, 401},
		{"GET", "/api/v1/admin/products", "", nil, 401},
		{"GET", "/api/v1/admin/products?limit=1", "", auth, 200},
	} {
		r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			r.Header.Set(tc.hdr[i], tc.hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.status {
			t.Errorf("%s %s = %d, want %d: %s", tc.method, tc.target, w.Code, tc.status, w.Body.String())
			continue
		}
		req := httptest.NewRequest(tc.method, "http://127.0.0.1:8080"+tc.target, strings.NewReader(tc.body))
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			req.Header.Set(tc.hdr[i], tc.hdr[i+1])
		}
		if ok, errs := v.ValidateHttpResponse(req, w.Result()); !ok {
			for _, e := range errs {
				t.Errorf("%s %s (%d): %s: %s", tc.method, tc.target, w.Code, e.Message, e.Reason)
				for _, se := range e.SchemaValidationErrors {
					t.Errorf("  %s: %s", se.FieldPath, se.Reason)
				}
			}
		}
	}
}
