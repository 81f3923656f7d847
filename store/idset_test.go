package store

import (
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
)

// idSetModel runs ops against an idSet and a plain set side by side and
// checks every answer. Keys that share the set's prefix but are not its
// (a postings value that continues with 0x00), and IDs stored one per key
// as version 5 did, are part of the bucket from the start.
// postingKey is a postings key as version 5 wrote one per series, and a
// segment's key since.
func postingKey(name, value string, id uint64) []byte {
	return binary.BigEndian.AppendUint64(postingValuePrefix(name, value), id)
}

func idSetModel(t testing.TB, ops []byte, maxID uint64) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "set.db"), 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	prefix := postingValuePrefix("name", "v")
	model := map[uint64]bool{}
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		require.NoError(t, err)
		set := idSet{b, prefix}
		// Foreign keys around and inside the set's key range.
		for _, k := range [][]byte{
			postingKey("name", "v\x00", 3), postingKey("name", "v\x00\x00", 1<<40), postingKey("name", "u", 7),
			postingKey("name", "w", 0), append(postingValuePrefix("name", "v"), 1, 2, 3),
		} {
			require.NoError(t, b.Put(k, []byte{9, 9}))
		}
		// The old layout: an empty value per member.
		for _, id := range []uint64{2, 40, 41, 1000} {
			if id <= maxID {
				require.NoError(t, b.Put(set.key(id), []byte{}))
				model[id] = true
			}
		}
		for len(ops) >= 3 {
			op, id := ops[0]%4, uint64(binary.BigEndian.Uint16(ops[1:3]))%(maxID+1)
			ops = ops[3:]
			switch op {
			case 0, 1:
				require.NoError(t, set.add(id))
				model[id] = true
			case 2:
				require.NoError(t, set.remove(id))
				delete(model, id)
			case 3:
				want := slices.Sorted(func(yield func(uint64) bool) {
					for id := range model {
						if !yield(id) {
							return
						}
					}
				})
				got, complete, err := set.appendTo(nil, -1)
				require.NoError(t, err)
				require.True(t, complete)
				require.Equal(t, append([]uint64{}, want...), append([]uint64{}, got...))
				if len(want) > 0 {
					_, complete, err = set.appendTo(nil, len(want)-1)
					require.NoError(t, err)
					require.False(t, complete)
				}
				p := newIDProbe(set)
				for q := uint64(0); q <= maxID+2; q += 1 + id%3 {
					has, err := p.has(q)
					require.NoError(t, err)
					require.Equal(t, model[q], has, "probe %d", q)
				}
			}
		}
		// Every segment stays within its bound and holds rising IDs.
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if set.member(k) {
				require.LessOrEqual(t, len(v), segmentMaxGaps)
				_, err := decodeSegment(nil, k, v)
				require.NoError(t, err)
			}
		}
		return nil
	}))
}

func TestIDSetMatchesAPlainSet(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, maxID := range []uint64{3, 60, 5000, 65535} {
		ops := make([]byte, 3*4000)
		for i := range ops {
			ops[i] = byte(r.Uint32())
		}
		// Most adds, as Puts do; every 50th op a full check.
		for i := 0; i < len(ops); i += 3 {
			ops[i] = []byte{0, 0, 1, 2}[r.IntN(4)]
			if i%150 == 0 {
				ops[i] = 3
			}
		}
		ops = append(ops, 3, 0, 0)
		idSetModel(t, ops, maxID)
	}
}

// TestIDSetAppendsInRisingOrder is the case Put makes: IDs arrive in
// rising order, and segments fill to their bound before a new one starts.
func TestIDSetAppendsInRisingOrder(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "set.db"), 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		require.NoError(t, err)
		set := idSet{b, nil}
		for id := uint64(1); id <= 10_000; id++ {
			require.NoError(t, set.add(id))
		}
		keys := 0
		require.NoError(t, b.ForEach(func(_, _ []byte) error { keys++; return nil }))
		require.Equal(t, 10_000/(segmentMaxGaps+1)+1, keys)
		got, _, err := set.appendTo(nil, -1)
		require.NoError(t, err)
		require.Len(t, got, 10_000)
		return nil
	}))
}

// TestIDSetTakesFallingIDsIntoSegments: IDs that arrive in falling order
// (an active partition listing series as their chunks flush) go in front
// of the segment after them while it has room, instead of a key each.
func TestIDSetTakesFallingIDsIntoSegments(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "set.db"), 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		require.NoError(t, err)
		set := idSet{b, nil}
		// A full segment first, then IDs above it in falling order.
		for id := uint64(1); id <= 300; id++ {
			require.NoError(t, set.add(id))
		}
		for id := uint64(10_000); id > 300; id-- {
			require.NoError(t, set.add(id))
		}
		keys := 0
		require.NoError(t, b.ForEach(func(_, _ []byte) error { keys++; return nil }))
		require.Less(t, keys, 2*10_000/segmentMaxGaps, "segments, not a key per ID")
		got, _, err := set.appendTo(nil, -1)
		require.NoError(t, err)
		require.Len(t, got, 10_000)
		return nil
	}))
}

// FuzzIDSet: any sequence of adds, removes and reads answers as a plain
// set does.
func FuzzIDSet(f *testing.F) {
	f.Add([]byte{0, 0, 5, 0, 0, 3, 3, 0, 0, 2, 0, 5, 3, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 3*2000 {
			return
		}
		idSetModel(t, ops, 1200)
	})
}

// FuzzDecodeSegment: crafted segment bytes give an error or rising IDs,
// never a panic.
func FuzzDecodeSegment(f *testing.F) {
	f.Add(uint64(1), []byte{1, 2, 0x80})
	f.Add(^uint64(0)-1, []byte{1, 1})
	f.Add(uint64(5), []byte{3, 4})
	f.Fuzz(func(t *testing.T, first uint64, v []byte) {
		k := binary.BigEndian.AppendUint64(nil, first)
		ids, err := decodeSegment(nil, k, v)
		want := first + uint64(len(v))%5
		last, has, lerr := scanSegment(k, v, want)
		require.Equal(t, err == nil, lerr == nil)
		if err == nil {
			require.True(t, slices.IsSorted(ids))
			require.Equal(t, ids[len(ids)-1], last)
			for i := 1; i < len(ids); i++ {
				require.NotEqual(t, ids[i-1], ids[i])
			}
			_, found := slices.BinarySearch(ids, want)
			require.Equal(t, found, has)
		}
	})
}
