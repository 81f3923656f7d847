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
