package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/golang/snappy"
)

// maxErrorBody bounds how much of a rejection body is kept in a StatusError;
// receivers explain themselves in a line or two, and a misbehaving one must
// not make the client buffer megabytes.
const maxErrorBody = 4 << 10

// StatusError is returned by Send when the receiver answers with a non-2xx
// status. Callers tell retryable (5xx, 429) from permanent (other 4xx)
// rejections by StatusCode.
type StatusError struct {
	StatusCode int
	Body       string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("remote write rejected: HTTP %d: %s", e.StatusCode, e.Body)
}

// Client pushes snappy-compressed remote_write 1.0 requests (or, from
// NewOTLPClient, OTLP/HTTP protobuf exports) to one URL over keep-alive
// connections. It is safe for concurrent use.
type Client struct {
	url    string
	tenant string
	hc     *http.Client
	otlp   bool
}

// NewOTLPClient is NewClient for OTLP/HTTP: Send posts the bodies
// OTLPRequest builds, uncompressed, as OpenTelemetry's exporters do by
// default.
func NewOTLPClient(url, tenant string, timeout time.Duration) *Client {
	c := NewClient(url, tenant, timeout)
	c.otlp = true
	return c
}

// NewClient returns a client for url. A non-empty tenant is sent as
// X-Scope-OrgID. timeout bounds each Send, connection set-up included.
func NewClient(url, tenant string, timeout time.Duration) *Client {
	transport := &http.Transport{
		// No proxy: the client must only ever reach the URL it was given,
		// whatever HTTP_PROXY says.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		// Bodies are already snappy-compressed; asking for gzip responses
		// would only cost the receiver CPU we are trying to measure.
		DisableCompression: true,
	}
	hc := &http.Client{
		Transport: transport,
		Timeout:   timeout,
		// A redirect would send the load somewhere the caller did not name;
		// surface it as a non-2xx status instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{url: url, tenant: tenant, hc: hc}
}

// Send posts one snappy-compressed WriteRequest (an OTLP export, for an
// OTLP client). It returns a *StatusError for a non-2xx answer and a
// wrapped transport error otherwise.
func (c *Client) Send(ctx context.Context, snappyBody []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(snappyBody))
	if err != nil {
		return fmt.Errorf("building remote write request for %s: %w", c.url, err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "orrery-loadgen")
	if !c.otlp {
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	if c.tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.tenant)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("remote write to %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Drain so the connection goes back to the pool.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return &StatusError{StatusCode: resp.StatusCode, Body: strings.TrimSpace(string(body))}
}

// CloseIdleConnections releases pooled connections, for tests and tools
// that stop one target before starting the next.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Compress snappy-encodes a marshalled request into dst (reused when large
// enough) with the block format remote write expects, not the stream format.
func Compress(dst, src []byte) []byte {
	return snappy.Encode(dst[:cap(dst)], src)
}
