package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"
)

// An idSet is a sorted set of series IDs kept in a bucket under a key
// prefix, as segments: each key is the prefix and the segment's first ID
// (8 B), its value the uvarint gaps from each ID to the next. A key with an
// empty value is a segment of one ID, which is how versions before 6 stored
// every member, so their sets read as they are. The postings list a label
// pair's series this way, and each partition of the active index its
// series: one key per ID cost 30 to 50 bytes of pages, a gap 1 or 2.
//
// A key belongs to the set iff it is exactly the prefix plus 8 bytes; other
// keys may share the prefix (a postings value containing 0x00) and are
// passed over.
type idSet struct {
	b      *bbolt.Bucket
	prefix []byte
}

// segmentMaxGaps bounds a segment's value: adding an ID rewrites one
// segment, so its size is the cost of a Put of a new series per label, and
// a point lookup decodes one. 256 bytes hold 128 to 256 IDs of the load
// tool's series, where the key's own bytes stop mattering.
const segmentMaxGaps = 256

func (s idSet) key(id uint64) []byte {
	k := make([]byte, len(s.prefix), len(s.prefix)+idLen)
	copy(k, s.prefix)
	return binary.BigEndian.AppendUint64(k, id)
}

func (s idSet) member(k []byte) bool {
	return len(k) == len(s.prefix)+idLen && bytes.HasPrefix(k, s.prefix)
}

// segmentAt returns the segment whose first ID is the greatest at or
// before id, if there is one.
func (s idSet) segmentAt(c *bbolt.Cursor, id uint64) (k, v []byte) {
	k, v = c.Seek(s.key(id))
	if s.member(k) && v != nil && keyID(k) == id {
		return k, v
	}
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, s.prefix); k, v = c.Prev() {
		if s.member(k) && v != nil {
			return k, v
		}
	}
	return nil, nil
}

// decodeSegment appends the IDs of segment (k, v) to dst.
func decodeSegment(dst []uint64, k, v []byte) ([]uint64, error) {
	id := keyID(k)
	dst = append(dst, id)
	for len(v) > 0 {
		gap, n := binary.Uvarint(v)
		if n <= 0 || gap == 0 || id+gap < id {
			return dst, fmt.Errorf("id set segment %x: bad gap: %w", k, errCorrupt)
		}
		id += gap
		dst = append(dst, id)
		v = v[n:]
	}
	return dst, nil
}

// scanSegment returns the greatest ID of segment (k, v), and whether it
// holds want.
func scanSegment(k, v []byte, want uint64) (last uint64, has bool, err error) {
	id := keyID(k)
	has = id == want
	for len(v) > 0 {
		gap, n := binary.Uvarint(v)
		if n <= 0 || gap == 0 || id+gap < id {
			return 0, false, fmt.Errorf("id set segment %x: bad gap: %w", k, errCorrupt)
		}
		id += gap
		has = has || id == want
		v = v[n:]
	}
	return id, has, nil
}

// encodeGaps returns the value of a segment of ids. Never nil: a cursor
// reads a nil value as a nested bucket.
func encodeGaps(ids []uint64) []byte {
	out := []byte{}
	for i := 1; i < len(ids); i++ {
		out = binary.AppendUvarint(out, ids[i]-ids[i-1])
	}
	return out
}

// add puts id in the set. New series take IDs above every one before, so
// the usual case appends a gap to the set's last segment. An ID past a
// full segment goes in front of the next one when that has room, so that
// IDs arriving in falling order do not each take a key. A segment that
// does not decode is left as it is (reads report it), and the ID gets a
// segment of its own: writes go on.
func (s idSet) add(id uint64) error {
	c := s.b.Cursor()
	k, v := s.segmentAt(c, id)
	if k != nil {
		last, has, err := scanSegment(k, v, id)
		switch {
		case err != nil && keyID(k) == id:
			return nil
		case err != nil:
			return s.b.Put(s.key(id), []byte{})
		case has:
			// Every flush lists a series again in its partition: found
			// without decoding the segment into memory.
			return nil
		case id < last:
			ids, err := decodeSegment(nil, k, v)
			if err != nil {
				return err
			}
			i, found := slices.BinarySearch(ids, id)
			if found {
				return nil
			}
			return s.rewrite(k, slices.Insert(ids, i, id))
		}
		if gap := binary.AppendUvarint(nil, id-last); len(v)+len(gap) <= segmentMaxGaps {
			return s.b.Put(bytes.Clone(k), append(slices.Clip(bytes.Clone(v)), gap...))
		}
	}
	if nk, nv := s.segmentAfter(c, k, id); nk != nil {
		if ids, err := decodeSegment([]uint64{id}, nk, nv); err == nil {
			if gaps := encodeGaps(ids); len(gaps) <= segmentMaxGaps {
				if err := s.b.Delete(nk); err != nil {
					return err
				}
				return s.b.Put(s.key(id), gaps)
			}
		}
	}
	return s.b.Put(s.key(id), []byte{})
}

// segmentAfter returns the first segment after id, where at (if not nil)
// is the segment c stands on, the one at or before id.
func (s idSet) segmentAfter(c *bbolt.Cursor, at []byte, id uint64) (k, v []byte) {
	if at != nil {
		k, v = c.Next()
	} else {
		k, v = c.Seek(s.key(id))
	}
	for ; k != nil && bytes.HasPrefix(k, s.prefix); k, v = c.Next() {
		if s.member(k) && v != nil {
			return bytes.Clone(k), v
		}
	}
	return nil, nil
}

// rewrite replaces segment k with ids (sorted, not empty), split in two
// when it outgrows a segment.
func (s idSet) rewrite(k []byte, ids []uint64) error {
	if err := s.b.Delete(k); err != nil {
		return err
	}
	gaps := encodeGaps(ids)
	if len(gaps) > segmentMaxGaps {
		half := len(ids) / 2
		if err := s.b.Put(s.key(ids[half]), encodeGaps(ids[half:])); err != nil {
			return err
		}
		ids, gaps = ids[:half], encodeGaps(ids[:half])
	}
	return s.b.Put(s.key(ids[0]), gaps)
}

// remove takes id out of the set, if it is there.
func (s idSet) remove(id uint64) error {
	k, v := s.segmentAt(s.b.Cursor(), id)
	if k == nil {
		return nil
	}
	ids, err := decodeSegment(nil, k, v)
	if err != nil {
		// Reads report the segment; what it held is unreadable anyway,
		// and retention must go on.
		return nil
	}
	i, found := slices.BinarySearch(ids, id)
	switch {
	case !found:
		return nil
	case len(ids) == 1:
		return s.b.Delete(k)
	}
	return s.rewrite(k, slices.Delete(ids, i, i+1))
}

// appendTo appends the set's IDs, in order, to dst. With limit >= 0 it
// stops once dst would exceed limit entries and reports false. A segment
// that does not decode gives its IDs up to the damage, and the others
// still come, with errCorrupt at the end: the caller decides whether a
// partial answer will do.
func (s idSet) appendTo(dst []uint64, limit int) ([]uint64, bool, error) {
	var damage error
	c := s.b.Cursor()
	for k, v := c.Seek(s.prefix); k != nil && bytes.HasPrefix(k, s.prefix); k, v = c.Next() {
		if !s.member(k) || v == nil {
			continue
		}
		var err error
		if dst, err = decodeSegment(dst, k, v); err != nil {
			damage = err
		}
		if limit >= 0 && len(dst) > limit {
			return dst, false, damage
		}
	}
	return dst, true, damage
}

// idProbe answers membership of IDs asked in rising order, decoding each
// segment once.
type idProbe struct {
	set      idSet
	c        *bbolt.Cursor
	loaded   bool
	seg      []uint64 // the segment at or before the last ID asked, decoded
	next     uint64   // the first ID of the segment after it
	haveNext bool
}

func newIDProbe(set idSet) *idProbe { return &idProbe{set: set, c: set.b.Cursor()} }

// has reports whether id is in the set. IDs must be asked in rising order.
func (p *idProbe) has(id uint64) (bool, error) {
	if !p.loaded || p.haveNext && id >= p.next {
		if err := p.load(id); err != nil {
			return false, err
		}
	}
	_, found := slices.BinarySearch(p.seg, id)
	return found, nil
}

// load decodes the segment at or before id and finds where the next
// begins: every ID up to there is answered from it.
func (p *idProbe) load(id uint64) error {
	p.loaded, p.seg, p.haveNext = true, p.seg[:0], false
	if k, v := p.set.segmentAt(p.c, id); k != nil {
		var err error
		if p.seg, err = decodeSegment(p.seg, k, v); err != nil {
			return err
		}
	}
	if id == ^uint64(0) {
		return nil
	}
	for k, v := p.c.Seek(p.set.key(id + 1)); k != nil && bytes.HasPrefix(k, p.set.prefix); k, v = p.c.Next() {
		if p.set.member(k) && v != nil {
			p.next, p.haveNext = keyID(k), true
			break
		}
	}
	return nil
}
