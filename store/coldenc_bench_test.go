package store

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/loadgen"
)

// BenchmarkColdEncoding is issue 12's encoding study for compacted (cold)
// data: the load tool's series over 6 hours of 15 s samples, encoded as the
// store holds them today (XOR chunks cut at 120 samples) and as candidates
// for compaction (longer runs; Prometheus's XOR2; zstd over a series' run
// or over a whole partition of runs). It reports the payload's bytes per
// sample (keys, index and page slack come on top) and the time to decode
// every sample, and checks that every candidate reads back bit-exact.
//
//	go test ./store -run '^$' -bench BenchmarkColdEncoding -benchtime 1x
func BenchmarkColdEncoding(b *testing.B) {
	const steps = 6 * 3600 / 15
	gen := loadgen.New(42, 20)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	values := make([][]float64, gen.Len())
	for k := range values {
		values[k] = make([]float64, steps)
		for s := range steps {
			values[k][s] = gen.Value(k, s)
		}
	}
	samples := float64(gen.Len() * steps)
	ts := func(s int) int64 { return t0 + int64(s)*15_000 }

	encodeRuns := func(b *testing.B, enc chunkenc.Encoding, run int) [][][]byte {
		out := make([][][]byte, len(values))
		for k, vs := range values {
			for from := 0; from < steps; from += run {
				c, err := chunkenc.NewEmptyChunk(enc)
				require.NoError(b, err)
				app, err := c.Appender()
				require.NoError(b, err)
				for s := from; s < min(from+run, steps); s++ {
					app.Append(0, ts(s), vs[s])
				}
				out[k] = append(out[k], c.Bytes())
			}
		}
		return out
	}
	// decode reads every chunk back and compares each sample bit for bit.
	decode := func(b *testing.B, enc chunkenc.Encoding, chunks [][][]byte) {
		var it chunkenc.Iterator
		for k, cs := range chunks {
			s := 0
			for _, data := range cs {
				c, err := chunkenc.FromData(enc, data)
				require.NoError(b, err)
				it = c.Iterator(it)
				for it.Next() == chunkenc.ValFloat {
					t, v := it.At()
					if t != ts(s) || math.Float64bits(v) != math.Float64bits(values[k][s]) {
						b.Fatalf("series %d sample %d: got %d %v, want %d %v", k, s, t, v, ts(s), values[k][s])
					}
					s++
				}
				require.NoError(b, it.Err())
			}
			require.Equal(b, steps, s)
		}
	}
	size := func(chunks [][][]byte) (n int) {
		for _, cs := range chunks {
			for _, c := range cs {
				n += len(c)
			}
		}
		return n
	}

	// The decimal candidate (in the spirit of ALP and VictoriaMetrics):
	// a run whose values are all exactly v = x / 10^e for integers x
	// (|x| < 2^53) stores the deltas of x as zigzag varints, and its
	// timestamps as delta-of-deltas; any other run keeps its XOR chunk.
	// All of it then goes through zstd as one partition.
	b.Run("decimal+zstd-partition", func(b *testing.B) {
		var raw []byte
		decimalRuns := 0
		for k, vs := range values {
			if e, xs, ok := decimalRun(vs); ok {
				decimalRuns++
				raw = append(raw, 1, byte(e))
				prevT, prevD := ts(0), int64(0)
				raw = binary.AppendVarint(raw, prevT)
				prevX := int64(0)
				for s, x := range xs {
					if s > 0 {
						d := ts(s) - prevT
						raw = binary.AppendVarint(raw, d-prevD)
						prevT, prevD = ts(s), d
					}
					raw = binary.AppendVarint(raw, x-prevX)
					prevX = x
				}
				continue
			}
			c := chunkenc.NewXORChunk()
			app, err := c.Appender()
			require.NoError(b, err)
			for s := range steps {
				app.Append(0, ts(s), values[k][s])
			}
			raw = append(raw, 0)
			raw = binary.AppendUvarint(raw, uint64(len(c.Bytes())))
			raw = append(raw, c.Bytes()...)
		}
		zenc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		require.NoError(b, err)
		z := zenc.EncodeAll(raw, nil)
		zdec, err := zstd.NewReader(nil)
		require.NoError(b, err)
		for b.Loop() {
			got, err := zdec.DecodeAll(z, nil)
			require.NoError(b, err)
			var it chunkenc.Iterator
			for k := range values {
				kind := got[0]
				got = got[1:]
				if kind == 1 {
					e := int(got[0])
					got = got[1:]
					t, n := binary.Varint(got)
					got = got[n:]
					var d, x int64
					for s := range steps {
						if s > 0 {
							dod, n := binary.Varint(got)
							got = got[n:]
							d += dod
							t += d
						}
						dx, n := binary.Varint(got)
						got = got[n:]
						x += dx
						v := float64(x) / pow10[e]
						if t != ts(s) || math.Float64bits(v) != math.Float64bits(values[k][s]) {
							b.Fatalf("series %d sample %d: got %d %v, want %d %v", k, s, t, v, ts(s), values[k][s])
						}
					}
					continue
				}
				l, n := binary.Uvarint(got)
				got = got[n:]
				c, err := chunkenc.FromData(chunkenc.EncXOR, got[:l])
				require.NoError(b, err)
				got = got[l:]
				it = c.Iterator(it)
				s := 0
				for it.Next() == chunkenc.ValFloat {
					t, v := it.At()
					if t != ts(s) || math.Float64bits(v) != math.Float64bits(values[k][s]) {
						b.Fatalf("series %d sample %d: got %d %v, want %d %v", k, s, t, v, ts(s), values[k][s])
					}
					s++
				}
			}
		}
		b.ReportMetric(float64(len(z))/samples, "B/sample")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/samples, "ns/sample")
		b.ReportMetric(float64(decimalRuns)/float64(len(values)), "decimal_runs")
	})

	type candidate struct {
		name string
		enc  chunkenc.Encoding
		run  int
		zstd string // "", "series": each series' run compressed; "partition": all runs in one stream
	}
	for _, c := range []candidate{
		{"xor/120", chunkenc.EncXOR, 120, ""},
		{"xor/480", chunkenc.EncXOR, 480, ""},
		{"xor/1440", chunkenc.EncXOR, 1440, ""},
		{"xor2/120", chunkenc.EncXOR2, 120, ""},
		{"xor2/1440", chunkenc.EncXOR2, 1440, ""},
		{"xor2/1440+zstd-series", chunkenc.EncXOR2, 1440, "series"},
		{"xor2/1440+zstd-partition", chunkenc.EncXOR2, 1440, "partition"},
		{"xor/1440+zstd-partition", chunkenc.EncXOR, 1440, "partition"},
	} {
		b.Run(c.name, func(b *testing.B) {
			chunks := encodeRuns(b, c.enc, c.run)
			bytes := size(chunks)
			zenc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
			require.NoError(b, err)
			zdec, err := zstd.NewReader(nil)
			require.NoError(b, err)
			var compressed [][]byte
			switch c.zstd {
			case "series":
				bytes = 0
				for _, cs := range chunks {
					var raw []byte
					for _, ch := range cs {
						raw = append(raw, ch...)
					}
					z := zenc.EncodeAll(raw, nil)
					bytes += len(z)
					compressed = append(compressed, z)
				}
			case "partition":
				var raw []byte
				for _, cs := range chunks {
					for _, ch := range cs {
						raw = append(raw, ch...)
					}
				}
				z := zenc.EncodeAll(raw, nil)
				bytes = len(z)
				compressed = append(compressed, z)
			}
			for b.Loop() {
				for _, z := range compressed {
					_, err := zdec.DecodeAll(z, nil)
					require.NoError(b, err)
				}
				decode(b, c.enc, chunks)
			}
			b.ReportMetric(float64(bytes)/samples, "B/sample")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/samples, "ns/sample")
			b.ReportMetric(samples, "samples")
		})
	}
}

var pow10 = func() (p [19]float64) {
	p[0] = 1
	for e := 1; e < len(p); e++ {
		p[e] = p[e-1] * 10
	}
	return p
}()

// decimalRun finds the smallest e for which every value is exactly
// x / 10^e with |x| < 2^53, and returns the x.
func decimalRun(vs []float64) (int, []int64, bool) {
	xs := make([]int64, len(vs))
next:
	for e := range 16 {
		for k, v := range vs {
			x := math.Round(v * pow10[e])
			if math.IsNaN(v) || math.Abs(x) >= 1<<53 || math.Float64bits(x/pow10[e]) != math.Float64bits(v) {
				continue next
			}
			xs[k] = int64(x)
		}
		return e, xs, true
	}
	return 0, nil, false
}
