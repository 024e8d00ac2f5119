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

// statusOf ties each code to the HTTP status it answers with: the
// distribution spec's "Error Codes" table, completed with the statuses
// distribution's registry/api/errcode registers for the codes the spec
// lists without one (TAG_INVALID, UNSUPPORTED, UNAVAILABLE, UNKNOWN).
var statusOf = map[ErrorCode]int{
	CodeBlobUnknown:     http.StatusNotFound,
	CodeDigestInvalid:   http.StatusBadRequest,
	CodeManifestUnknown: http.StatusNotFound,
	CodeManifestInvalid: http.StatusBadRequest,
	CodeNameInvalid:     http.StatusBadRequest,
	CodeNameUnknown:     http.StatusNotFound,
	CodeTagInvalid:      http.StatusBadRequest,
	CodeUnauthorized:    http.StatusUnauthorized,
	CodeDenied:          http.StatusForbidden,
	CodeUnsupported:     http.StatusMethodNotAllowed,
	CodeTooManyRequests: http.StatusTooManyRequests,
	CodeUnavailable:     http.StatusServiceUnavailable,
	CodeUnknown:         http.StatusInternalServerError,
}

// Err returns an error with code's own status. A code outside the table
// answers 500, as UNKNOWN does.
func Err(code ErrorCode, message string) *Error {
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	return &Error{Status: status, Code: code, Message: message}
}

// WithStatus returns a copy of e that answers with status instead of its
// code's. It is for the few answers a client needs with another status
// (a fallback it only takes on 404, an upstream's status passed on); each
// caller says which and why.
func (e *Error) WithStatus(status int) *Error {
	c := *e
	c.Status = status
	return &c
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
