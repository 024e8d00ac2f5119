package oci_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/oci"
)

const (
	sha256Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	sha512Hex = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce" +
		"47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
	digest256 = "sha256:" + sha256Hex
	digest512 = "sha512:" + sha512Hex
)

func TestParsePathAccepts(t *testing.T) {
	tests := []struct {
		name string
		path string
		want oci.Path
	}{
		{"ping without slash", "/v2", oci.Path{Kind: oci.KindPing}},
		{"ping", "/v2/", oci.Path{Kind: oci.KindPing}},
		{"catalog", "/v2/_catalog", oci.Path{Kind: oci.KindOther}},
		{"manifest by tag", "/v2/nginx/manifests/latest", oci.Path{Kind: oci.KindManifest, Name: "nginx", Reference: "latest"}},
		{"manifest by tag with dots and dashes", "/v2/nginx/manifests/1.27-alpine_x", oci.Path{Kind: oci.KindManifest, Name: "nginx", Reference: "1.27-alpine_x"}},
		{"manifest uppercase tag", "/v2/nginx/manifests/V1", oci.Path{Kind: oci.KindManifest, Name: "nginx", Reference: "V1"}},
		{"manifest 128 char tag", "/v2/x/manifests/" + strings.Repeat("t", 128), oci.Path{Kind: oci.KindManifest, Name: "x", Reference: strings.Repeat("t", 128)}},
		{"manifest by digest", "/v2/library/nginx/manifests/" + digest256, oci.Path{Kind: oci.KindManifest, Name: "library/nginx", Reference: digest256}},
		{"blob sha256", "/v2/nginx/blobs/" + digest256, oci.Path{Kind: oci.KindBlob, Name: "nginx", Reference: digest256}},
		{"blob sha512", "/v2/nginx/blobs/" + digest512, oci.Path{Kind: oci.KindBlob, Name: "nginx", Reference: digest512}},
		{"tags list", "/v2/library/nginx/tags/list", oci.Path{Kind: oci.KindTags, Name: "library/nginx"}},
		{"referrers", "/v2/a/b/referrers/" + digest256, oci.Path{Kind: oci.KindReferrers, Name: "a/b", Reference: digest256}},
		{"nested name", "/v2/a/b/c/manifests/v1", oci.Path{Kind: oci.KindManifest, Name: "a/b/c", Reference: "v1"}},
		{"name component manifests", "/v2/manifests/manifests/latest", oci.Path{Kind: oci.KindManifest, Name: "manifests", Reference: "latest"}},
		{"name component blobs", "/v2/a/blobs/b/blobs/" + digest256, oci.Path{Kind: oci.KindBlob, Name: "a/blobs/b", Reference: digest256}},
		{"name with manifests then tags", "/v2/a/manifests/tags/list", oci.Path{Kind: oci.KindTags, Name: "a/manifests"}},
		{"name separators", "/v2/a.b_c__d--e/f/manifests/t", oci.Path{Kind: oci.KindManifest, Name: "a.b_c__d--e/f", Reference: "t"}},
		{"name 255 chars", "/v2/" + strings.Repeat("a", 255) + "/tags/list", oci.Path{Kind: oci.KindTags, Name: strings.Repeat("a", 255)}},
		{"upload start", "/v2/x/blobs/uploads/", oci.Path{Kind: oci.KindBlob, Name: "x", Upload: true}},
		{"upload start without slash", "/v2/x/blobs/uploads", oci.Path{Kind: oci.KindBlob, Name: "x", Upload: true}},
		{"upload session", "/v2/x/blobs/uploads/3f1c-AB_9", oci.Path{Kind: oci.KindBlob, Name: "x", Upload: true, Reference: "3f1c-AB_9"}},
		{"blob sha384", "/v2/nginx/blobs/sha384:" + strings.Repeat("0", 96), oci.Path{Kind: oci.KindBlob, Name: "nginx", Reference: "sha384:" + strings.Repeat("0", 96)}},
		{"host-like first component", "/v2/a.b-c/x/manifests/t", oci.Path{Kind: oci.KindManifest, Name: "a.b-c/x", Reference: "t"}},
		{"unregistered digest algorithm", "/v2/x/blobs/blake3:abcDEF012", oci.Path{Kind: oci.KindBlob, Name: "x", Reference: "blake3:abcDEF012"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := oci.ParsePath(tt.path)
			if err != nil {
				t.Fatalf("ParsePath(%q) = error %v", tt.path, err)
			}
			if got != tt.want {
				t.Fatalf("ParsePath(%q) = %#v, want %#v", tt.path, got, tt.want)
			}
			again, err := oci.ParsePath(got.String())
			if err != nil || again != got {
				t.Fatalf("String() = %q reparses to %#v, %v; want %#v", got.String(), again, err, got)
			}
			if got.IsDigest() != strings.Contains(tt.want.Reference, ":") {
				t.Errorf("IsDigest() = %v for reference %q", got.IsDigest(), got.Reference)
			}
		})
	}
}

func TestParsePathRejects(t *testing.T) {
	const (
		nameInvalid   = oci.CodeNameInvalid
		nameUnknown   = oci.CodeNameUnknown
		tagInvalid    = oci.CodeTagInvalid
		digestInvalid = oci.CodeDigestInvalid
	)
	tests := []struct {
		name   string
		path   string
		status int
		code   oci.ErrorCode
	}{
		{"dot dot name", "/v2/../x/manifests/a", 400, nameInvalid},
		{"dot dot inside name", "/v2/a/../b/manifests/a", 400, nameInvalid},
		{"dot name", "/v2/./x/manifests/a", 400, nameInvalid},
		{"dot dot tag", "/v2/x/manifests/..", 400, tagInvalid},
		{"dot dot blob", "/v2/x/blobs/..", 400, digestInvalid},
		{"dot dot upload id", "/v2/x/blobs/uploads/..", 400, nameInvalid},
		{"dot upload id", "/v2/x/blobs/uploads/.", 400, nameInvalid},
		{"leading empty segment", "/v2//x/manifests/a", 400, nameInvalid},
		{"inner empty segment", "/v2/a//b/manifests/t", 400, nameInvalid},
		{"uppercase name", "/v2/Library/nginx/manifests/latest", 400, nameInvalid},
		{"name with leading separator", "/v2/-a/manifests/latest", 400, nameInvalid},
		{"name with trailing separator", "/v2/a_/manifests/latest", 400, nameInvalid},
		{"encoded dot dot", "/v2/%2e%2e/x/manifests/a", 400, nameInvalid},
		{"encoded slash", "/v2/a%2Fb/manifests/a", 400, nameInvalid},
		{"encoded tag", "/v2/a/manifests/l%61test", 400, nameInvalid},
		{"backslash", `/v2/a\b/manifests/a`, 400, nameInvalid},
		{"name over 255", "/v2/" + strings.Repeat("a", 256) + "/tags/list", 400, nameInvalid},
		{"name over 255 with a host-like part", "/v2/" + strings.Repeat("a", 100) + "/" + strings.Repeat("b", 200) + "/tags/list", 400, nameInvalid},
		{"upper-case host first", "/v2/Registry.io/x/manifests/t", 400, nameInvalid},
		{"host with port first", "/v2/localhost:5000/x/manifests/t", 400, nameInvalid},
		{"IPv6 host first", "/v2/[abc]/x/manifests/t", 400, nameInvalid},
		{"sha384 short", "/v2/x/blobs/sha384:" + strings.Repeat("0", 95), 400, digestInvalid},
		{"empty tag", "/v2/x/manifests/", 400, tagInvalid},
		{"tag leading dot", "/v2/x/manifests/.v1", 400, tagInvalid},
		{"tag leading dash", "/v2/x/manifests/-v1", 400, tagInvalid},
		{"tag 129 chars", "/v2/x/manifests/" + strings.Repeat("t", 129), 400, tagInvalid},
		{"tag with plus", "/v2/x/manifests/v1+build", 400, tagInvalid},
		{"sha256 short", "/v2/x/blobs/sha256:" + sha256Hex[:63], 400, digestInvalid},
		{"sha256 long", "/v2/x/manifests/sha256:" + sha256Hex + "0", 400, digestInvalid},
		{"sha256 uppercase hex", "/v2/x/blobs/sha256:" + strings.ToUpper(sha256Hex), 400, digestInvalid},
		{"sha256 not hex", "/v2/x/blobs/sha256:" + strings.Repeat("g", 64), 400, digestInvalid},
		{"sha512 with sha256 length", "/v2/x/blobs/sha512:" + sha256Hex, 400, digestInvalid},
		{"missing algorithm", "/v2/x/blobs/:" + sha256Hex, 400, digestInvalid},
		{"blob without algorithm", "/v2/x/blobs/" + sha256Hex, 400, digestInvalid},
		{"referrers by tag", "/v2/x/referrers/latest", 400, digestInvalid},
		{"name only", "/v2/x", 404, nameUnknown},
		{"unknown endpoint", "/v2/x/foo/bar", 404, nameUnknown},
		{"tags without list", "/v2/x/tags/all", 404, nameUnknown},
		{"trailing slash on manifest", "/v2/x/manifests/latest/", 404, nameUnknown},
		{"not v2", "/v1/x/manifests/latest", 404, nameUnknown},
		{"root", "/", 404, nameUnknown},
		{"v2 prefix only as word", "/v2x/manifests/latest", 404, nameUnknown},
		{"empty", "", 404, nameUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := oci.ParsePath(tt.path)
			if err == nil {
				t.Fatalf("ParsePath(%q) = %#v, want error", tt.path, p)
			}
			if err.Status != tt.status || err.Code != tt.code {
				t.Fatalf("ParsePath(%q) error = %d %s (%s), want %d %s", tt.path, err.Status, err.Code, err.Message, tt.status, tt.code)
			}
			if err.Message == "" {
				t.Error("error has no message")
			}
		})
	}
}

func TestValidateDigest(t *testing.T) {
	tests := []struct {
		digest string
		ok     bool
	}{
		{digest256, true},
		{digest512, true},
		{"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", true},
		{"multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", true},
		{"", false},
		{"sha256", false},
		{"sha256:", false},
		{":" + sha256Hex, false},
		{"SHA256:" + sha256Hex, false},
		{"sha256:" + sha256Hex[:63], false},
		{"sha256:" + strings.ToUpper(sha256Hex), false},
		{"sha512:" + sha256Hex, false},
		{"sha512:" + sha512Hex[:127], false},
		{"sha256:" + sha256Hex + "/x", false},
		{"sha384:" + strings.Repeat("a", 96), true},
		{"sha384:" + strings.Repeat("a", 64), false},
		{"blake3:" + strings.Repeat("a", 64), true},
		{"foo:" + strings.Repeat("a", 300), false},
	}
	for _, tt := range tests {
		err := oci.ValidateDigest(tt.digest)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateDigest(%q) = %v, want ok=%v", tt.digest, err, tt.ok)
			continue
		}
		if err != nil && (err.Status != http.StatusBadRequest || err.Code != oci.CodeDigestInvalid) {
			t.Errorf("ValidateDigest(%q) = %d %s, want 400 DIGEST_INVALID", tt.digest, err.Status, err.Code)
		}
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{
		"nginx": true, "library/nginx": true, "a/b/c/d": true, "a-b--c": true, "a__b": true,
		"": false, "a___b": false, "a..b": false, "A": false, "a/": false, "/a": false, "a b": false,
		strings.Repeat("a", 255): true, strings.Repeat("a", 256): false,
	} {
		if err := oci.ValidateName(name); (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

// specName is the repository name grammar of the distribution spec, written
// out independently of the parser.
var specName = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)

// TestValidateNameMatchesSpec compares ValidateName with the spec's name
// grammar on every string of up to five characters over an alphabet that
// reaches each of its edges (separators, slashes, upper case, a host's
// port and brackets).
func TestValidateNameMatchesSpec(t *testing.T) {
	const alphabet = "a0A._-/:["
	var walk func(prefix string, n int)
	walk = func(prefix string, n int) {
		want := specName.MatchString(prefix)
		if got := oci.ValidateName(prefix) == nil; got != want {
			t.Errorf("ValidateName(%q) ok = %v, spec grammar says %v", prefix, got, want)
		}
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			walk(prefix+string(c), n-1)
		}
	}
	walk("", 5)
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"/v2", "/v2/", "/v2/_catalog", "/v2/nginx/manifests/latest", "/v2/a/b/c/blobs/" + digest256,
		"/v2/a/tags/list", "/v2/x/referrers/" + digest512, "/v2/x/blobs/uploads/", "/v2/x/blobs/uploads/abc",
		"/v2/../x/manifests/a", "/v2//x/manifests/a", "/v2/a/blobs/uploads/blobs/uploads", "/v2/%2e%2e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := oci.ParsePath(s)
		if err != nil {
			if err.Status != http.StatusBadRequest && err.Status != http.StatusNotFound {
				t.Fatalf("ParsePath(%q) status %d", s, err.Status)
			}
			return
		}
		again, err := oci.ParsePath(p.String())
		if err != nil || again != p {
			t.Fatalf("ParsePath(%q) = %#v; String() = %q reparses to %#v, %v", s, p, p.String(), again, err)
		}
		if p.Name != "" && (len(p.Name) > 255 || !specName.MatchString(p.Name)) {
			t.Fatalf("ParsePath(%q) accepted invalid name %q", s, p.Name)
		}
		if p.Name == "" && p.Kind != oci.KindPing && p.Kind != oci.KindOther {
			t.Fatalf("ParsePath(%q) = %#v without a name", s, p)
		}
		for _, seg := range strings.Split(strings.TrimPrefix(s, "/v2/"), "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("ParsePath(%q) accepted a dot segment: %#v", s, p)
			}
		}
		if strings.ContainsAny(s, `%\`) {
			t.Fatalf("ParsePath(%q) accepted an escaped path", s)
		}
	})
}
