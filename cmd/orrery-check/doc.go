// Command orrery-check is a read-back checker: it writes series whose
// every value is known (counters rising by a fixed step, sine waves)
// through remote write, records which samples each 2xx acknowledged, and
// keeps reading them back through the Prometheus API, raw samples with an
// instant query of a range selector and step values with query_range,
// comparing each answer with what was acknowledged. At the end it reads
// everything once more and prints a report: samples acknowledged, samples
// missing, mismatched answers, the longest write unavailability and the
// reads that failed. It exits 1 when a sample is missing, an answer did not
// match, a write of this valid data was refused with a 4xx, or the final
// read could not be completed.
//
// The rules an answer must follow: every acknowledged sample is there with
// its exact value and timestamp; a sample of a request that failed (5xx,
// 429, a transport error or a timeout: the receiver may have stored it on
// some replicas) may be there or not, but with its exact value; nothing
// else is. An answer that carries a warning (a read that says it may be
// partial) may lack samples, but must not hold wrong or extra ones.
//
// Failed writes are retried with backoff, as a Prometheus would, for at
// most -write.retry-for; a round of samples is sent only once the previous
// round is finished, so every series is written in time order. Series carry
// a run label (-run-id) so that runs never mix.
//
// It sends only to the -write.url and -read.url it is given.
package main
