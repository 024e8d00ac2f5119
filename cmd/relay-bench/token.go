package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// challengeParam matches realm="…" and service="…". The challenges here
// come from distribution and the relay, which quote every value and put
// no quotes inside, so a full RFC 7235 parser is not needed.
var challengeParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

// tokenFlow is a client's first pull of a manifest from a token-auth
// registry, with nothing cached: ping, read the challenge, fetch an
// anonymous pull token for the repository, fetch the manifest with it.
func tokenFlow(ctx context.Context, c *http.Client, base string) error {
	realm, service, err := challenge(ctx, c, base+"/v2/")
	if err != nil {
		return err
	}
	token, err := fetchToken(ctx, c, realm, service, "repository:"+smallRepo+":pull")
	if err != nil {
		return err
	}
	req, err := newRequest(ctx, http.MethodGet, base+"/v2/"+smallRepo+"/manifests/"+smallTag, "")
	if err != nil {
		return err
	}
	req.Header.Set("Accept", manifestAccept)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("manifest with token: %s", resp.Status)
	}
	return nil
}

// challenge pings url and returns the Bearer challenge's realm and service.
func challenge(ctx context.Context, c *http.Client, url string) (string, string, error) {
	req, err := newRequest(ctx, http.MethodGet, url, "")
	if err != nil {
		return "", "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	defer drain(resp)
	h := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(h, "Bearer ") {
		return "", "", fmt.Errorf("ping %s: %s, challenge %q", url, resp.Status, h)
	}
	params := map[string]string{}
	for _, m := range challengeParam.FindAllStringSubmatch(h, -1) {
		params[m[1]] = m[2]
	}
	return params["realm"], params["service"], nil
}

func fetchToken(ctx context.Context, c *http.Client, realm, service, scope string) (string, error) {
	u, err := url.Parse(realm)
	if err != nil {
		return "", fmt.Errorf("realm %q: %w", realm, err)
	}
	u.RawQuery = url.Values{"service": {service}, "scope": {scope}}.Encode()
	req, err := newRequest(ctx, http.MethodGet, u.String(), "")
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token from %s: %s", realm, resp.Status)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
		return "", fmt.Errorf("token from %s: %w", realm, err)
	}
	if body.Token == "" {
		body.Token = body.AccessToken
	}
	return body.Token, nil
}

// drain reads what is left of a small body so the connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}

// tokenLatency runs token flows one after another for dur.
func tokenLatency(ctx context.Context, c *http.Client, base string, dur time.Duration) (latency, error) {
	return loop(ctx, 1, dur, func(ctx context.Context) error { return tokenFlow(ctx, c, base) })
}
