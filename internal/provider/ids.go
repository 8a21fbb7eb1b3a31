package provider

import "github.com/stacyvm/stacyvm/internal/errs"

// ValidSandboxID accepts sandbox ids of 1 to max characters that are safe
// as a path element and a container name: [A-Za-z0-9_.-], not starting
// with a punctuation mark. Providers bound max so their per-sandbox socket
// paths fit in a unix socket address.
func ValidSandboxID(id string, max int) error {
	if id == "" || len(id) > max {
		return errs.New(errs.Invalid, "sandbox id must be 1 to %d characters", max)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_' || r == '.'))
		if !ok {
			return errs.New(errs.Invalid, "sandbox id %q has characters outside [A-Za-z0-9_.-]", id)
		}
	}
	return nil
}
