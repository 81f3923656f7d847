// Package resultcodec is the binary form of a query's answer between a
// querier and the query frontend, and of the frontend's cached parts: the
// series of a matrix or vector as varints and raw float bits, which a
// frontend reads two orders of magnitude faster than the API's JSON.
//
// It owns that encoding and a v1.Codec that serves it to a client that
// asks for MIME in its Accept header. It must never be what a user's
// client gets without asking (the API's JSON stays the default), carry
// native histograms (the codec declines such answers, which then go out
// as JSON), or panic or over-allocate on bytes it did not write: cached
// bytes come from a shared Memcached.
package resultcodec
