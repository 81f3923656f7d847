package distributor

import (
	"io"
	"mime"
	"net/http"

	"github.com/golang/snappy"

	"github.com/orrery/orrery/apierr"
)

// Remote-write protocol versions, by the message they carry.
const (
	v1 = 1
	v2 = 2
)

// protocolOf negotiates the message from the Content-Type: 1.0's
// prometheus.WriteRequest (also when no proto parameter or no Content-Type
// is given, as 1.0 senders do) or 2.0's io.prometheus.write.v2.Request.
// Anything else gets 415, as the 2.0 spec asks, so a sender can fall back.
func protocolOf(r *http.Request) (int, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return v1, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, apierr.New(apierr.UnsupportedMediaType, "unparseable Content-Type %q: %s", ct, err)
	}
	if mt != "application/x-protobuf" {
		return 0, apierr.New(apierr.UnsupportedMediaType, "unsupported Content-Type %q: remote write needs application/x-protobuf", ct)
	}
	switch params["proto"] {
	case "", "prometheus.WriteRequest":
		return v1, nil
	case "io.prometheus.write.v2.Request":
		return v2, nil
	}
	return 0, apierr.New(apierr.UnsupportedMediaType, "unsupported remote write message %q: this endpoint accepts prometheus.WriteRequest (1.0) and io.prometheus.write.v2.Request (2.0)", params["proto"])
}

// readBody reads a snappy-compressed body of at most limit bytes, and checks
// the length the body declares before decoding it: a few bytes can declare
// gigabytes (a real memory bomb against Prometheus). A body without a
// Content-Length, or with a false one, is cut at the limit while it is read.
// The buffer grows as bytes arrive, each growth charged to m before it is
// allocated: a client that declares 100 MiB and sends nothing holds nothing.
func readBody(r io.Reader, contentLength int64, limit int, m *meter) ([]byte, error) {
	if contentLength > int64(limit) {
		return nil, apierr.New(apierr.TooLarge, "request body is %d bytes, over the limit of %d bytes (err-orrery-request-too-large: raise -distributor.max-recv-msg-size)", contentLength, limit)
	}
	buf := make([]byte, 0, min(limit+1, 4096))
	if err := m.hold(cap(buf)); err != nil {
		return nil, err
	}
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return nil, apierr.New(apierr.TooLarge, "request body is over the limit of %d bytes (err-orrery-request-too-large: raise -distributor.max-recv-msg-size)", limit)
			}
			grown := min(2*cap(buf), limit+1)
			if err := m.hold(grown); err != nil {
				return nil, err
			}
			buf = append(make([]byte, 0, grown), buf...)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, apierr.New(apierr.BadData, "reading request body: %s", err)
		}
	}
	if len(buf) > limit {
		return nil, apierr.New(apierr.TooLarge, "request body is over the limit of %d bytes (err-orrery-request-too-large: raise -distributor.max-recv-msg-size)", limit)
	}
	return decompress(buf, limit, m)
}

func decompress(compressed []byte, limit int, m *meter) ([]byte, error) {
	if len(compressed) == 0 {
		return nil, apierr.New(apierr.BadData, "empty request body: expected a snappy-compressed remote write request")
	}
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return nil, apierr.New(apierr.BadData, "request body is not snappy-compressed (block format): %s", err)
	}
	if n > limit {
		return nil, apierr.New(apierr.TooLarge, "request decompresses to %d bytes, over the limit of %d bytes (err-orrery-request-too-large: raise -distributor.max-recv-msg-size)", n, limit)
	}
	if err := m.hold(n); err != nil {
		return nil, err
	}
	out, err := snappy.Decode(nil, compressed)
	if err != nil {
		return nil, apierr.New(apierr.BadData, "request body is not valid snappy: %s", err)
	}
	return out, nil
}
