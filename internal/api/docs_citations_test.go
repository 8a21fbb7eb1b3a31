package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// citedTest is a test or fuzz function name written in backticks in a doc.
var citedTest = regexp.MustCompile("`((?:Test|Fuzz)[A-Z][A-Za-z0-9_]*)`")

// TestDocs_CitedTestsExist keeps the threat model and the security page
// honest: every test they name as the proof of a mitigation must exist as a
// func in one of the repository's *_test.go files, so renaming or deleting
// a test cannot leave a claim without its proof.
func TestDocs_CitedTestsExist(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata", "vendor":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil // a file being edited elsewhere: its names stay unknown
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil {
				defined[fn.Name.Name] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{"docs/threat-model.md", "docs/security.md"} {
		data, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatalf("read %s: %v", doc, err)
		}
		cited := map[string]bool{}
		for _, m := range citedTest.FindAllStringSubmatch(string(data), -1) {
			cited[m[1]] = true
		}
		if doc == "docs/threat-model.md" && len(cited) < 30 {
			t.Errorf("%s cites only %d tests: is the pattern still right?", doc, len(cited))
		}
		var missing []string
		for name := range cited {
			if !defined[name] {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
		for _, name := range missing {
			t.Errorf("%s cites %s, which is not a func in any *_test.go file", doc, name)
		}
	}
}
