package catalog

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// update rewrites the generated part of docs/providers.md:
//
//	go test ./services/catalog -run TestProvidersDoc -update
var update = flag.Bool("update", false, "rewrite the generated provider table in docs/providers.md")

const (
	providersDoc   = "../../docs/providers.md"
	generatedBegin = "<!-- BEGIN GENERATED: go test ./services/catalog -run TestProvidersDoc -update -->"
	generatedEnd   = "<!-- END GENERATED -->"
)

// TestProvidersDoc keeps the provider table in docs/providers.md equal to
// the embedded catalog, so the documentation cannot drift from the data.
func TestProvidersDoc(t *testing.T) {
	c := loadCatalog(t)
	raw, err := os.ReadFile(providersDoc)
	if err != nil {
		t.Fatalf("read %s: %v", providersDoc, err)
	}
	doc := string(raw)
	begin := strings.Index(doc, generatedBegin)
	end := strings.Index(doc, generatedEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the generated-section markers", providersDoc)
	}
	want := doc[:begin] + generatedBegin + "\n\n" + renderProviderTable(c) + "\n" + doc[end:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(providersDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s is out of date with the catalog; run: go test ./services/catalog -run TestProvidersDoc -update", providersDoc)
}

func renderProviderTable(c *Catalog) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d providers.\n\n", c.Len())
	b.WriteString("| id | name | category | tenant params | tokens |\n|---|---|---|---|---|\n")
	var noted []Provider
	for _, p := range c.All() {
		params := "—"
		if len(p.Params) > 0 {
			params = "`" + strings.Join(p.Params, "`, `") + "`"
		}
		tokens := "do not expire"
		switch {
		case p.TokensExpire && p.RefreshTokenRotates:
			tokens = "expire; refresh rotates"
		case p.TokensExpire:
			tokens = "expire"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", p.ID, mdEscape(p.Name), p.Category, params, tokens)
		if p.Notes != "" {
			noted = append(noted, p)
		}
	}
	b.WriteString("\n### Provider notes\n\n")
	for _, p := range noted {
		fmt.Fprintf(&b, "- **`%s`**: %s\n", p.ID, mdEscape(p.Notes))
	}
	return b.String()
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "*", `\*`, "<", "&lt;").Replace(s)
}
