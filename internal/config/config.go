// Package config reads registry-relay's configuration from the environment
// and validates it, naming the offending variable in every error.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/registry-relay/registry-relay/internal/access"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// Config is the whole relay configuration.
type Config struct {
	BaseDomain        string        `env:"RELAY_BASE_DOMAIN" envDefault:"localhost"`
	Listen            string        `env:"RELAY_LISTEN" envDefault:":8080"`
	AdminListen       string        `env:"RELAY_ADMIN_LISTEN" envDefault:":9090"`
	TLSCert           string        `env:"RELAY_TLS_CERT"`
	TLSKey            string        `env:"RELAY_TLS_KEY"`
	LogLevel          string        `env:"RELAY_LOG_LEVEL" envDefault:"info"`
	LogFormat         string        `env:"RELAY_LOG_FORMAT" envDefault:"json"`
	PublicScheme      string        `env:"RELAY_PUBLIC_SCHEME"`
	TrustedProxies    []string      `env:"RELAY_TRUSTED_PROXIES" envSeparator:","`
	DialTimeout       time.Duration `env:"RELAY_UPSTREAM_DIAL_TIMEOUT" envDefault:"10s"`
	TLSTimeout        time.Duration `env:"RELAY_UPSTREAM_TLS_TIMEOUT" envDefault:"10s"`
	HeaderTimeout     time.Duration `env:"RELAY_UPSTREAM_HEADER_TIMEOUT" envDefault:"60s"`
	IdleTimeout       time.Duration `env:"RELAY_UPSTREAM_IDLE_TIMEOUT" envDefault:"60s"`
	ReadHeaderTimeout time.Duration `env:"RELAY_READ_HEADER_TIMEOUT" envDefault:"20s"`
	MaxRedirects      int           `env:"RELAY_MAX_REDIRECTS" envDefault:"10"`
	// PassBlobRedirects hands blob redirects (to CDNs) to the client
	// instead of following them, so blob bytes bypass the relay.
	PassBlobRedirects bool          `env:"RELAY_PASS_BLOB_REDIRECTS" envDefault:"false"`
	ShutdownGrace     time.Duration `env:"RELAY_SHUTDOWN_GRACE" envDefault:"30s"`
	// ShutdownDelay keeps accepting requests after /readyz starts failing,
	// so load balancers stop routing here before connections are refused.
	ShutdownDelay time.Duration `env:"RELAY_SHUTDOWN_DELAY" envDefault:"5s"`

	CustomRoutes []string `env:"RELAY_CUSTOM_ROUTES" envSeparator:","`

	// Abuse limits and access control (see internal/access).
	RateLimit         float64       `env:"RELAY_RATE_LIMIT" envDefault:"0"`
	RateBurst         int           `env:"RELAY_RATE_BURST" envDefault:"100"`
	MaxTransfersPerIP int           `env:"RELAY_MAX_TRANSFERS_PER_IP" envDefault:"0"`
	HtpasswdFile      string        `env:"RELAY_HTPASSWD_FILE"`
	TokenKeyFile      string        `env:"RELAY_TOKEN_KEY_FILE"`
	ClientTokenTTL    time.Duration `env:"RELAY_CLIENT_TOKEN_TTL" envDefault:"5m"`
	ClientUsers       *access.Users `env:"-"`
	ClientTokenKey    []byte        `env:"-"`
	// EphemeralTokenKey: ClientTokenKey is random, for this process only.
	EphemeralTokenKey bool `env:"-"`
	// Clock, when set, is the time for relay-token expiry, for when the
	// htpasswd file is looked at again, and for the cache's tag and
	// authorization lifetimes; tests set it.
	Clock func() time.Time `env:"-"`

	// The pull-through cache, off while CacheDir is empty.
	CacheDir      string        `env:"RELAY_CACHE_DIR"`
	CacheMaxSize  string        `env:"RELAY_CACHE_MAX_BYTES" envDefault:"10GiB"`
	CacheTagTTL   time.Duration `env:"RELAY_CACHE_TAG_TTL" envDefault:"30s"`
	CacheStaleMax time.Duration `env:"RELAY_CACHE_STALE_MAX" envDefault:"24h"`
	CacheAuthTTL  time.Duration `env:"RELAY_CACHE_AUTH_TTL" envDefault:"1m"`
	CacheMaxBytes int64         `env:"-"`
	// The shared cache in an S3-compatible bucket, alone or behind
	// CacheDir. Credentials come from the standard AWS variables, files
	// and web identity.
	CacheS3Endpoint  string `env:"RELAY_CACHE_S3_ENDPOINT"`
	CacheS3Bucket    string `env:"RELAY_CACHE_S3_BUCKET"`
	CacheS3Prefix    string `env:"RELAY_CACHE_S3_PREFIX"`
	CacheS3Region    string `env:"RELAY_CACHE_S3_REGION"`
	CacheS3PathStyle bool   `env:"RELAY_CACHE_S3_PATH_STYLE" envDefault:"false"`
	// The other replicas of this relay, among which each blob has one
	// owner that fills it for the fleet (base URLs, this one's included).
	Peers []string `env:"RELAY_PEERS" envSeparator:","`
	// PeersDNS finds them instead: a name (a headless Service) and the
	// port, looked up every 15 s.
	PeersDNS       string `env:"RELAY_PEERS_DNS"`
	PeerSelf       string `env:"RELAY_PEER_SELF"`
	PeerSecretFile string `env:"RELAY_PEER_SECRET_FILE"`
	PeerSecret     []byte `env:"-"`
	// The mirror host: Docker registry-mirrors, containerd ?ns=, podman
	// location prefixes and "relay/gcr.io/x/y" path prefixes.
	MirrorEnabled  bool   `env:"MIRROR_ENABLED" envDefault:"true"`
	MirrorDomain   string `env:"MIRROR_ACCESS_DOMAIN"`
	RegistryMap    string `env:"DOCKER_REGISTRY_MAP"`
	OfficialImages string `env:"DOCKER_HUB_OFFICIAL_IMAGES"`
	FallbackMap    string `env:"FALLBACK_REGISTRY_MAP"`

	// Filled by Load from the variables above and the per-route ones.
	Routes []*registry.Route `env:"-"`
	// Policies are each route's repository and client lists, by route
	// name: the route table is plain data, the relay applies these.
	Policies map[string]access.RoutePolicy `env:"-"`
	Mirror   *registry.Mirror              `env:"-"`
	Trusted  []netip.Prefix                `env:"-"`
}

// routeEnv is read once per built-in route with the route's prefix,
// e.g. DOCKERHUB_ACCESS_DOMAIN.
type routeEnv struct {
	Enabled      bool     `env:"ENABLED" envDefault:"true"`
	AccessDomain string   `env:"ACCESS_DOMAIN"`
	Upstream     string   `env:"UPSTREAM"`
	AuthHosts    []string `env:"AUTH_HOSTS" envSeparator:","`
	// CredentialHosts are redirect targets that still get the client's
	// token (lscr.io's ghcr.io), for routes pointed at another upstream.
	CredentialHosts []string `env:"CREDENTIAL_HOSTS" envSeparator:","`
	Username        string   `env:"USERNAME"`
	AllowRepos      []string `env:"ALLOW_REPOS" envSeparator:","`
	DenyRepos       []string `env:"DENY_REPOS" envSeparator:","`
	AllowCIDRs      []string `env:"ALLOW_CIDRS" envSeparator:","`
	Password        string   `env:"PASSWORD"`
	PasswordFile    string   `env:"PASSWORD_FILE"`
	// Custom routes only.
	LibraryPatch bool   `env:"LIBRARY_PATCH" envDefault:"false"`
	Registry     string `env:"REGISTRY"`
}

// Load reads the configuration from environ (as from env.ToMap(os.Environ())).
func Load(environ map[string]string) (*Config, error) {
	c := &Config{}
	if err := env.ParseWithOptions(c, env.Options{Environment: environ}); err != nil {
		return nil, explain(err, "", c)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := c.loadRoutes(environ); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) validate() error {
	for name, addr := range map[string]string{"RELAY_LISTEN": c.Listen, "RELAY_ADMIN_LISTEN": c.AdminListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s=%q: want host:port or :port: %w", name, addr, err)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("RELAY_TLS_CERT and RELAY_TLS_KEY must be set together")
	}
	if err := oneOf("RELAY_LOG_LEVEL", c.LogLevel, "debug", "info", "warn", "error"); err != nil {
		return err
	}
	if err := oneOf("RELAY_LOG_FORMAT", c.LogFormat, "json", "text"); err != nil {
		return err
	}
	if err := oneOf("RELAY_PUBLIC_SCHEME", c.PublicScheme, "", "http", "https"); err != nil {
		return err
	}
	if c.MaxRedirects < 0 {
		return fmt.Errorf("RELAY_MAX_REDIRECTS=%d: must not be negative", c.MaxRedirects)
	}
	for name, d := range map[string]time.Duration{
		"RELAY_UPSTREAM_DIAL_TIMEOUT": c.DialTimeout, "RELAY_UPSTREAM_TLS_TIMEOUT": c.TLSTimeout,
		"RELAY_UPSTREAM_HEADER_TIMEOUT": c.HeaderTimeout, "RELAY_SHUTDOWN_GRACE": c.ShutdownGrace,
		"RELAY_UPSTREAM_IDLE_TIMEOUT": c.IdleTimeout, "RELAY_READ_HEADER_TIMEOUT": c.ReadHeaderTimeout,
		"RELAY_SHUTDOWN_DELAY": c.ShutdownDelay, "RELAY_CACHE_TAG_TTL": c.CacheTagTTL,
		"RELAY_CACHE_STALE_MAX": c.CacheStaleMax, "RELAY_CACHE_AUTH_TTL": c.CacheAuthTTL,
		"RELAY_CLIENT_TOKEN_TTL": c.ClientTokenTTL,
	} {
		if d < 0 {
			return fmt.Errorf("%s=%s: must not be negative", name, d)
		}
	}
	n, err := ParseSize(c.CacheMaxSize)
	if err != nil || n <= 0 {
		return fmt.Errorf("RELAY_CACHE_MAX_BYTES=%q: want a positive size such as 50GiB or 2000000000", c.CacheMaxSize)
	}
	c.CacheMaxBytes = n
	if err := c.validateS3(); err != nil {
		return err
	}
	if err := c.loadPeers(); err != nil {
		return err
	}
	if err := c.loadAccess(); err != nil {
		return err
	}
	return c.parseTrusted()
}

// ParseSize reads a byte count with an optional unit: 1000-based (KB, MB,
// GB, TB) or 1024-based (KiB, MiB, GiB, TiB).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	mult, ok := map[string]float64{
		"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || v < 0 || v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return int64(v * mult), nil
}

func (c *Config) parseTrusted() error {
	for _, s := range c.TrustedProxies {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := access.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("RELAY_TRUSTED_PROXIES: %w", err)
		}
		c.Trusted = append(c.Trusted, p)
	}
	return nil
}

func oneOf(name, value string, allowed ...string) error {
	for _, a := range allowed {
		if strings.EqualFold(value, a) {
			return nil
		}
	}
	return fmt.Errorf("%s=%q: want one of %s", name, value, strings.Join(allowed, ", "))
}

// explain rewrites env's errors, which name struct fields, to name the
// environment variable the operator has to fix.
func explain(err error, prefix string, v any) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	t := reflect.TypeOf(v).Elem()
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := t.FieldByName(pe.Name); ok {
				msgs = append(msgs, fmt.Sprintf("%s%s: %v", prefix, f.Tag.Get("env"), pe.Err))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return errors.New("invalid configuration: " + strings.Join(msgs, "; "))
}

// validateS3 checks the shared cache's settings: an endpoint needs a
// bucket, and is an http(s) base URL or a bare host (https).
func (c *Config) validateS3() error {
	if c.CacheS3Endpoint == "" {
		if c.CacheS3Bucket != "" {
			return errors.New("RELAY_CACHE_S3_BUCKET is set without RELAY_CACHE_S3_ENDPOINT")
		}
		return nil
	}
	if c.CacheS3Bucket == "" {
		return errors.New("RELAY_CACHE_S3_ENDPOINT is set without RELAY_CACHE_S3_BUCKET")
	}
	if !strings.Contains(c.CacheS3Endpoint, "://") {
		c.CacheS3Endpoint = "https://" + c.CacheS3Endpoint
	}
	if _, err := ParseUpstream(c.CacheS3Endpoint); err != nil {
		return fmt.Errorf("RELAY_CACHE_S3_ENDPOINT=%q: %w", c.CacheS3Endpoint, err)
	}
	if p := strings.Trim(c.CacheS3Prefix, "/"); p != "" {
		c.CacheS3Prefix = p + "/"
	}
	return nil
}

// loadPeers reads the fleet's settings: RELAY_PEERS needs this replica's
// own address among them and a shared secret (32+ bytes), which peers'
// requests to each other are signed with.
func (c *Config) loadPeers() error {
	c.Peers = trimAll(c.Peers)
	switch {
	case len(c.Peers) == 0 && c.PeersDNS == "" && c.PeerSelf == "" && c.PeerSecretFile == "":
		return nil
	case len(c.Peers) == 0 && c.PeersDNS == "":
		return errors.New("RELAY_PEER_SELF or RELAY_PEER_SECRET_FILE is set without RELAY_PEERS or RELAY_PEERS_DNS")
	case len(c.Peers) > 0 && c.PeersDNS != "":
		return errors.New("RELAY_PEERS and RELAY_PEERS_DNS are both set: name the peers one way")
	case c.PeerSelf == "" || c.PeerSecretFile == "":
		return errors.New("RELAY_PEERS and RELAY_PEERS_DNS need RELAY_PEER_SELF (this replica's own address) and RELAY_PEER_SECRET_FILE")
	}
	if c.PeersDNS != "" {
		if _, port, err := net.SplitHostPort(c.PeersDNS); err != nil || port == "" {
			return fmt.Errorf("RELAY_PEERS_DNS=%q: want name:port, such as registry-relay-peers.registry-relay.svc:8080", c.PeersDNS)
		}
	}
	raw, err := os.ReadFile(c.PeerSecretFile)
	if err != nil {
		return fmt.Errorf("RELAY_PEER_SECRET_FILE: %w", err)
	}
	if c.PeerSecret = bytes.TrimSpace(raw); len(c.PeerSecret) < 32 {
		return fmt.Errorf("RELAY_PEER_SECRET_FILE %s: want at least 32 bytes of secret, got %d", c.PeerSecretFile, len(c.PeerSecret))
	}
	return nil
}
