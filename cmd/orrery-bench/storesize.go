package main

import (
	"flag"
	"fmt"
	"io"

	"go.etcd.io/bbolt"
)

// storeSizeMain prints the bytes an Orrery store file's data occupies: the
// pages its buckets hold (bbolt's BranchAlloc and LeafAlloc, page slack
// included) and the file's two meta pages. bbolt never shrinks its file,
// so after compaction the file keeps the pages compaction freed (later
// writes reuse them); this is about the size of a copy of the store
// rewritten page by page (bbolt compact), and what scripts/bench.sh
// reports as Orrery's compacted figure. It sums the buckets rather than
// subtract the free pages, since a read-only open does not load the
// freelist.
//
//	orrery-bench store-size DATA_DIR/store.db
func storeSizeMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store-size", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: orrery-bench store-size STORE_FILE")
		return 2
	}
	db, err := bbolt.Open(fs.Arg(0), 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		fmt.Fprintln(stderr, "orrery-bench: store-size:", err)
		return 1
	}
	defer db.Close()
	used := int64(2 * db.Info().PageSize)
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bbolt.Bucket) error {
			// A root bucket's stats include its nested buckets.
			s := b.Stats()
			used += int64(s.BranchAlloc + s.LeafAlloc)
			return nil
		})
	})
	if err != nil {
		fmt.Fprintln(stderr, "orrery-bench: store-size:", err)
		return 1
	}
	fmt.Fprintln(stdout, used)
	return 0
}
