package distributor

import (
	"io"
	"mime"
	"net/http"

	"github.com/golang/snappy"

	"github.com/orrery/orrery/apierr"
)

// checkContentType accepts remote-write 1.0 bodies; other protobuf messages
// get 415 as the remote-write 2.0 spec asks, so a 2.0 sender falls back.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return apierr.New(apierr.UnsupportedMediaType, "unparseable Content-Type %q: %s", ct, err)
	}
	if mt != "application/x-protobuf" {
		return apierr.New(apierr.UnsupportedMediaType, "unsupported Content-Type %q: remote write needs application/x-protobuf", ct)
	}
	if p := params["proto"]; p != "" && p != "prometheus.WriteRequest" {
		return apierr.New(apierr.UnsupportedMediaType, "unsupported remote write message %q: this endpoint accepts prometheus.WriteRequest (remote write 1.0)", p)
	}
	return nil
}

// readBody reads a snappy-compressed body of at most limit bytes, and checks
// the length the body declares before decoding it: a few bytes can declare
// gigabytes (a real memory bomb against Prometheus).
func readBody(r io.Reader, contentLength int64, limit int) ([]byte, error) {
	if contentLength > int64(limit) {
		return nil, apierr.New(apierr.TooLarge, "request body is %d bytes, over the limit of %d bytes (err-orrery-request-too-large: raise -distributor.max-recv-msg-size)", contentLength, limit)
	}
	compressed, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, apierr.New(apierr.BadData, "reading request body: %s", err)
	}
	if len(compressed) > limit {
		return nil, apierr.New(apierr.TooLarge, "request body is over the limit of %d bytes (err-orrery-request-too-large: raise -distributor.max-recv-msg-size)", limit)
	}
	return decompress(compressed, limit)
}

func decompress(compressed []byte, limit int) ([]byte, error) {
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
	out, err := snappy.Decode(nil, compressed)
	if err != nil {
		return nil, apierr.New(apierr.BadData, "request body is not valid snappy: %s", err)
	}
	return out, nil
}
