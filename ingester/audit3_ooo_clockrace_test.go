package ingester

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/orrery/orrery/ingester/chunks"
)

// hookSampleAtStore runs onSampleAt at the n-th SampleAt (1-based).
type hookSampleAtStore struct {
	chunks.Store
	calls, n   int
	onSampleAt func()
}

func (s *hookSampleAtStore) SampleAt(tenant string, ls labels.Labels, t int64) (chunks.Sample, bool, error) {
	s.calls++
	if s.calls == s.n && s.onSampleAt != nil {
		s.onSampleAt()
	}
	return s.Store.SampleAt(tenant, ls, t)
}

// Audit 3: the second audit's rule (a late chunk is flushed only once its
// whole period left the window, "so no merge can replace it mid-flush")
// rests on "the window only moves on" between a push measuring it and the
// push appending. With the clamp to the ingester's clock the window start
// is now-window whenever the tenant's newest sample is ahead of the
// ingester's clock (the clock a little behind the senders', or data
// within the creation grace period): it moves with the wall clock, while
// a push measures it once, at its first old sample, and appends later
// (after store reads of its other old samples and the WAL write). A flush
// running meanwhile measures a later start, flushes the late chunks of a
// period the push still fills, and the push's merge replaces them while
// they are being stored: their samples are stored by this flush and again
// by the next one, the audit-2 duplicate back. A flush now reads the
// window start between pushes (under the tenant's append lock).
func TestAudit3ClampedWindowMovesDuringPushAndLateChunkIsStoredTwice(t *testing.T) {
	const hour = int64(3_600_000)
	n0 := time.Now().UnixMilli()
	e := floorDiv(n0, hour)*hour - 1 // last ms of the previous one-hour period
	const margin = int64(5000)
	// The window starts at e-margin+(now-n0) while the clamp holds.
	window := time.Duration(n0-e+margin) * time.Millisecond
	dir := t.TempDir()
	ti := newTestIngester(t, dir, testConfig(), withWindow(window))
	defer ti.stop(t)

	// In order: e-4000..e-3100, then one five minutes ahead of the
	// ingester's clock (a sender's clock ahead): the clamp measures the
	// window from now.
	for k := range int64(10) {
		require.NoError(t, ti.push(t, "a", onePush("x", e-4000+k*100, float64(k))))
	}
	require.NoError(t, ti.push(t, "a", onePush("x", n0+5*60_000, 1)))
	require.True(t, ti.flush(false)) // the in-order chunk is stored: later old samples read the store
	// 32 late samples in the period ending at e: cut into chunks.
	var c [][]byte
	for k := range int64(32) {
		c = append(c, onePush("x", e-3999+k*10, float64(k)))
	}
	require.NoError(t, ti.push(t, "a", c...))

	// The push P of 32 more late samples in that period measures the
	// window at its first; at its second's store read, by when the window
	// start passed e, a flush starts (and now waits for P to append).
	// Its store write is held until P has appended; before the fix the
	// flush got there mid-push, now it waits for P to end first.
	snapshot, proceed, flushed := make(chan struct{}), make(chan struct{}), make(chan bool)
	orig := ti.store
	hookedPut := &hookPutStore{Store: orig, hook: func() { close(snapshot); <-proceed }}
	ti.store = &hookSampleAtStore{Store: hookedPut, n: 2, onSampleAt: func() {
		for time.Now().UnixMilli() <= n0+margin+200 {
			time.Sleep(20 * time.Millisecond)
		}
		go func() { flushed <- ti.flush(false) }()
		select {
		case <-snapshot:
		case <-time.After(500 * time.Millisecond):
		}
	}}
	var p [][]byte
	for k := range int64(32) {
		p = append(p, onePush("x", e-3998+k*10, float64(k)))
	}
	require.Less(t, time.Now().UnixMilli()-n0, margin/2, "setup too slow for the test's timing")
	require.NoError(t, ti.push(t, "a", p...), "P is inside the window it measured")
	close(proceed)
	require.True(t, <-flushed)
	ti.store = orig
	require.True(t, ti.flush(true))

	total, distinct := storedSamples(t, ti, "x")
	require.Equal(t, 75, distinct)
	require.Equal(t, distinct, total, "every sample stored once")
}
