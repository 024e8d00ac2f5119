// Package oci holds the parts of the OCI distribution API that registry-relay
// needs at its edge: request path parsing and the JSON error envelope.
package oci

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ErrorCode is an error code from the OCI distribution specification
// ("Error Codes" section), plus the few that distribution uses in practice.
type ErrorCode string

// Codes the relay produces itself. Errors that come from an upstream are
// passed through untouched.
const (
	CodeBlobUnknown     ErrorCode = "BLOB_UNKNOWN"
	CodeDigestInvalid   ErrorCode = "DIGEST_INVALID"
	CodeManifestUnknown ErrorCode = "MANIFEST_UNKNOWN"
	CodeManifestInvalid ErrorCode = "MANIFEST_INVALID"
	CodeNameInvalid     ErrorCode = "NAME_INVALID"
	CodeNameUnknown     ErrorCode = "NAME_UNKNOWN"
	CodeTagInvalid      ErrorCode = "TAG_INVALID"
	CodeUnauthorized    ErrorCode = "UNAUTHORIZED"
	CodeDenied          ErrorCode = "DENIED"
	CodeUnsupported     ErrorCode = "UNSUPPORTED"
	CodeTooManyRequests ErrorCode = "TOOMANYREQUESTS"
	CodeUnavailable     ErrorCode = "UNAVAILABLE"
	CodeUnknown         ErrorCode = "UNKNOWN"
)

// Error is one OCI error, rendered as {"errors":[{"code","message","detail"}]}.
type Error struct {
	Status  int       `json:"-"`
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	Detail  any       `json:"detail,omitempty"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// NewError returns an error with the given status, code and message.
func NewError(status int, code ErrorCode, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// Body renders the error envelope, newline-terminated.
func (e *Error) Body() []byte {
	body, _ := json.Marshal(struct {
		Errors []*Error `json:"errors"`
	}{[]*Error{e}})
	return append(body, '\n')
}

// ServeHTTP writes the error envelope; HEAD responses get the headers only.
func (e *Error) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := e.Body()
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// CodeForStatus picks the code a registry would use for a bare HTTP status,
// for upstream answers that arrive without a JSON error body.
func CodeForStatus(status int) ErrorCode {
	switch status {
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeDenied
	case http.StatusNotFound:
		return CodeNameUnknown
	case http.StatusMethodNotAllowed:
		return CodeUnsupported
	case http.StatusTooManyRequests:
		return CodeTooManyRequests
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	return CodeUnknown
}
