package apierr

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Kind classifies an error by what the client should do about it.
type Kind int

const (
	// Internal is a fault of Orrery's: the client may retry.
	Internal Kind = iota
	// BadData is permanently bad input: retrying the same request fails again.
	BadData
	// TooLarge is a request over a size limit.
	TooLarge
	// UnsupportedMediaType is a body of a type or version not accepted.
	UnsupportedMediaType
	// TooManyRequests is a rate or concurrency limit: retry later.
	TooManyRequests
	// Unauthorized is a missing or invalid credential or tenant.
	Unauthorized
	// Unavailable is a transient lack of capacity, such as too few healthy
	// ingesters for a quorum: retry with backoff.
	Unavailable
	// Canceled means the client went away.
	Canceled
	// Deduplicated is a request dropped on purpose because another copy of
	// it is stored (the standby replica of an HA pair): 202, so that the
	// sender counts it delivered and does not retry.
	Deduplicated
	// NotFound is a request for something that does not exist.
	NotFound
	// MethodNotAllowed is a method the path does not take.
	MethodNotAllowed
)

// Error is an error with a Kind. Its message is safe to show to the client.
type Error struct {
	Kind Kind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// New returns an Error of kind k.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// KindOf returns the Kind of err: the first *Error in its chain, a context
// error, a gRPC status, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, context.Canceled) {
		return Canceled
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Unavailable
	}
	if s, ok := status.FromError(err); ok {
		return kindOfCode(s.Code())
	}
	return Internal
}

// HTTPStatus is the HTTP status code for err.
func HTTPStatus(err error) int {
	switch KindOf(err) {
	case BadData:
		return http.StatusBadRequest
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case UnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case TooManyRequests:
		return http.StatusTooManyRequests
	case Unauthorized:
		return http.StatusUnauthorized
	case Unavailable:
		return http.StatusServiceUnavailable
	case Deduplicated:
		return http.StatusAccepted
	case NotFound:
		return http.StatusNotFound
	case MethodNotAllowed:
		return http.StatusMethodNotAllowed
	case Canceled:
		// 499 is nginx's "client closed request"; nobody reads it, but logs do.
		return 499
	default:
		return http.StatusInternalServerError
	}
}

// Retryable is whether a client should send err's request again later:
// its status is 429 or 5xx, as remote-write and OTLP clients read it.
func Retryable(err error) bool {
	code := HTTPStatus(err)
	return code == http.StatusTooManyRequests || code >= 500
}

// ToGRPC converts err to a gRPC status error that keeps its kind and message.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codeOfKind(KindOf(err)), err.Error())
}

// FromGRPC turns a gRPC status error back into an *Error with its message, so
// that a client sees the ingester's words, not the transport's.
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	return &Error{Kind: kindOfCode(s.Code()), Msg: s.Message()}
}

func codeOfKind(k Kind) codes.Code {
	switch k {
	case BadData:
		return codes.InvalidArgument
	case TooLarge:
		return codes.OutOfRange
	case UnsupportedMediaType:
		return codes.Unimplemented
	case TooManyRequests:
		return codes.ResourceExhausted
	case Unauthorized:
		return codes.Unauthenticated
	case Unavailable:
		return codes.Unavailable
	case Canceled:
		return codes.Canceled
	case Deduplicated:
		return codes.AlreadyExists
	case NotFound:
		return codes.NotFound
	case MethodNotAllowed:
		return codes.Unimplemented
	default:
		return codes.Internal
	}
}

func kindOfCode(c codes.Code) Kind {
	switch c {
	case codes.InvalidArgument:
		return BadData
	case codes.OutOfRange:
		return TooLarge
	case codes.Unimplemented:
		return UnsupportedMediaType
	case codes.ResourceExhausted:
		return TooManyRequests
	case codes.Unauthenticated, codes.PermissionDenied:
		return Unauthorized
	case codes.Unavailable, codes.DeadlineExceeded:
		return Unavailable
	case codes.Canceled:
		return Canceled
	case codes.AlreadyExists:
		return Deduplicated
	case codes.NotFound:
		return NotFound
	default:
		return Internal
	}
}

// PrometheusType is the Prometheus HTTP API's errorType for err, for
// answers the API itself did not write (the query frontend's queue, its
// edge checks). Prometheus has no type for a refused or overloaded
// request; "unavailable" tells a client to retry later.
func PrometheusType(err error) string {
	switch KindOf(err) {
	case BadData, TooLarge, UnsupportedMediaType, MethodNotAllowed:
		return "bad_data"
	case NotFound:
		return "not_found"
	case TooManyRequests, Unavailable:
		return "unavailable"
	case Canceled:
		return "canceled"
	case Unauthorized:
		return "bad_data"
	default:
		return "internal"
	}
}
