package resultcodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// MIME is the content type of an encoded answer; a client that wants one
// sends it in Accept.
var MIME = v1.MIMEType{Type: "application", SubType: "x-orrery-query-result"}

// An answer is:
//
//	answer   = version:byte type:byte warnings:strings infos:strings body
//	body     = matrix (matrix, vector) | t:varint f:8 bytes (scalar) | t:varint string (string)
//	matrix   = series:uvarint series*
//	series   = labels:uvarint (name:string value:string)* points:uvarint point*
//	point    = t-delta:varint f:8 bytes, little-endian float64 bits
//	strings  = n:uvarint string*
//	string   = length:uvarint bytes
//
// A matrix's first point's delta is from a base the caller knows (0 for
// an answer). A vector is written as a matrix of one point per series.
const version = 1

const (
	typeMatrix byte = iota + 1
	typeVector
	typeScalar
	typeString
)

// Result is a decoded answer: Matrix holds a vector's samples too, one
// point per series.
type Result struct {
	Type     parser.ValueType
	Matrix   promql.Matrix
	Scalar   promql.Scalar
	String   promql.String
	Warnings []string
	Infos    []string
}

// Codec encodes query answers for v1.API.InstallCodec.
type Codec struct{}

// ContentType implements v1.Codec.
func (Codec) ContentType() v1.MIMEType { return MIME }

// CanEncode implements v1.Codec: successful query answers without native
// histograms or per-query statistics.
func (Codec) CanEncode(resp *v1.Response) bool {
	qd, ok := resp.Data.(*v1.QueryData)
	if !ok || resp.Status != "success" || qd.Stats != nil {
		return false
	}
	switch v := qd.Result.(type) {
	case promql.Matrix:
		for _, s := range v {
			if len(s.Histograms) > 0 {
				return false
			}
		}
		return true
	case promql.Vector:
		for _, s := range v {
			if s.H != nil {
				return false
			}
		}
		return true
	case promql.Scalar, promql.String:
		return true
	}
	return false
}

// Encode implements v1.Codec.
func (c Codec) Encode(resp *v1.Response) ([]byte, error) {
	if !c.CanEncode(resp) {
		return nil, errors.New("resultcodec: not an answer this codec encodes")
	}
	b := []byte{version, 0}
	b = appendStrings(b, resp.Warnings)
	b = appendStrings(b, resp.Infos)
	switch v := resp.Data.(*v1.QueryData).Result.(type) {
	case promql.Matrix:
		b[1] = typeMatrix
		b = AppendMatrix(b, 0, v)
	case promql.Vector:
		b[1] = typeVector
		b = binary.AppendUvarint(b, uint64(len(v)))
		for _, s := range v {
			b = appendLabels(b, s.Metric)
			b = binary.AppendUvarint(b, 1)
			b = appendPoint(b, s.T, s.F)
		}
	case promql.Scalar:
		b[1] = typeScalar
		b = appendPoint(b, v.T, v.V)
	case promql.String:
		b[1] = typeString
		b = binary.AppendVarint(b, v.T)
		b = appendString(b, v.V)
	}
	return b, nil
}

// Decode reads Encode's output.
func Decode(b []byte) (*Result, error) {
	if len(b) < 2 || b[0] != version {
		return nil, ErrCorrupt
	}
	typ := b[1]
	r := &Reader{b: b[2:]}
	res := &Result{Warnings: r.strings(), Infos: r.strings()}
	switch typ {
	case typeMatrix, typeVector:
		res.Type = parser.ValueTypeMatrix
		if typ == typeVector {
			res.Type = parser.ValueTypeVector
		}
		res.Matrix = r.Matrix(0)
	case typeScalar:
		res.Type = parser.ValueTypeScalar
		t := r.varint()
		res.Scalar = promql.Scalar{T: t, V: r.float()}
	case typeString:
		res.Type = parser.ValueTypeString
		t := r.varint()
		res.String = promql.String{T: t, V: r.string()}
	default:
		return nil, fmt.Errorf("%w: result type %d", ErrCorrupt, typ)
	}
	if err := r.Done(); err != nil {
		return nil, err
	}
	return res, nil
}

// AppendMatrix appends m to b, its points' times as deltas from base.
func AppendMatrix(b []byte, base int64, m promql.Matrix) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for _, s := range m {
		b = appendLabels(b, s.Metric)
		b = binary.AppendUvarint(b, uint64(len(s.Floats)))
		prev := base
		for _, p := range s.Floats {
			b = appendPoint(b, p.T-prev, p.F)
			prev = p.T
		}
	}
	return b
}

// MatrixSize is about how many bytes AppendMatrix adds for m.
func MatrixSize(m promql.Matrix) int {
	n := 8
	for _, s := range m {
		n += 64 + 10*len(s.Floats)
	}
	return n
}

func appendLabels(b []byte, ls labels.Labels) []byte {
	b = binary.AppendUvarint(b, uint64(ls.Len()))
	ls.Range(func(l labels.Label) {
		b = appendString(b, l.Name)
		b = appendString(b, l.Value)
	})
	return b
}

func appendPoint(b []byte, t int64, f float64) []byte {
	b = binary.AppendVarint(b, t)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// ErrCorrupt is bytes this package did not write.
var ErrCorrupt = errors.New("resultcodec: corrupt encoding")

// Reader reads the encoding; the first error sticks and every later read
// returns zero values.
type Reader struct {
	b   []byte
	err error
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err is the first error met.
func (r *Reader) Err() error { return r.err }

// Done is the first error met, or ErrCorrupt when bytes are left over.
func (r *Reader) Done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = ErrCorrupt
	}
	return r.err
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = ErrCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *Reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = ErrCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 { return r.varint() }

func (r *Reader) float() float64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = ErrCorrupt
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return f
}

// Count reads a length of elements of at least min bytes each, so that a
// corrupt length cannot make a caller allocate more than the input holds.
func (r *Reader) Count(min int) int {
	n := r.Uvarint()
	if r.err != nil || n > uint64(len(r.b)/min) {
		r.err = ErrCorrupt
		return 0
	}
	return int(n)
}

func (r *Reader) string() string {
	n := r.Count(1)
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *Reader) strings() []string {
	n := r.Count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for k := range out {
		out[k] = r.string()
	}
	return out
}

// Matrix reads what AppendMatrix wrote with the same base; nil after an
// error.
func (r *Reader) Matrix(base int64) promql.Matrix {
	m := make(promql.Matrix, r.Count(2))
	lb := labels.NewScratchBuilder(0)
	for k := range m {
		lb.Reset()
		for range r.Count(2) {
			lb.Add(r.string(), r.string())
		}
		lb.Sort()
		ps := make([]promql.FPoint, r.Count(9))
		t := base
		for i := range ps {
			t += r.varint()
			ps[i] = promql.FPoint{T: t, F: r.float()}
		}
		if r.err != nil {
			return nil
		}
		m[k] = promql.Series{Metric: lb.Labels(), Floats: ps}
	}
	if r.err != nil {
		return nil
	}
	return m
}
