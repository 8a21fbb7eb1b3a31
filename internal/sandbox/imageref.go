package sandbox

import (
	"strings"

	"github.com/distribution/reference"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// imageRef is a parsed image reference: the form the sandbox records and
// the runtime receives, and every name an image policy is matched against.
type imageRef struct {
	familiar string   // what was asked for, in Docker's short form: "busybox", "stacyvm/python:3.12"
	names    []string // see canonicalImage
}

// canonicalImage parses image as Docker does (github.com/distribution/reference)
// and returns the names an image policy pattern is matched against, so that
// spelling one image differently cannot dodge a rule (decision 031):
//
//   - the familiar repository:             stacyvm/python, busybox
//   - the familiar reference:              stacyvm/python:latest, busybox@sha256:…
//   - the fully qualified repository:      docker.io/stacyvm/python, docker.io/library/busybox
//   - the fully qualified reference:       docker.io/library/busybox:latest
//
// A reference without tag or digest means ":latest" (what Docker runs). One
// with both a tag and a digest also yields name:tag and name@digest. The
// legacy index.docker.io host is folded into docker.io. Anything Docker would
// not accept (upper case, stray characters) is Invalid, and so is anything
// Docker would take for an image ID (isImageIDLike).
func canonicalImage(image string) (imageRef, error) {
	if len(image) > 255 {
		return imageRef{}, errs.New(errs.Invalid, "image reference is longer than 255 characters")
	}
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return imageRef{}, errs.New(errs.Invalid, "image %q is not a valid image reference", printable(image))
	}
	if isImageIDLike(reference.FamiliarName(named)) {
		// Docker resolves "sha256:<id>" and any unambiguous hex prefix of an
		// image ID to that image, whatever its name: a policy could not see
		// which image it is.
		return imageRef{}, errs.New(errs.Invalid, "image %q looks like an image ID; name the image by repository", printable(image))
	}
	full := reference.TagNameOnly(named)
	famName := reference.FamiliarName(full)
	names := []string{famName, full.Name()}
	add := func(suffix string) {
		names = append(names, famName+suffix, full.Name()+suffix)
	}
	tagged, isTagged := full.(reference.Tagged)
	digested, isDigested := full.(reference.Digested)
	if isTagged {
		add(":" + tagged.Tag())
	}
	if isDigested {
		add("@" + digested.Digest().String())
	}
	if isTagged && isDigested {
		add(":" + tagged.Tag() + "@" + digested.Digest().String())
	}
	return imageRef{familiar: reference.FamiliarString(named), names: names}, nil
}

// isImageIDLike reports whether a familiar repository name is one Docker's
// image lookup may treat as an image ID: "sha256" (from "sha256:<hex>") or a
// single path component of hex digits only (an ID prefix such as "3f57d9401f8d").
func isImageIDLike(name string) bool {
	if name == "sha256" {
		return true
	}
	if name == "" || strings.Contains(name, "/") {
		return false
	}
	for _, c := range name {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
