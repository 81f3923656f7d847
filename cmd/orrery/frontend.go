package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"

	"github.com/orrery/orrery/apierr"
	"github.com/orrery/orrery/ingester/client"
	"github.com/orrery/orrery/proto/frontendpb"
	"github.com/orrery/orrery/tenant"
)

// newGRPCServer returns the gRPC server of ingesters and query frontends.
// Every ingester call names its tenant in metadata, checked by the tenant
// interceptors; the frontend's Process stream belongs to no tenant (each
// request it carries names its own), so it is exempt.
func newGRPCServer(tlsCfg grpcTLSConfig) (*grpc.Server, error) {
	tlsOpt, err := tlsCfg.serverOption()
	if err != nil {
		return nil, err
	}
	return grpc.NewServer(
		grpc.MaxRecvMsgSize(client.MaxMsgSize), grpc.MaxSendMsgSize(client.MaxMsgSize),
		grpc.ChainUnaryInterceptor(recovery.UnaryServerInterceptor(), tenant.UnaryServerInterceptor),
		grpc.ChainStreamInterceptor(recovery.StreamServerInterceptor(), tenantStreamUnlessFrontend),
		tlsOpt,
	), nil
}

var frontendService = "/" + frontendpb.Frontend_ServiceDesc.ServiceName + "/"

func tenantStreamUnlessFrontend(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if strings.HasPrefix(info.FullMethod, frontendService) {
		return handler(srv, ss)
	}
	return tenant.StreamServerInterceptor(srv, ss, info, handler)
}

// passThrough is the query frontend's HTTP handler: every API request goes
// unchanged through the queue (rt) to a querier, under the tenant the
// authentication middleware put in its context.
func passThrough(rt http.RoundTripper) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids, err := tenant.IDsFromContext(r.Context())
		if err != nil {
			writeAPIError(w, apierr.New(apierr.Unauthorized, "%s", err))
			return
		}
		r = r.Clone(r.Context())
		r.Header.Set(tenant.HeaderName, tenant.JoinIDs(ids))
		resp, err := rt.RoundTrip(r)
		if err != nil {
			writeAPIError(w, err)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

// writeAPIError answers as the Prometheus API answers an error.
func writeAPIError(w http.ResponseWriter, err error) {
	code := apierr.HTTPStatus(err)
	errType := "internal"
	switch code {
	case http.StatusBadRequest:
		errType = "bad_data"
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		errType = "unavailable"
	case 499:
		errType = "canceled"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": errType, "error": err.Error()})
}
