package oci

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// UpstreamError maps a failed upstream round trip to the error the client
// sees: 504 when the upstream was too slow, 502 for everything else. Both
// carry UNAVAILABLE but not its 503, which would blame the relay itself
// (caddy's reverse proxy draws the same line).
func UpstreamError(err error) *Error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return Err(CodeUnavailable, "upstream registry timed out").WithStatus(http.StatusGatewayTimeout)
	}
	return BadGateway(CodeUnavailable, "upstream registry unreachable")
}

// BadGateway is the error for an upstream answer the relay will not pass
// on (unreadable, oversized, a refused redirect or token realm). It
// answers 502 whatever code's own status: the fault lies upstream, not
// with the client's request nor with the relay (RFC 9110 section 15.6.3).
func BadGateway(code ErrorCode, message string) *Error {
	return Err(code, message).WithStatus(http.StatusBadGateway)
}
