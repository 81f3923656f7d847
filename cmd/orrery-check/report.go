package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// report is the result of a run; its JSON form is what scripts consume.
type report struct {
	Run      string  `json:"run"`
	Series   int     `json:"series"`
	Steps    int     `json:"steps"`
	StepMs   int64   `json:"step_ms"`
	ElapsedS float64 `json:"elapsed_s"`

	// SamplesAcknowledged were in a request answered 2xx.
	SamplesAcknowledged int64 `json:"samples_acknowledged"`
	// SamplesUncertain were in a request given up after 5xx, 429 or
	// transport errors: they may or may not be stored.
	SamplesUncertain int64 `json:"samples_uncertain"`
	// SamplesRejected were in a request refused with a 4xx.
	SamplesRejected int64       `json:"samples_rejected"`
	Writes          writeCounts `json:"writes"`
	// LongestWriteUnavailabilityS is the longest span during which one
	// request's attempts kept failing (retries included).
	LongestWriteUnavailabilityS float64   `json:"longest_write_unavailability_s"`
	LongestWriteUnavailableFrom time.Time `json:"longest_write_unavailable_from,omitzero"`

	readStats
	// SamplesMissing are acknowledged samples absent from the final read.
	SamplesMissing    int      `json:"samples_missing"`
	FinalReadComplete bool     `json:"final_read_complete"`
	Problems          []string `json:"problems,omitempty"`
	OK                bool     `json:"ok"`
}

func newReport(w *workload, l *ledger, c *checker, elapsed time.Duration, ended time.Time, missing int, complete bool) *report {
	s := l.snapshot()
	rep := &report{
		Run: w.run, Series: w.series, Steps: s.steps(), StepMs: w.stepMs, ElapsedS: elapsed.Seconds(),
		Writes: l.writeCounts(), SamplesMissing: missing, FinalReadComplete: complete,
	}
	for k := range s.steps() {
		for b := range w.batches() {
			n := int64(min((b+1)*w.batch, w.series) - b*w.batch)
			switch s.outcome(k, b) {
			case acked:
				rep.SamplesAcknowledged += n
			case uncertain:
				rep.SamplesUncertain += n
			case rejected:
				rep.SamplesRejected += n
			}
		}
	}
	if o := l.longestOutage(ended); o.duration() > 0 {
		rep.LongestWriteUnavailabilityS = o.duration().Seconds()
		rep.LongestWriteUnavailableFrom = o.From.UTC()
	}
	rep.readStats, rep.Problems = c.readStats()
	rep.OK = rep.verdict() == ""
	return rep
}

// verdict says why the run failed, or "" when it passed.
func (r *report) verdict() string {
	var why []string
	if r.SamplesAcknowledged == 0 {
		why = append(why, "no sample was acknowledged")
	}
	if r.SamplesMissing > 0 {
		why = append(why, fmt.Sprintf("%d acknowledged samples missing", r.SamplesMissing))
	}
	if r.MismatchedAnswers > 0 {
		why = append(why, fmt.Sprintf("%d answers did not match what was written", r.MismatchedAnswers))
	}
	if r.SamplesRejected > 0 {
		why = append(why, fmt.Sprintf("%d samples of valid data refused with a 4xx", r.SamplesRejected))
	}
	if !r.FinalReadComplete {
		why = append(why, "the final read could not be completed")
	}
	return strings.Join(why, "; ")
}

func (r *report) writeJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}

func writeJSONFile(path string, r *report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(r.writeJSON(f), f.Close())
}

func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "run %s: %d series, %d steps of %dms, %.0fs\n", r.Run, r.Series, r.Steps, r.StepMs, r.ElapsedS)
	fmt.Fprintf(w, "samples acknowledged:         %d\n", r.SamplesAcknowledged)
	fmt.Fprintf(w, "samples uncertain (given up): %d\n", r.SamplesUncertain)
	fmt.Fprintf(w, "samples rejected (4xx):       %d\n", r.SamplesRejected)
	fmt.Fprintf(w, "samples missing:              %d\n", r.SamplesMissing)
	fmt.Fprintf(w, "mismatched answers:           %d of %d\n", r.MismatchedAnswers, r.Answers)
	fmt.Fprintf(w, "answers with warnings:        %d\n", r.AnswersWithWarnings)
	fmt.Fprintf(w, "reads failed:                 %d\n", r.ReadsFailed)
	fmt.Fprintf(w, "longest write unavailability: %.1fs", r.LongestWriteUnavailabilityS)
	if !r.LongestWriteUnavailableFrom.IsZero() {
		fmt.Fprintf(w, " (from %s)", r.LongestWriteUnavailableFrom.Format("15:04:05.000"))
	}
	fmt.Fprintf(w, "\nwrite attempts:               %d %v\n", r.Writes.Attempts, r.Writes.AttemptsByStatus)
	fmt.Fprintf(w, "final read complete:          %v\n", r.FinalReadComplete)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if why := r.verdict(); why != "" {
		fmt.Fprintf(w, "FAIL: %s\n", why)
		return
	}
	fmt.Fprintln(w, "OK")
}
