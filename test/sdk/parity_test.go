package sdk

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// methodRef names one SDK method per language, e.g. "Sandbox.exec".
type methodRef struct {
	Python     string `json:"python"`
	TypeScript string `json:"typescript"`
}

// operationsTable is sdk/operations.json.
type operationsTable struct {
	Operations map[string]methodRef       `json:"operations"`
	Extra      map[string]json.RawMessage `json:"extra"`    // operationId -> []methodRef
	SDKOnly    map[string]json.RawMessage `json:"sdk_only"` // "METHOD /path" -> methodRef
	Excluded   map[string]string          `json:"excluded"` // operationId -> reason
}

type openapiOp struct{ id, method, path string }

func readOpenAPIOps(t *testing.T) []openapiOp {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "internal", "api", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []openapiOp
	for path, item := range doc.Paths {
		for method, raw := range item {
			var op struct {
				OperationID string `json:"operationId"`
			}
			if json.Unmarshal(raw, &op) != nil || op.OperationID == "" {
				continue // "parameters" and other non-operation keys
			}
			ops = append(ops, openapiOp{op.OperationID, strings.ToUpper(method), path})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].id < ops[j].id })
	return ops
}

func readTable(t *testing.T) (operationsTable, []methodRef) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "sdk", "operations.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tab operationsTable
	if err := json.Unmarshal(b, &tab); err != nil {
		t.Fatalf("sdk/operations.json: %v", err)
	}
	all := make([]methodRef, 0, len(tab.Operations))
	for _, m := range tab.Operations {
		all = append(all, m)
	}
	for k, raw := range tab.Extra {
		if strings.HasPrefix(k, "_") {
			continue
		}
		var ms []methodRef
		if err := json.Unmarshal(raw, &ms); err != nil {
			t.Fatalf("sdk/operations.json extra %q: %v", k, err)
		}
		if _, ok := tab.Operations[k]; !ok {
			t.Errorf("sdk/operations.json: extra %q is not an operation of the table", k)
		}
		all = append(all, ms...)
	}
	for k, raw := range tab.SDKOnly {
		if strings.HasPrefix(k, "_") {
			continue
		}
		var m methodRef
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("sdk/operations.json sdk_only %q: %v", k, err)
		}
		all = append(all, m)
	}
	return tab, all
}

// TestParity_TableCoversOpenAPI fails when a route of the OpenAPI document
// has no SDK methods in sdk/operations.json (or the table names a route that
// no longer exists).
func TestParity_TableCoversOpenAPI(t *testing.T) {
	ops := readOpenAPIOps(t)
	tab, _ := readTable(t)
	seen := map[string]bool{}
	for _, op := range ops {
		seen[op.id] = true
		m, mapped := tab.Operations[op.id]
		_, excluded := tab.Excluded[op.id]
		switch {
		case mapped && excluded:
			t.Errorf("%s (%s %s) is both mapped and excluded in sdk/operations.json", op.id, op.method, op.path)
		case !mapped && !excluded:
			t.Errorf("%s (%s %s) has no SDK methods: add {\"python\": \"Client.x\", \"typescript\": \"Client.x\"} under \"operations\" in sdk/operations.json and implement them in sdk/python and sdk/typescript",
				op.id, op.method, op.path)
		case mapped && (m.Python == "" || m.TypeScript == ""):
			t.Errorf("%s: both python and typescript names are required, got %+v", op.id, m)
		}
		if _, ok := tab.SDKOnly[op.method+" "+op.path]; ok {
			t.Errorf("%s %s now exists on the server (%s): move it from \"sdk_only\" to \"operations\"", op.method, op.path, op.id)
		}
	}
	for id := range tab.Operations {
		if !seen[id] {
			t.Errorf("sdk/operations.json maps %q, which the OpenAPI document no longer has", id)
		}
	}
	for id := range tab.Excluded {
		if !seen[id] {
			t.Errorf("sdk/operations.json excludes %q, which the OpenAPI document no longer has", id)
		}
	}
	t.Logf("%d operations: %d mapped to both SDKs, %d excluded", len(ops), len(tab.Operations), len(tab.Excluded))
}

// TestParity_SDKsHaveTheMethods checks that every method the table names
// exists: on Python's Client/Sandbox and their Async twins (as coroutines),
// and on the compiled TypeScript Client/Sandbox prototypes.
func TestParity_SDKsHaveTheMethods(t *testing.T) {
	_, all := readTable(t)
	names := map[string][]string{"python": nil, "typescript": nil}
	for _, m := range all {
		names["python"] = append(names["python"], m.Python)
		names["typescript"] = append(names["typescript"], m.TypeScript)
	}
	pyList, _ := json.Marshal(names["python"])
	tsList, _ := json.Marshal(names["typescript"])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("python", func(t *testing.T) {
		py := needTool(t, "python3")
		script := `
import inspect, json, sys
import stacyvm
pairs = {"Client": (stacyvm.Client, stacyvm.AsyncClient), "Sandbox": (stacyvm.Sandbox, stacyvm.AsyncSandbox)}
missing = []
for ref in json.loads(sys.argv[1]):
    cls, _, name = ref.partition(".")
    sync, aio = pairs[cls]
    if not callable(getattr(sync, name, None)):
        missing.append(ref)
    a = getattr(aio, name, None)
    if not callable(a) or (name != "get_preview_url" and not inspect.iscoroutinefunction(a)):
        missing.append("Async" + ref)
print(json.dumps(missing))
`
		src, _ := filepath.Abs(filepath.Join(pyDir, "src"))
		out, err := command(ctx, pyDir, []string{"PYTHONPATH=" + src}, py, "-c", script, string(pyList)).CombinedOutput()
		if err != nil {
			t.Fatalf("python3: %v\n%s", err, out)
		}
		var missing []string
		if err := json.Unmarshal(out, &missing); err != nil {
			t.Fatalf("python3 output %q: %v", out, err)
		}
		if len(missing) > 0 {
			t.Errorf("python SDK lacks %v", missing)
		}
	})
	t.Run("typescript", func(t *testing.T) {
		buildTS(t)
		script := `
const sdk = await import("stacyvm");
const missing = [];
for (const ref of JSON.parse(process.argv[1])) {
  const [cls, name] = ref.split(".");
  if (typeof sdk[cls]?.prototype?.[name] !== "function") missing.push(ref);
}
console.log(JSON.stringify(missing));
`
		out, err := command(ctx, tsDir, nil, "node", "--input-type=module", "-e", script, string(tsList)).CombinedOutput()
		if err != nil {
			t.Fatalf("node: %v\n%s", err, out)
		}
		var missing []string
		if err := json.Unmarshal(out, &missing); err != nil {
			t.Fatalf("node output %q: %v", out, err)
		}
		if len(missing) > 0 {
			t.Errorf("typescript SDK lacks %v", missing)
		}
	})
}
