package ingesterpb

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
)

// FromLabels converts a label set to its wire form.
func FromLabels(ls labels.Labels) []*LabelPair {
	out := make([]*LabelPair, 0, ls.Len())
	ls.Range(func(l labels.Label) {
		out = append(out, &LabelPair{Name: l.Name, Value: l.Value})
	})
	return out
}

// ToLabels converts wire labels, which must already be sorted and unique,
// into a label set. b is reused between calls to save allocations.
func ToLabels(b *labels.ScratchBuilder, pairs []*LabelPair) labels.Labels {
	b.Reset()
	for _, p := range pairs {
		b.Add(p.Name, p.Value)
	}
	return b.Labels()
}

// FromMatchers converts PromQL matchers to their wire form.
func FromMatchers(ms []*labels.Matcher) []*LabelMatcher {
	out := make([]*LabelMatcher, 0, len(ms))
	for _, m := range ms {
		var t LabelMatcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = LabelMatcher_EQ
		case labels.MatchNotEqual:
			t = LabelMatcher_NEQ
		case labels.MatchRegexp:
			t = LabelMatcher_RE
		case labels.MatchNotRegexp:
			t = LabelMatcher_NRE
		}
		out = append(out, &LabelMatcher{Type: t, Name: m.Name, Value: m.Value})
	}
	return out
}

// ToMatchers converts wire matchers back; a bad regexp is an error.
func ToMatchers(ms []*LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, 0, len(ms))
	for _, m := range ms {
		var t labels.MatchType
		switch m.Type {
		case LabelMatcher_EQ:
			t = labels.MatchEqual
		case LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case LabelMatcher_RE:
			t = labels.MatchRegexp
		case LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("unknown matcher type %d", m.Type)
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, fmt.Errorf("matcher %s: %w", m.Name, err)
		}
		out = append(out, lm)
	}
	return out, nil
}
