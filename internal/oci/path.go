package oci

import (
	// go-digest validates only the algorithms whose hash is linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
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

// The tag grammar is distribution/reference's, anchored. Names and
// digests are checked by reference.WithName and go-digest below.
var tagRE = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)

// maxDigestLength bounds a digest of an algorithm go-digest does not know,
// whose encoding it checks for syntax only.
const maxDigestLength = 256

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

// ValidateName checks a repository name against the distribution grammar
// (distribution/reference). reference.WithName also admits a registry host
// as the first component ("Registry:5000/x", "[::1]/x"); a /v2/ path names
// a repository alone, so the characters only a host may hold are refused
// first. A name can never start with a dot, so "." and ".." are refused by
// the grammar itself.
func ValidateName(name string) *Error {
	if len(name) > reference.RepositoryNameTotalLengthMax {
		return Err(CodeNameInvalid, fmt.Sprintf("repository name longer than %d characters", reference.RepositoryNameTotalLengthMax))
	}
	if strings.ContainsFunc(name, hostOnly) {
		return Err(CodeNameInvalid, "invalid repository name")
	}
	// WithName bounds only the part after a host; the whole name was
	// bounded above.
	if _, err := reference.WithName(name); err != nil {
		return Err(CodeNameInvalid, "invalid repository name")
	}
	return nil
}

// hostOnly reports the characters reference's grammar allows in a registry
// host but not in a repository path: upper case, a port's colon, an IPv6
// literal's brackets.
func hostOnly(r rune) bool {
	return 'A' <= r && r <= 'Z' || r == ':' || r == '[' || r == ']'
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

// ValidateDigest checks a digest's syntax, and for the algorithms go-digest
// can compute (sha256, sha384, sha512) its length and lower-case hex
// encoding (OCI image-spec, "Digests"). Other algorithms pass on syntax
// alone: the upstream is the judge of what it stores.
func ValidateDigest(d string) *Error {
	if len(d) <= maxDigestLength {
		err := digest.Digest(d).Validate()
		if err == nil || errors.Is(err, digest.ErrDigestUnsupported) {
			return nil
		}
	}
	return Err(CodeDigestInvalid, "invalid digest")
}
