// Package runchunk is the run: a series' float samples as packed columns
// of times and values, with the chunk boundaries they were cut at. It
// encodes and decodes runs, reads a run as a chunkenc.Chunk (FromData), and
// rebuilds the XOR chunks a run was made from byte for byte (XORChunks,
// AppendXOR).
//
// The store compacts cold data into runs (store/DESIGN.md), and hands them
// to its readers as chunks of Encoding, which the ingester passes on to
// queriers that ask for them, so that a read of compacted data decodes
// each sample once instead of rebuilding XOR chunks to be decoded again.
//
// It never stores, sends or caches anything, and never holds histograms:
// those stay in upstream's chunk encodings.
package runchunk
