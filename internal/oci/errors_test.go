package oci_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/oci"
)

func TestErrorServeHTTP(t *testing.T) {
	tests := []struct {
		method string
		err    *oci.Error
	}{
		{http.MethodGet, oci.Err(oci.CodeManifestUnknown, "manifest unknown")},
		{http.MethodGet, oci.Err(oci.CodeNameInvalid, `name "A" <invalid>`)},
		{http.MethodHead, oci.Err(oci.CodeUnauthorized, "authentication required")},
		{http.MethodPost, oci.Err(oci.CodeUnsupported, "read-only")},
		{http.MethodGet, oci.Err(oci.CodeUnsupported, "no token service").WithStatus(http.StatusNotFound)},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+string(tt.err.Code), func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.err.ServeHTTP(rec, httptest.NewRequest(tt.method, "/v2/x/manifests/y", nil))

			if rec.Code != tt.err.Status {
				t.Errorf("status = %d, want %d", rec.Code, tt.err.Status)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			wantLen := strconv.Itoa(len(tt.err.Body()))
			if cl := rec.Header().Get("Content-Length"); cl != wantLen {
				t.Errorf("Content-Length = %q, want %s", cl, wantLen)
			}
			if tt.method == http.MethodHead {
				if rec.Body.Len() != 0 {
					t.Errorf("HEAD wrote a body: %q", rec.Body)
				}
				return
			}
			var env struct {
				Errors []struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
				t.Fatalf("body %q is not JSON: %v", rec.Body, err)
			}
			if len(env.Errors) != 1 || env.Errors[0].Code != string(tt.err.Code) || env.Errors[0].Message != tt.err.Message {
				t.Errorf("body = %s, want one error %s %q", rec.Body, tt.err.Code, tt.err.Message)
			}
		})
	}
}

// TestErrStatus pins the code -> status table: the distribution spec's
// error codes, with distribution's errcode statuses where the spec gives
// none.
func TestErrStatus(t *testing.T) {
	tests := map[oci.ErrorCode]int{
		oci.CodeBlobUnknown:     404,
		oci.CodeDigestInvalid:   400,
		oci.CodeManifestUnknown: 404,
		oci.CodeManifestInvalid: 400,
		oci.CodeNameInvalid:     400,
		oci.CodeNameUnknown:     404,
		oci.CodeTagInvalid:      400,
		oci.CodeUnauthorized:    401,
		oci.CodeDenied:          403,
		oci.CodeUnsupported:     405,
		oci.CodeTooManyRequests: 429,
		oci.CodeUnavailable:     503,
		oci.CodeUnknown:         500,
		"NOT_A_CODE":            500,
	}
	for code, want := range tests {
		if got := oci.Err(code, "m"); got.Status != want || got.Code != code || got.Message != "m" {
			t.Errorf("Err(%s) = %d %s %q, want %d", code, got.Status, got.Code, got.Message, want)
		}
	}
}

func TestWithStatus(t *testing.T) {
	e := oci.Err(oci.CodeUnavailable, "down")
	o := e.WithStatus(http.StatusBadGateway)
	if o.Status != http.StatusBadGateway || o.Code != oci.CodeUnavailable || o.Message != "down" {
		t.Errorf("WithStatus = %d %s %q", o.Status, o.Code, o.Message)
	}
	if e.Status != http.StatusServiceUnavailable {
		t.Errorf("WithStatus changed the original to %d", e.Status)
	}
	if b := oci.BadGateway(oci.CodeDenied, "realm"); b.Status != http.StatusBadGateway || b.Code != oci.CodeDenied {
		t.Errorf("BadGateway = %d %s", b.Status, b.Code)
	}
}

func TestErrorBodyDetail(t *testing.T) {
	e := oci.Err(oci.CodeTagInvalid, "bad")
	if got, want := string(e.Body()), `{"errors":[{"code":"TAG_INVALID","message":"bad"}]}`+"\n"; got != want {
		t.Errorf("Body() = %q, want %q", got, want)
	}
	e.Detail = map[string]string{"tag": ".x"}
	if got := string(e.Body()); !strings.Contains(got, `"detail":{"tag":".x"}`) {
		t.Errorf("Body() = %q, want detail rendered", got)
	}
	if got := e.Error(); got != "TAG_INVALID: bad" {
		t.Errorf("Error() = %q", got)
	}
}

type timeoutError struct{ timeout bool }

func (e timeoutError) Error() string   { return "net error" }
func (e timeoutError) Timeout() bool   { return e.timeout }
func (e timeoutError) Temporary() bool { return false }

var _ net.Error = timeoutError{}

func TestUpstreamError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
	}{
		{"deadline", context.DeadlineExceeded, http.StatusGatewayTimeout},
		{"wrapped deadline", fmt.Errorf("get manifest: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{"net timeout", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{timeout: true}}, http.StatusGatewayTimeout},
		{"os deadline", os.ErrDeadlineExceeded, http.StatusGatewayTimeout},
		{"net error without timeout", timeoutError{timeout: false}, http.StatusBadGateway},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, http.StatusBadGateway},
		{"canceled", context.Canceled, http.StatusBadGateway},
		{"plain", errors.New("boom"), http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := oci.UpstreamError(tt.err)
			if got.Status != tt.status || got.Code != oci.CodeUnavailable {
				t.Errorf("UpstreamError(%v) = %d %s, want %d UNAVAILABLE", tt.err, got.Status, got.Code, tt.status)
			}
		})
	}
}

func TestCodeForStatus(t *testing.T) {
	tests := map[int]oci.ErrorCode{
		http.StatusUnauthorized:        oci.CodeUnauthorized,
		http.StatusForbidden:           oci.CodeDenied,
		http.StatusNotFound:            oci.CodeNameUnknown,
		http.StatusMethodNotAllowed:    oci.CodeUnsupported,
		http.StatusTooManyRequests:     oci.CodeTooManyRequests,
		http.StatusBadGateway:          oci.CodeUnavailable,
		http.StatusServiceUnavailable:  oci.CodeUnavailable,
		http.StatusGatewayTimeout:      oci.CodeUnavailable,
		http.StatusInternalServerError: oci.CodeUnknown,
		http.StatusTeapot:              oci.CodeUnknown,
		http.StatusOK:                  oci.CodeUnknown,
	}
	for status, want := range tests {
		if got := oci.CodeForStatus(status); got != want {
			t.Errorf("CodeForStatus(%d) = %s, want %s", status, got, want)
		}
	}
}
