package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// serve runs newHTTPServer with cfg on a loopback port.
func serve(t *testing.T, cfg HTTPConfig, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := newHTTPServer(cfg, ln.Addr().String(), h)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// A body trickled slower than the read timeout allows is cut off: the
// handler's read fails and the connection does not stay open.
func TestSlowBodyIsCutOff(t *testing.T) {
	readErr := make(chan error, 1)
	addr := serve(t, HTTPConfig{ReadTimeout: 300 * time.Millisecond, ReadHeaderTimeout: time.Second}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		http.Error(w, "x", http.StatusBadRequest)
	}))
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	start := time.Now()
	go func() {
		for k := 0; k < 100; k++ {
			if _, err := fmt.Fprintf(conn, "1\r\nx\r\n"); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	select {
	case err := <-readErr:
		require.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the trickled body was not cut off")
	}
	require.Less(t, time.Since(start), 3*time.Second)
	// The server closes the connection after answering.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	// The close may come as EOF or, when the trickle's last bytes were
	// still unread on the server, as a reset; never as our deadline.
	_, err = io.ReadAll(bufio.NewReader(conn))
	var netErr net.Error
	require.False(t, errors.As(err, &netErr) && netErr.Timeout(), "the connection ends, not the client's deadline: %v", err)
}

// The read timeout bounds reading the request only: a handler that runs
// longer (a long query) keeps its context, because net/http lifts the
// deadline once the body is read.
func TestReadTimeoutDoesNotCancelLongHandlers(t *testing.T) {
	addr := serve(t, HTTPConfig{ReadTimeout: 200 * time.Millisecond, ReadHeaderTimeout: time.Second}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
		case <-time.After(800 * time.Millisecond):
			fmt.Fprint(w, "finished")
		}
	}))
	for _, body := range []io.Reader{strings.NewReader("query=up"), nil} {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/query", body)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, "finished", string(b))
	}
}
