// Package preview holds what the preview proxy needs besides the proxy
// itself: signed, expiring preview tokens and the parsing of preview hosts
// ("{port}-{id}.{domain}") and paths ("/preview/{id}/{port}/...").
package preview

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// MinSecretLen is the shortest accepted token secret, in bytes.
const MinSecretLen = 32

// Claims is what a preview token grants: port Port of sandbox Sandbox (of
// tenant Tenant) until Expires.
type Claims struct {
	Sandbox string    `json:"sb"`
	Port    int       `json:"port"`
	Tenant  string    `json:"ten,omitempty"`
	Expires time.Time `json:"-"`
	Exp     int64     `json:"exp"` // Unix seconds on the wire
}

// Signer mints and verifies preview tokens with HMAC-SHA256 (crypto/hmac).
// A token is "v1." + base64url(JSON claims) + "." + base64url(MAC over the
// first two parts); changing the secret revokes every token.
type Signer struct {
	key []byte
	now func() time.Time
}

// NewSigner returns a Signer for secret (at least MinSecretLen bytes); now
// is the clock (nil: time.Now).
func NewSigner(secret []byte, now func() time.Time) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, errs.New(errs.Invalid, "preview token secret must be at least %d bytes", MinSecretLen)
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{key: append([]byte(nil), secret...), now: now}, nil
}

const tokenPrefix = "v1."

// Mint returns a token for c; c.Expires must be in the future.
func (s *Signer) Mint(c Claims) (string, error) {
	if !c.Expires.After(s.now()) {
		return "", errs.New(errs.Invalid, "a preview token must expire in the future")
	}
	c.Exp = c.Expires.Unix()
	b, err := json.Marshal(c)
	if err != nil {
		return "", errs.Wrap(errs.Internal, err, "encode preview token")
	}
	body := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.mac(body)), nil
}

func (s *Signer) mac(body string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// maxTokenLen bounds what Verify looks at.
const maxTokenLen = 1024

// Verify checks a token's MAC and expiry and returns its claims; every
// failure is Unauthorized with a message that says which (never why the
// MAC differs).
func (s *Signer) Verify(token string) (Claims, error) {
	var c Claims
	bad := errs.New(errs.Unauthorized, "invalid preview token")
	if len(token) > maxTokenLen || !strings.HasPrefix(token, tokenPrefix) {
		return c, bad
	}
	i := strings.LastIndexByte(token, '.')
	if i <= len(tokenPrefix) {
		return c, bad
	}
	body, sig := token[:i], token[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(body)) {
		return c, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(body[len(tokenPrefix):])
	if err != nil || json.Unmarshal(raw, &c) != nil || c.Sandbox == "" || c.Port < 1 || c.Port > 65535 {
		return Claims{}, bad
	}
	c.Expires = time.Unix(c.Exp, 0)
	if !s.now().Before(c.Expires) {
		return Claims{}, errs.New(errs.Unauthorized, "preview token expired at %s", c.Expires.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// LoadOrCreateSecret returns the secret stored in file, creating the file
// (mode 0600, 32 random bytes, hex) when it does not exist.
func LoadOrCreateSecret(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		sec := []byte(strings.TrimSpace(string(b)))
		if len(sec) < MinSecretLen {
			return nil, fmt.Errorf("preview secret in %s is shorter than %d bytes", file, MinSecretLen)
		}
		return sec, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var raw [32]byte
	rand.Read(raw[:])
	sec := []byte(fmt.Sprintf("%x", raw[:]))
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateSecret(file) // another process won the race
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(append(sec, '\n')); err != nil {
		f.Close()
		return nil, err
	}
	return sec, f.Close()
}
