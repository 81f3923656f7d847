package ring

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
)

// gossipAddrs is where memberlist binds and what it tells peers to dial.
type gossipAddrs struct {
	bindIP        string
	bindPort      int
	advertiseIP   string
	advertisePort int
}

// resolveGossipAddrs turns -memberlist.bind-address and
// -memberlist.advertise-address into IPs. memberlist's own fallback (a
// private IP via go-sockaddr) fails outright on a machine with only
// loopback or public addresses, so the advertise address is always derived
// here and handed to memberlist explicitly.
func resolveGossipAddrs(ctx context.Context, cfg Config, logger *slog.Logger) (gossipAddrs, error) {
	host, port, err := splitBindAddr(cfg.BindAddr)
	if err != nil {
		return gossipAddrs{}, fmt.Errorf("bind address %q: %w", cfg.BindAddr, err)
	}
	a := gossipAddrs{bindIP: host, bindPort: port, advertisePort: port}
	if a.bindIP == "" {
		a.bindIP = "0.0.0.0"
	}
	bindAll := net.ParseIP(a.bindIP).IsUnspecified()
	switch {
	case cfg.AdvertiseAddr != "":
		advHost, advPort, err := splitAdvertiseAddr(cfg.AdvertiseAddr)
		if err != nil {
			return gossipAddrs{}, fmt.Errorf("advertise address %q: %w", cfg.AdvertiseAddr, err)
		}
		if a.advertiseIP, err = lookupIP(ctx, advHost); err != nil {
			return gossipAddrs{}, fmt.Errorf("advertise address %q: %w", cfg.AdvertiseAddr, err)
		}
		if advPort != 0 {
			a.advertisePort = advPort
		}
	case !bindAll:
		a.advertiseIP = a.bindIP
	default:
		ip, err := privateIPv4()
		if err != nil || ip == "" {
			// Other hosts cannot reach 127.0.0.1: fine for one machine,
			// wrong for a real cluster, hence the warning.
			logger.Warn("no private IPv4 address found, advertising 127.0.0.1; set -memberlist.advertise-address for a multi-host cluster", "err", err)
			ip = "127.0.0.1"
		}
		a.advertiseIP = ip
	}
	return a, nil
}

// lookupIP returns host if it is an IP, else its first IPv4 address (or
// first address of any family when it has no IPv4).
func lookupIP(ctx context.Context, host string) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), nil
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", host, err)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), nil
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("resolve %q: no addresses", host)
	}
	return ips[0].String(), nil
}

// sharedAddressSpace is RFC 6598 (100.64.0.0/10), used as pod network by
// some Kubernetes setups; memberlist counts it as private too.
var sharedAddressSpace = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}

// privateIPv4 returns the first private IPv4 address of an up interface, or
// "" when there is none.
func privateIPv4() (string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list network interfaces: %w", err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, addr := range addrs {
			ipnet, ok := addr.(*net.IPNet)
			if !ok {
				continue
			}
			if ip4 := ipnet.IP.To4(); ip4 != nil && (ip4.IsPrivate() || sharedAddressSpace.Contains(ip4)) {
				return ip4.String(), nil
			}
		}
	}
	return "", nil
}

// memberlistLogWriter turns memberlist's "[LEVEL] memberlist: msg" lines
// into structured slog records, so its output obeys our log level.
type memberlistLogWriter struct{ logger *slog.Logger }

var memberlistLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError},
}

func (w memberlistLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for _, pl := range memberlistLevels {
		if rest, ok := strings.CutPrefix(line, pl.prefix); ok {
			level, line = pl.level, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	w.logger.Log(context.Background(), level, line, "subsystem", "memberlist")
	return len(p), nil
}
