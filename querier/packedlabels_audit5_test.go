package querier

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/orrery/orrery/proto/ingesterpb"
)

// Audit 5: the fetch limiter's hash separated names and values with 0xff,
// unambiguous only for UTF-8, which LabelPair's proto3 strings guarantee
// and packed_labels (bytes) does not. So two distinct series from an
// ingester that packs could hash alike and count once against
// max_fetched_series_per_query, and labels no pair-form answer could carry
// reached the engine. The hash now length-prefixes every name and value,
// and a series whose labels are not UTF-8 fails its stream.
func TestAudit5PackedLabelsNotUTF8AreRefusedAndCountApart(t *testing.T) {
	one := labels.FromStrings("a", "x\xffb\xffy") // one label, invalid UTF-8
	two := labels.FromStrings("a", "x", "b", "y") // two labels

	// The pair form cannot carry the first series at all.
	_, err := proto.Marshal(&ingesterpb.ChunkSeries{Labels: ingesterpb.FromLabels(one)})
	require.Error(t, err, "proto3 strings refuse invalid UTF-8")

	// The packed form carries it; the querier refuses it.
	var b labels.ScratchBuilder
	_, err = seriesLabels(&b, &ingesterpb.ChunkSeries{PackedLabels: ingesterpb.AppendLabels(nil, one)})
	require.ErrorContains(t, err, "not UTF-8")

	// Two distinct series in one answer; a limit of one series must fail.
	l := newFetchLimiter(queryLimits{maxSeries: 1}, func(string) {})
	f, err := l.newSelect("t")
	require.NoError(t, err)
	err = f.fromIngester().addChunks([]*ingesterpb.ChunkSeries{
		{PackedLabels: ingesterpb.AppendLabels(nil, one)},
		{PackedLabels: ingesterpb.AppendLabels(nil, two)},
	})
	require.Error(t, err, "two distinct series fetched against max_fetched_series_per_query=1, counted as %d", len(l.series))
}

// Audit 5: the packed form is documented as sorted name and value pairs,
// but nothing checked it: an unsorted or repeated name was decoded into a
// label set Prometheus's stringlabels cannot read (Get stops at the first
// name past the one asked for). Such a series now fails its stream, in
// either form.
func TestAudit5UnsortedLabelsAreRefused(t *testing.T) {
	var enc []byte
	enc = ingesterpb.AppendLabelPair(enc, []byte("job"), []byte("api"))
	enc = ingesterpb.AppendLabelPair(enc, []byte("__name__"), []byte("up"))
	var b labels.ScratchBuilder
	ls, err := seriesLabels(&b, &ingesterpb.ChunkSeries{PackedLabels: enc})
	if err == nil {
		t.Logf("decoded %s; Get(__name__)=%q", ls, ls.Get("__name__"))
	}
	require.Error(t, err, "unsorted packed labels should be refused")
	for _, pairs := range [][]*ingesterpb.LabelPair{
		{{Name: "job", Value: "api"}, {Name: "__name__", Value: "up"}},
		{{Name: "a", Value: "1"}, {Name: "a", Value: "2"}},
		{{Name: "", Value: "x"}},
	} {
		_, err = seriesLabels(&b, &ingesterpb.ChunkSeries{Labels: pairs})
		require.Error(t, err, "pairs %v", pairs)
	}
	dup := ingesterpb.AppendLabelPair(ingesterpb.AppendLabelPair(nil, []byte("a"), []byte("1")), []byte("a"), []byte("2"))
	_, err = seriesLabels(&b, &ingesterpb.ChunkSeries{PackedLabels: dup})
	require.Error(t, err, "a repeated name")
	ok, err := seriesLabels(&b, &ingesterpb.ChunkSeries{PackedLabels: ingesterpb.AppendLabels(nil, labels.FromStrings("__name__", "up", "job", "api"))})
	require.NoError(t, err)
	require.Equal(t, "up", ok.Get("__name__"))
}
