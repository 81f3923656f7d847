package loadgen

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func TestClientSend(t *testing.T) {
	tests := []struct {
		name       string
		tenant     string
		status     int
		reply      string
		wantStatus int // 0: success
	}{
		{"accepted", "", http.StatusNoContent, "", 0},
		{"accepted with tenant", "team-a", http.StatusOK, "", 0},
		{"bad request", "t", http.StatusBadRequest, "out of order sample\n", http.StatusBadRequest},
		{"overloaded", "", http.StatusTooManyRequests, "ingestion rate limit", http.StatusTooManyRequests},
		{"server error", "", http.StatusServiceUnavailable, "", http.StatusServiceUnavailable},
		{"redirect not followed", "", http.StatusTemporaryRedirect, "", http.StatusTemporaryRedirect},
	}
	g := New(1, 1)
	raw := g.AppendRequest(nil, 0, 10, 0, 1000)
	body := Compress(nil, raw)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotTenant, gotVersion string
			var got prompb.WriteRequest
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				require.Equal(t, http.MethodPost, r.Method)
				require.Equal(t, "snappy", r.Header.Get("Content-Encoding"))
				require.Equal(t, "application/x-protobuf", r.Header.Get("Content-Type"))
				gotVersion = r.Header.Get("X-Prometheus-Remote-Write-Version")
				gotTenant = r.Header.Get("X-Scope-OrgID")
				compressed, err := io.ReadAll(r.Body)
				require.NoError(t, err)
				decoded, err := snappy.Decode(nil, compressed)
				require.NoError(t, err)
				require.NoError(t, got.Unmarshal(decoded))
				if tt.status == http.StatusTemporaryRedirect {
					w.Header().Set("Location", "http://127.0.0.2:1/elsewhere")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.reply)
			}))
			defer srv.Close()
			c := NewClient(srv.URL+"/api/v1/push", tt.tenant, 5*time.Second)
			defer c.CloseIdleConnections()
			err := c.Send(context.Background(), body)
			require.Equal(t, "0.1.0", gotVersion)
			require.Equal(t, tt.tenant, gotTenant)
			require.Len(t, got.Timeseries, 10)
			if tt.wantStatus == 0 {
				require.NoError(t, err)
				return
			}
			var se *StatusError
			require.True(t, errors.As(err, &se), "want *StatusError, got %v", err)
			require.Equal(t, tt.wantStatus, se.StatusCode)
			require.Equal(t, tt.reply[:len(tt.reply)-countTrailingNewline(tt.reply)], se.Body)
		})
	}
}

func countTrailingNewline(s string) int {
	if len(s) > 0 && s[len(s)-1] == '\n' {
		return 1
	}
	return 0
}

func TestClientTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	err := NewClient(url, "", time.Second).Send(context.Background(), []byte{0})
	require.Error(t, err)
	var se *StatusError
	require.False(t, errors.As(err, &se))
	require.Contains(t, err.Error(), url)
}

func TestClientHonoursContext(t *testing.T) {
	// The handler blocks until the test ends; release is closed before the
	// server so Close does not wait for a handler that never returns.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := NewClient(srv.URL, "", 10*time.Second).Send(ctx, []byte{0})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)
}
