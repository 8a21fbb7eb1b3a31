package api

import (
	"bufio"
	"unicode/utf8"
)

// Exec output can be megabytes; encoding/json would convert it to a string,
// validate it, and marshal the whole value into one more buffer before a
// byte is written. writeJSONString escapes straight from the bytes into a
// buffered writer, so memory stays at the size of the output itself.

const hexDigits = "0123456789abcdef"

// safeASCII[b] is true for ASCII bytes that need no escaping in a JSON string.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// writeJSONString writes src as a quoted JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; U+2028 and U+2029 are escaped so the output
// is also safe to embed in JavaScript.
func writeJSONString(w *bufio.Writer, src []byte) error {
	w.WriteByte('"')
	start := 0
	for i := 0; i < len(src); {
		b := src[i]
		if b < utf8.RuneSelf {
			if safeASCII[b] {
				i++
				continue
			}
			w.Write(src[start:i])
			switch b {
			case '"', '\\':
				w.WriteByte('\\')
				w.WriteByte(b)
			case '\n':
				w.WriteString(`\n`)
			case '\r':
				w.WriteString(`\r`)
			case '\t':
				w.WriteString(`\t`)
			default:
				w.WriteString(`\u00`)
				w.WriteByte(hexDigits[b>>4])
				w.WriteByte(hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size == 1 {
			w.Write(src[start:i])
			w.WriteString(`\ufffd`)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			w.Write(src[start:i])
			w.WriteString(`\u202`)
			w.WriteByte(hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	w.Write(src[start:])
	return w.WriteByte('"')
}
