package auth_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/auth"
)

type params = []auth.Param

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   []auth.Challenge
	}{
		{"docker hub", `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"`,
			[]auth.Challenge{{Scheme: "Bearer", Params: params{
				{"realm", "https://auth.docker.io/token"}, {"service", "registry.docker.io"}, {"scope", "repository:library/nginx:pull"}}}}},
		{"comma in quoted value", `Bearer realm="https://r/token",scope="repository:a/b:pull,push"`,
			[]auth.Challenge{{Scheme: "Bearer", Params: params{{"realm", "https://r/token"}, {"scope", "repository:a/b:pull,push"}}}}},
		{"escaped quotes", `Basic realm="say \"hi\", \\o/"`,
			[]auth.Challenge{{Scheme: "Basic", Params: params{{"realm", `say "hi", \o/`}}}}},
		{"two challenges", `Basic realm="x", Bearer realm="y",service="z"`,
			[]auth.Challenge{{Scheme: "Basic", Params: params{{"realm", "x"}}}, {Scheme: "Bearer", Params: params{{"realm", "y"}, {"service", "z"}}}}},
		{"unquoted token values", `Bearer realm=registry,service=registry.example.com,error=invalid_token`,
			[]auth.Challenge{{Scheme: "Bearer", Params: params{{"realm", "registry"}, {"service", "registry.example.com"}, {"error", "invalid_token"}}}}},
		{"extra whitespace", "  Bearer   realm = \"r\" ,\t service=\"s\" , ",
			[]auth.Challenge{{Scheme: "Bearer", Params: params{{"realm", "r"}, {"service", "s"}}}}},
		{"empty quoted value", `Bearer realm="",scope=""`,
			[]auth.Challenge{{Scheme: "Bearer", Params: params{{"realm", ""}, {"scope", ""}}}}},
		{"token68 padding", `Negotiate abc==`, []auth.Challenge{{Scheme: "Negotiate", Params: params{{"", "abc=="}}}}},
		{"token68 bare", `Negotiate YII+/x`, []auth.Challenge{{Scheme: "Negotiate", Params: params{{"", "YII+/x"}}}}},
		{"token68 then challenge", `Negotiate abc=, Bearer realm="y"`,
			[]auth.Challenge{{Scheme: "Negotiate", Params: params{{"", "abc="}}}, {Scheme: "Bearer", Params: params{{"realm", "y"}}}}},
		{"scheme without params", `Bearer`, []auth.Challenge{{Scheme: "Bearer"}}},
		{"scheme without params then challenge", `Negotiate, Bearer realm="y"`,
			[]auth.Challenge{{Scheme: "Negotiate"}, {Scheme: "Bearer", Params: params{{"realm", "y"}}}}},
		{"rfc 7235 example", `Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`,
			[]auth.Challenge{{Scheme: "Newauth", Params: params{{"realm", "apps"}, {"type", "1"}, {"title", `Login to "apps"`}}},
				{Scheme: "Basic", Params: params{{"realm", "simple"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.ParseChallenges(tt.header)
			if err != nil {
				t.Fatalf("ParseChallenges(%q) error: %v", tt.header, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseChallenges(%q)\n got %#v\nwant %#v", tt.header, got, tt.want)
			}
			for _, c := range got {
				again, err := auth.ParseChallenges(c.String())
				if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], c) {
					t.Errorf("String() = %q reparses to %#v, %v", c.String(), again, err)
				}
			}
		})
	}
}

func TestParseChallengesErrors(t *testing.T) {
	many := strings.TrimSuffix(strings.Repeat(`Basic realm="x", `, 17), ", ")
	tests := []struct{ name, header string }{
		{"empty", ""},
		{"only separators", " , ,"},
		{"unterminated quote", `Bearer realm="https://r/token`},
		{"dangling escape", `Bearer realm="abc\`},
		{"garbage", `"quoted" scheme`},
		{"missing value", `Bearer realm=,service="s" x`},
		{"junk after value", `Bearer realm="r" junk`},
		{"equals without key", `Bearer ="r"`},
		{"too long", `Bearer realm="` + strings.Repeat("a", 16<<10) + `"`},
		{"too many challenges", many},
		{"too many params", "Bearer " + strings.TrimSuffix(strings.Repeat(`k="v",`, 33), ",")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.ParseChallenges(tt.header)
			if err == nil {
				t.Fatalf("ParseChallenges(%.40q) = %#v, want error", tt.header, got)
			}
			if !errors.Is(err, auth.ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
	// The limits are inclusive.
	if _, err := auth.ParseChallenges(strings.TrimSuffix(strings.Repeat(`Basic realm="x", `, 16), ", ")); err != nil {
		t.Errorf("16 challenges refused: %v", err)
	}
}

func TestChallengeGetSet(t *testing.T) {
	c := auth.Challenge{Scheme: "Bearer", Params: params{{"Realm", "a"}, {"service", "s"}}}
	if got := c.Get("realm"); got != "a" {
		t.Errorf("Get(realm) = %q", got)
	}
	if got := c.Get("scope"); got != "" {
		t.Errorf("Get(scope) = %q", got)
	}
	c.Set("REALM", "b")
	c.Set("scope", "repository:x:pull")
	want := `Bearer Realm="b",service="s",scope="repository:x:pull"`
	if got := c.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"`,
		`Basic realm="x", Bearer realm="y",service="z"`, `Bearer scope="a:b:pull,push"`, `Basic realm="\"q\""`,
		`Negotiate abc==`, `Negotiate, Bearer realm=y`, `Bearer realm=`, `Bearer realm="unterminated`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		cs, err := auth.ParseChallenges(h)
		if err != nil {
			return
		}
		if len(cs) == 0 {
			t.Fatalf("ParseChallenges(%q) accepted with no challenge", h)
		}
		rendered := make([]string, len(cs))
		for i, c := range cs {
			rendered[i] = c.String()
			again, err := auth.ParseChallenges(rendered[i])
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], c) {
				t.Fatalf("ParseChallenges(%q)[%d] = %#v renders %q, reparsed %#v, %v", h, i, c, rendered[i], again, err)
			}
		}
		joined := strings.Join(rendered, ", ")
		if again, err := auth.ParseChallenges(joined); err == nil && !reflect.DeepEqual(again, cs) {
			t.Fatalf("ParseChallenges(%q) = %#v, joined %q reparses to %#v", h, cs, joined, again)
		}
	})
}
