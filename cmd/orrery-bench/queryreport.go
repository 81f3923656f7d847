package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// namedReport is one target's query timings under the name shown in tables.
type namedReport struct {
	name string
	rep  *queryReport
}

// parseReportArgs reads NAME=FILE arguments, each FILE written by the query
// subcommand with -json. They are split at the last "=", so a name may hold
// one ("RF=3 cluster") and a path may not.
func parseReportArgs(args []string) ([]namedReport, error) {
	if len(args) == 0 {
		return nil, errors.New("want NAME=FILE arguments, the first one the baseline")
	}
	out := make([]namedReport, 0, len(args))
	for _, a := range args {
		i := strings.LastIndex(a, "=")
		name, path := a[:max(i, 0)], a[i+1:]
		if i < 0 || name == "" || path == "" {
			return nil, fmt.Errorf("argument %q: want NAME=FILE", a)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var rep queryReport
		if err := json.Unmarshal(data, &rep); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, namedReport{name: name, rep: &rep})
	}
	return out, nil
}

// ratio formats v/base, or "n/a" when either is unknown.
func ratio(v, base float64) string {
	if !(v > 0) || !(base > 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v/base)
}

// writeQueryTables prints the markdown summary (geometric mean and its ratio
// to the first report, the baseline) and the per-query table. A target whose
// answer had a different number of series than the baseline's is flagged in
// its cell, since its latency is then not for the same work. Reports must
// hold the same queries in the same order.
func writeQueryTables(w io.Writer, reports []namedReport) error {
	base := reports[0]
	for _, r := range reports[1:] {
		if len(r.rep.Queries) != len(base.rep.Queries) {
			return fmt.Errorf("%s has %d queries, %s %d", r.name, len(r.rep.Queries), base.name, len(base.rep.Queries))
		}
		for i, q := range r.rep.Queries {
			if q.Query != base.rep.Queries[i].Query {
				return fmt.Errorf("query %d differs: %s ran %q, %s ran %q", i+1, r.name, q.Query, base.name, base.rep.Queries[i].Query)
			}
		}
	}
	fmt.Fprintf(w, "| target | geometric mean ms | ratio to %s | sum of medians ms |\n|---|---|---|---|\n", base.name)
	for _, r := range reports {
		fmt.Fprintf(w, "| %s | %.1f | %s | %.1f |\n", r.name, r.rep.GeomeanMs, ratio(r.rep.GeomeanMs, base.rep.GeomeanMs), r.rep.TotalMs)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "| # | query | series |")
	for _, r := range reports {
		fmt.Fprintf(w, " %s ms |", r.name)
	}
	fmt.Fprint(w, "\n|---|---|---|")
	fmt.Fprint(w, strings.Repeat("---|", len(reports)))
	fmt.Fprintln(w)
	for i, bq := range base.rep.Queries {
		fmt.Fprintf(w, "| %d | `%s` | %d |", i+1, strings.ReplaceAll(bq.Query, "|", `\|`), bq.Series)
		for _, r := range reports {
			q := r.rep.Queries[i]
			cell := fmt.Sprintf("%.1f", q.MedianMs)
			if q.Series != bq.Series {
				cell += fmt.Sprintf(" (%d series!)", q.Series)
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// queryReportMain is the query-report subcommand; it returns the exit code.
func queryReportMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("orrery-bench query-report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: orrery-bench query-report NAME=FILE... (files from query -json, split at the last =; the first is the baseline)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	reports, err := parseReportArgs(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, "orrery-bench query-report:", err)
		return 2
	}
	if err := writeQueryTables(stdout, reports); err != nil {
		fmt.Fprintln(stderr, "orrery-bench query-report:", err)
		return 1
	}
	return 0
}
