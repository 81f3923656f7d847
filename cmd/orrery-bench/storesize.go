package main

import (
	"flag"
	"fmt"
	"io"

	"go.etcd.io/bbolt"
)

// storeSizeMain prints the bytes an Orrery store file's data occupies: the
// pages up to its high-water mark less its free pages, page slack
// included. bbolt never shrinks its file, so after compaction the file
// keeps the pages compaction freed (later writes reuse them); this is the
// size a copy of the store (a snapshot restored elsewhere) would have,
// which is what scripts/bench.sh reports as Orrery's compacted figure.
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
	var used int64
	err = db.View(func(tx *bbolt.Tx) error {
		used = tx.Size() - int64(db.Stats().FreeAlloc)
		return nil
	})
	if err != nil {
		fmt.Fprintln(stderr, "orrery-bench: store-size:", err)
		return 1
	}
	fmt.Fprintln(stdout, used)
	return 0
}
