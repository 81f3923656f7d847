package queue

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAuditErrorResponsesAreAPIErrors: the answers the queue makes up
// itself (a handler that panicked, a response too large for the link, a
// bad tenant header) are text/plain, where every other error of the
// Prometheus API is its JSON envelope; the frontend then hands such a body
// to the client as application/json, which API clients fail to decode.
func TestAuditErrorResponsesAreAPIErrors(t *testing.T) {
	s, _ := newScheduler(t, 10)
	startLocal(t, s, 1, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	resp, err := s.RoundTrip(newRequest(t, context.Background(), "a", "x"))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	var body struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body), "the error is the API's JSON envelope")
	require.Equal(t, "error", body.Status)
	require.Equal(t, "internal", body.ErrorType)
	require.Contains(t, resp.Header.Get("Content-Type"), "application/json")
}
