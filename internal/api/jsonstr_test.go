package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// writeJSONString must produce what encoding/json produces for the same
// bytes seen as a string (invalid UTF-8 replaced by U+FFFD).
func FuzzWriteJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x01\x1f\x7f", "héllo ✓ 🙂", "\xff\xfe", "\xe2\x82", "line\nbreak\r\t", "\u2028\u2029", "<&>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := writeJSONString(w, src); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		var got string
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("output %q is not a JSON string: %v", buf.Bytes(), err)
		}
		if want := strings.ToValidUTF8(string(src), "\uFFFD"); got != want {
			// encoding/json replaces each invalid byte; ToValidUTF8 runs of them.
			var viaJSON string
			b, _ := json.Marshal(string(src))
			json.Unmarshal(b, &viaJSON)
			if got != viaJSON {
				t.Fatalf("decoded %q, want %q", got, viaJSON)
			}
		}
	})
}
