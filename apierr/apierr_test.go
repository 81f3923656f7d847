package apierr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoundTripThroughGRPC(t *testing.T) {
	for _, k := range []Kind{Internal, BadData, TooLarge, UnsupportedMediaType, TooManyRequests, Unauthorized, Unavailable, Canceled, Deduplicated, NotFound} {
		err := fmt.Errorf("push: %w", New(k, "kind %d", k))
		back := FromGRPC(ToGRPC(err))
		require.Equal(t, k, KindOf(back))
		require.Equal(t, "push: kind "+fmt.Sprint(k), back.Error())
	}
}

func TestHTTPStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{New(BadData, "x"), http.StatusBadRequest},
		{New(TooLarge, "x"), http.StatusRequestEntityTooLarge},
		{New(TooManyRequests, "x"), http.StatusTooManyRequests},
		{New(Unauthorized, "x"), http.StatusUnauthorized},
		{New(Unavailable, "x"), http.StatusServiceUnavailable},
		{New(Deduplicated, "x"), http.StatusAccepted},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), http.StatusServiceUnavailable},
		{errors.New("plain"), http.StatusInternalServerError},
	} {
		require.Equal(t, c.want, HTTPStatus(c.err), c.err.Error())
	}
}
