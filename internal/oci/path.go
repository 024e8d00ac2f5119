package oci

import (
	"fmt"
	"regexp"
	"strings"
)

// Kind is the API endpoint family a request path belongs to. Its string form
// is used as a metrics label, so the set is small and fixed.
type Kind string

// Endpoint families of the distribution API, plus the relay's own.
const (
	KindPing      Kind = "ping"
	KindManifest  Kind = "manifest"
	KindBlob      Kind = "blob"
	KindTags      Kind = "tags"
	KindReferrers Kind = "referrers"
	KindToken     Kind = "token"
	KindOther     Kind = "other"
)

// Path is a parsed /v2/ request path.
type Path struct {
	Kind Kind
	// Name is the repository name; empty for the ping.
	Name string
	// Reference is the tag or digest of a manifest, or the digest of a blob
	// or referrers request.
	Reference string
	// Upload marks the blob upload endpoints (/blobs/uploads/…), which the
	// relay recognises only to refuse them.
	Upload bool
}

// IsDigest reports whether the reference is a digest rather than a tag.
func (p Path) IsDigest() bool { return strings.Contains(p.Reference, ":") }

// String renders the path back into its /v2/ form.
func (p Path) String() string {
	switch {
	case p.Kind == KindPing:
		return "/v2/"
	case p.Kind == KindTags:
		return "/v2/" + p.Name + "/tags/list"
	case p.Upload:
		return "/v2/" + p.Name + "/blobs/uploads/" + p.Reference
	case p.Kind == KindManifest:
		return "/v2/" + p.Name + "/manifests/" + p.Reference
	case p.Kind == KindBlob:
		return "/v2/" + p.Name + "/blobs/" + p.Reference
	case p.Kind == KindReferrers:
		return "/v2/" + p.Name + "/referrers/" + p.Reference
	case p.Kind == KindOther && p.Name == "":
		return "/v2/_catalog"
	}
	return "/v2/" + p.Name
}

// Grammar from the distribution spec ("Pulling manifests" and the
// reference package). A path component can never start with a dot, so
// "." and ".." are rejected by the name grammar itself.
var (
	nameComponent = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
	nameRE        = regexp.MustCompile(`^` + nameComponent + `(?:/` + nameComponent + `)*$`)
	tagRE         = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	digestRE      = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)
	hexRE         = regexp.MustCompile(`^[a-f0-9]+$`)
)

// MaxNameLength is distribution's limit on a repository name.
const MaxNameLength = 255

// ParsePath parses the escaped path of a /v2/ request. It rejects anything
// that a registry would not serve — percent-encoded bytes, dot segments,
// empty segments, invalid names, tags and digests — so that such requests
// never reach an upstream.
func ParsePath(escaped string) (Path, *Error) {
	if escaped == "/v2" || escaped == "/v2/" {
		return Path{Kind: KindPing}, nil
	}
	rest, ok := strings.CutPrefix(escaped, "/v2/")
	if !ok {
		return Path{}, Err(CodeNameUnknown, "not a registry API path")
	}
	if strings.ContainsAny(rest, "%\\") {
		return Path{}, Err(CodeNameInvalid, "encoded characters are not allowed in registry paths")
	}
	if rest == "_catalog" {
		return Path{Kind: KindOther}, nil
	}
	segs := strings.Split(rest, "/")
	p, n := classify(segs)
	if n == 0 {
		return Path{}, Err(CodeNameUnknown, "unknown registry API endpoint")
	}
	p.Name = strings.Join(segs[:n], "/")
	// On a bad name or reference the kind is still returned, for the
	// access log and metrics.
	if err := ValidateName(p.Name); err != nil {
		return Path{Kind: p.Kind}, err
	}
	if err := validateReference(p); err != nil {
		return Path{Kind: p.Kind}, err
	}
	return p, nil
}

// classify looks at the trailing segments and returns the endpoint and how
// many leading segments form the repository name (0 when none matches).
// Names may themselves contain "manifests" or "blobs", so only the tail
// decides.
func classify(segs []string) (Path, int) {
	n := len(segs)
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		return Path{Kind: KindTags}, n - 2
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		return Path{Kind: KindBlob, Upload: true}, n - 2
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		return Path{Kind: KindBlob, Upload: true, Reference: segs[n-1]}, n - 3
	case n >= 3 && segs[n-2] == "manifests":
		return Path{Kind: KindManifest, Reference: segs[n-1]}, n - 2
	case n >= 3 && segs[n-2] == "blobs":
		return Path{Kind: KindBlob, Reference: segs[n-1]}, n - 2
	case n >= 3 && segs[n-2] == "referrers":
		return Path{Kind: KindReferrers, Reference: segs[n-1]}, n - 2
	}
	return Path{}, 0
}

// ValidateName checks a repository name against the distribution grammar.
func ValidateName(name string) *Error {
	if len(name) > MaxNameLength {
		return Err(CodeNameInvalid, fmt.Sprintf("repository name longer than %d characters", MaxNameLength))
	}
	if !nameRE.MatchString(name) {
		return Err(CodeNameInvalid, "invalid repository name")
	}
	return nil
}

func validateReference(p Path) *Error {
	if p.Upload {
		// Refused later by method; the reference is an opaque upload id,
		// but still never a dot segment.
		if p.Reference == "." || p.Reference == ".." {
			return Err(CodeNameInvalid, "dot segments are not allowed in registry paths")
		}
		return nil
	}
	switch {
	case p.Kind == KindTags:
		return nil
	case p.Kind == KindManifest && !strings.Contains(p.Reference, ":"):
		if !tagRE.MatchString(p.Reference) {
			return Err(CodeTagInvalid, "invalid tag")
		}
		return nil
	}
	return ValidateDigest(p.Reference)
}

// ValidateDigest checks a digest's syntax, and for the registered
// algorithms its length and hex encoding (OCI image-spec, "Digests").
func ValidateDigest(d string) *Error {
	bad := Err(CodeDigestInvalid, "invalid digest")
	if len(d) > 256 || !digestRE.MatchString(d) {
		return bad
	}
	alg, enc, _ := strings.Cut(d, ":")
	want := map[string]int{"sha256": 64, "sha512": 128}[alg]
	if want != 0 && (len(enc) != want || !hexRE.MatchString(enc)) {
		return bad
	}
	return nil
}
