package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/ingester/client"
	"github.com/orrery/orrery/proto/frontendpb"
	"github.com/orrery/orrery/tenant"
)

// maxResponseSize leaves room under the gRPC message limit for the
// response's envelope and headers.
const maxResponseSize = client.MaxMsgSize - 1<<20

// privateHeaders stay at the frontend: they authenticated the user there
// and a querier must not need them.
var privateHeaders = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// fromHTTPRequest reads r into a message. It consumes r.Body.
func fromHTTPRequest(r *http.Request) (*frontendpb.HTTPRequest, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, maxResponseSize+1)); err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		if len(body) > maxResponseSize {
			return nil, fmt.Errorf("request body longer than %d bytes", maxResponseSize)
		}
	}
	h := r.Header.Clone()
	for _, k := range privateHeaders {
		h.Del(k)
	}
	return &frontendpb.HTTPRequest{Method: r.Method, Url: r.URL.RequestURI(), Headers: fromHeader(h), Body: body}, nil
}

// toHTTPResponse turns a querier's answer into the response of req.
func toHTTPResponse(m *frontendpb.HTTPResponse, req *http.Request) *http.Response {
	h := toHeader(m.GetHeaders())
	return &http.Response{
		Status:     strconv.Itoa(int(m.GetCode())) + " " + http.StatusText(int(m.GetCode())),
		StatusCode: int(m.GetCode()), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(m.GetBody())), ContentLength: int64(len(m.GetBody())),
		Request: req,
	}
}

func fromHeader(h http.Header) []*frontendpb.Header {
	out := make([]*frontendpb.Header, 0, len(h))
	for k, vs := range h {
		out = append(out, &frontendpb.Header{Key: k, Values: vs})
	}
	return out
}

func toHeader(hs []*frontendpb.Header) http.Header {
	h := make(http.Header, len(hs))
	for _, x := range hs {
		h[http.CanonicalHeaderKey(x.GetKey())] = x.GetValues()
	}
	return h
}

// serveHTTP answers m with h, as the tenants its X-Scope-OrgID header
// names: the frontend authenticated the user and set that header, so it is
// trusted here without credentials. A panic in h becomes a 500 instead of
// ending the process, as net/http's server would have it.
func serveHTTP(ctx context.Context, h http.Handler, m *frontendpb.HTTPRequest, logger *slog.Logger) (resp *frontendpb.HTTPResponse) {
	r, err := http.NewRequestWithContext(ctx, m.GetMethod(), m.GetUrl(), bytes.NewReader(m.GetBody()))
	if err != nil {
		return errorResponse(http.StatusBadRequest, fmt.Sprintf("frontend request: %v", err))
	}
	r.Header = toHeader(m.GetHeaders())
	r.RequestURI = m.GetUrl()
	ids, err := tenant.ParseIDs(r.Header.Get(tenant.HeaderName))
	if err != nil {
		return errorResponse(http.StatusUnauthorized, err.Error())
	}
	r = r.WithContext(tenant.WithIDs(ctx, ids))
	defer func() {
		if p := recover(); p != nil {
			logger.Error("query handler panicked", "url", m.GetUrl(), "panic", p)
			resp = errorResponse(http.StatusInternalServerError, "internal error: the querier's handler panicked")
		}
	}()
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	h.ServeHTTP(rec, r)
	resp = &frontendpb.HTTPResponse{Code: int32(rec.code), Headers: fromHeader(rec.header), Body: rec.body.Bytes()}
	if size := proto.Size(resp); size > maxResponseSize {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("the querier's response is %d bytes, over the %d the frontend link carries: narrow the query", size, maxResponseSize))
	}
	return resp
}

// errorResponse is an error the queue answers itself, in the Prometheus
// API's JSON envelope, as every other error of the API is.
func errorResponse(code int, msg string) *frontendpb.HTTPResponse {
	typ := "internal"
	switch code {
	case http.StatusBadRequest, http.StatusUnauthorized:
		typ = "bad_data"
	}
	body, _ := json.Marshal(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", typ, msg})
	return &frontendpb.HTTPResponse{
		Code:    int32(code),
		Headers: []*frontendpb.Header{{Key: "Content-Type", Values: []string{"application/json"}}},
		Body:    body,
	}
}

// recorder is an http.ResponseWriter that keeps the whole response.
type recorder struct {
	header      http.Header
	code        int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.body.Write(b)
}

// Flush is a no-op: the response goes out whole. Handlers that stream
// (remote read's chunked responses) require an http.Flusher.
func (r *recorder) Flush() {}
