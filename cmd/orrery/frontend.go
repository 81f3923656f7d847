package main

import (
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"

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
