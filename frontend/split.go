package frontend

import "github.com/prometheus/prometheus/promql/parser"

// span is a range of a query's steps, start and end both steps of it.
type span struct{ start, end int64 }

// lastStep is the last step of a range query: start plus a whole number of
// steps, at most end, as the engine evaluates it.
func lastStep(start, end, step int64) int64 {
	return start + (end-start)/step*step
}

// splitRange cuts the steps start, start+step, ... <= end into parts, one
// per interval (aligned to multiples of interval since the epoch) holding
// any step. Each part starts and ends on a step, so the parts cover
// exactly the query's steps, none twice. interval <= 0 gives one part.
func splitRange(start, end, step, interval int64) []span {
	end = lastStep(start, end, step)
	if interval <= 0 {
		return []span{{start, end}}
	}
	var out []span
	for s := start; s <= end; {
		boundary := (floorDiv(s, interval) + 1) * interval
		e := min(s+(boundary-1-s)/step*step, end)
		out = append(out, span{s, e})
		s = e + step
	}
	return out
}

// floorDiv is a / b rounded down, also for negative a.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// floorMod is a mod b in [0, b) for b > 0.
func floorMod(a, b int64) int64 {
	return a - floorDiv(a, b)*b
}

// timeDependence says how a query's value at a step depends on the
// query's own start and end and on data after the step.
type timeDependence struct {
	// startEnd: an @ start() or @ end() modifier, whose value depends on
	// the range the query is asked for, so a part would differ from the
	// same steps of the whole.
	startEnd bool
	// at: any @ modifier; its data is not tied to the step's time.
	at bool
	// negativeOffset: data after the step is read.
	negativeOffset bool
}

func inspectTime(expr parser.Expr) timeDependence {
	var d timeDependence
	check := func(at *int64, sr parser.ItemType, off int64) {
		if at != nil || sr != 0 {
			d.at = true
		}
		if sr == parser.START || sr == parser.END {
			d.startEnd = true
		}
		if off < 0 {
			d.negativeOffset = true
		}
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			check(n.Timestamp, n.StartOrEnd, int64(n.OriginalOffset))
		case *parser.SubqueryExpr:
			check(n.Timestamp, n.StartOrEnd, int64(n.OriginalOffset))
		}
		return nil
	})
	return d
}
