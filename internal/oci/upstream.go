package oci

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// UpstreamError maps a failed upstream round trip to the error the client
// sees: 504 when the upstream was too slow, 502 for everything else.
func UpstreamError(err error) *Error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return NewError(http.StatusGatewayTimeout, CodeUnavailable, "upstream registry timed out")
	}
	return NewError(http.StatusBadGateway, CodeUnavailable, "upstream registry unreachable")
}
