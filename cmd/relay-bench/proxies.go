package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// nginxConf is a streaming reverse proxy as an operator would tune it for
// a registry: no response or request buffering, HTTP/1.1 with a pool of
// idle upstream connections, no access log. Unbuffered, nginx relays
// through one proxy_buffer_size buffer, by default a 4 KiB page, which
// halves its blob throughput here; 32k matches the relay's buffer. /static/ serves the registry's
// blob files as plain files (sendfile), the yardstick for a blob cache.
const nginxConf = `%s
daemon off;
worker_processes auto;
worker_rlimit_nofile 16384;
pid %[2]s/nginx.pid;
error_log %[2]s/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path %[2]s/nginx-body;
  proxy_temp_path %[2]s/nginx-proxy;
  fastcgi_temp_path %[2]s/nginx-fastcgi;
  uwsgi_temp_path %[2]s/nginx-uwsgi;
  scgi_temp_path %[2]s/nginx-scgi;
  upstream registry {
    server %[3]s;
    keepalive 128;
  }
  server {
    listen %[4]s;
    location / {
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_buffer_size 32k;
      proxy_buffers 8 32k;
    }
    location /static/ {
      alias %[5]s/docker/registry/v2/blobs/;
    }
  }
}
`

// startNginx proxies to the registry at upstream (host:port) whose
// filesystem storage is root.
func (s *stack) startNginx(ctx context.Context, bin, upstream, root string) (*target, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// As root the workers would run as nobody and could not read the
	// registry's private temporary directory.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := filepath.Join(s.dir, "nginx.conf")
	text := fmt.Sprintf(nginxConf, user, s.dir, upstream, addr, root)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	base := "http://" + addr
	p, err := s.start(ctx, "nginx", bin, nil, base+"/v2/", "-p", s.dir, "-c", conf, "-e", filepath.Join(s.dir, "nginx-error.log"))
	if err != nil {
		return nil, err
	}
	return &target{name: "nginx", base: base, proc: p}, nil
}

// staticTarget is nginx serving blob files straight from the registry's
// storage, laid out as docker/registry/v2/blobs/sha256/ab/abcd…/data.
func staticTarget(nginx *target) *target {
	return &target{
		name: "nginx static", base: nginx.base, proc: nginx.proc,
		blobPath: func(digest string) string {
			hex := strings.TrimPrefix(digest, "sha256:")
			return "/static/sha256/" + hex[:2] + "/" + hex + "/data"
		},
	}
}

// caddyfile is Caddy's reverse_proxy flushing every write (flush_interval
// -1, like the relay), with as many idle upstream connections as nginx.
const caddyfile = `{
	admin off
	auto_https off
}
http://%s {
	reverse_proxy %s {
		flush_interval -1
		transport http {
			keepalive 90s
			keepalive_idle_conns 256
			keepalive_idle_conns_per_host 128
		}
	}
}
`

func (s *stack) startCaddy(ctx context.Context, bin, upstream string) (*target, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(s.dir, "Caddyfile")
	if err := os.WriteFile(conf, fmt.Appendf(nil, caddyfile, addr, upstream), 0o600); err != nil {
		return nil, err
	}
	home := filepath.Join(s.dir, "caddy-home")
	// Caddy keeps state under $HOME/XDG directories; keep it in the run's.
	env := []string{"HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home}
	base := "http://" + addr
	p, err := s.start(ctx, "caddy", bin, env, base+"/v2/", "run", "--config", conf, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	return &target{name: "caddy", base: base, proc: p}, nil
}
