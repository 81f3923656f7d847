package apicompare

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDiffData(t *testing.T) {
	matrix := func(v string) json.RawMessage {
		return json.RawMessage(`{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"1"],[2,"` + v + `"]]}]}`)
	}
	var rels []float64
	seen := func(r float64) { rels = append(rels, r) }
	require.Empty(t, DiffData(matrix("NaN"), matrix("NaN"), seen))
	require.Empty(t, DiffData(matrix("1e9"), matrix("1000000000.0000001"), seen))
	require.Len(t, rels, 1)
	require.Contains(t, DiffData(matrix("1"), matrix("1.001"), nil), "sample 1 at 2")
	require.Contains(t, DiffData(matrix("1"), json.RawMessage(`{"resultType":"vector","result":[]}`), nil), "result type")
	require.Contains(t, DiffData(matrix("1"), json.RawMessage(`{"resultType":"matrix","result":[{"metric":{"a":"c"},"values":[[1,"1"],[2,"1"]]}]}`), nil), "series {a=b} vs {a=c}")
	scalar := func(v string) json.RawMessage {
		return json.RawMessage(`{"resultType":"scalar","result":[5,"` + v + `"]}`)
	}
	require.Empty(t, DiffData(scalar("+Inf"), scalar("+Inf"), nil))
	require.NotEmpty(t, DiffData(scalar("+Inf"), scalar("-Inf"), nil))
}

func TestDiffDataHistograms(t *testing.T) {
	h := func(count, upper string) string {
		return `{"count":"` + count + `","sum":"3.5","buckets":[[3,"-0.001","0.001","1"],[0,"1","` + upper + `","` + count + `"]]}`
	}
	vector := func(body string) json.RawMessage {
		return json.RawMessage(`{"resultType":"vector","result":[` + body + `]}`)
	}
	hv := func(count, upper string) json.RawMessage {
		return vector(`{"metric":{"a":"b"},"histogram":[10.5,` + h(count, upper) + `]}`)
	}
	require.Empty(t, DiffData(hv("4", "2"), hv("4", "2"), nil))
	require.Empty(t, DiffData(hv("4", "2"), hv("4.000000000001", "2"), nil), "within the tolerance")
	require.Contains(t, DiffData(hv("4", "2"), hv("5", "2"), nil), "count 4 vs 5")
	require.Contains(t, DiffData(hv("4", "2"), hv("4", "2.5"), nil), "bucket 1: upper 2 vs 2.5")
	require.Contains(t, DiffData(hv("4", "2"), vector(`{"metric":{"a":"b"},"histogram":[10.5,{"count":"4","sum":"3.5","buckets":[[0,"1","2","4"]]}]}`), nil), "2 buckets")
	require.Contains(t, DiffData(hv("4", "2"), vector(`{"metric":{"a":"b"},"histogram":[10.5,{"count":"4","sum":"3.5","buckets":[[1,"-0.001","0.001","1"],[0,"1","2","4"]]}]}`), nil), "boundary rule 3 vs 1")
	require.Contains(t, DiffData(hv("4", "2"), vector(`{"metric":{"a":"b"},"histogram":[11,`+h("4", "2")+`]}`), nil), "at 10.5 vs 11")
	require.Contains(t, DiffData(hv("4", "2"), vector(`{"metric":{"a":"b"},"value":[10.5,"4"]}`), nil), "histogram at 10.5 vs float 4")
	require.Contains(t, DiffData(vector(`{"metric":{"a":"b"},"value":[10.5,"4"]}`), hv("4", "2"), nil), "float 4 vs histogram")
	require.Contains(t, DiffData(hv("4", "2"), vector(`{"metric":{"a":"b"},"histogram":[10.5,{"count":"4","sum":"3.5"}]}`), nil), "2 buckets")

	// A matrix series may hold floats and histograms: both are compared.
	matrix := func(floats, hists string) json.RawMessage {
		return json.RawMessage(`{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[` + floats + `],"histograms":[` + hists + `]}]}`)
	}
	mixed := matrix(`[1,"1"]`, `[2,`+h("4", "2")+`],[3,`+h("6", "2")+`]`)
	require.Empty(t, DiffData(mixed, matrix(`[1,"1"]`, `[2,`+h("4", "2")+`],[3,`+h("6", "2")+`]`), nil))
	require.Contains(t, DiffData(mixed, matrix(`[1,"1"]`, `[2,`+h("4", "2")+`]`), nil), "2 histograms vs 1")
	require.Contains(t, DiffData(mixed, matrix(`[1,"1"]`, `[2,`+h("4", "2")+`],[3,`+h("7", "2")+`]`), nil), "histogram 1 at 3: count 6 vs 7")
	require.Contains(t, DiffData(mixed, matrix(`[1,"2"]`, `[2,`+h("4", "2")+`],[3,`+h("6", "2")+`]`), nil), "sample 0 at 1")
	histsOnly := json.RawMessage(`{"resultType":"matrix","result":[{"metric":{"a":"b"},"histograms":[[2,` + h("4", "2") + `]]}]}`)
	require.Contains(t, DiffData(histsOnly, json.RawMessage(`{"resultType":"matrix","result":[{"metric":{"a":"b"},"histograms":[[2,`+h("5", "2")+`]]}]}`), nil), "count 4 vs 5")
	require.Contains(t, DiffData(histsOnly, json.RawMessage(`{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[2,"4"]]}]}`), nil), "0 samples vs 1")
}
