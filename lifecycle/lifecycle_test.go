package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStartsInOrderStopsInReverse(t *testing.T) {
	var events []string
	comp := func(name string, startErr error) Component {
		return Funcs{
			StartFunc: func(context.Context) error { events = append(events, "start "+name); return startErr },
			StopFunc:  func(context.Context) error { events = append(events, "stop "+name); return nil },
		}
	}
	m := NewManager(slog.New(slog.DiscardHandler))
	m.Add("a", comp("a", nil))
	m.Add("b", comp("b", nil))
	require.NoError(t, m.Start(context.Background()))
	require.True(t, m.Ready())
	require.NoError(t, m.Stop(context.Background()))
	require.False(t, m.Ready())
	require.Equal(t, []string{"start a", "start b", "stop b", "stop a"}, events)

	// A failed start stops what already started, and only that.
	events = nil
	m = NewManager(slog.New(slog.DiscardHandler))
	m.Add("a", comp("a", nil))
	m.Add("b", comp("b", errors.New("boom")))
	m.Add("c", comp("c", nil))
	require.ErrorContains(t, m.Start(context.Background()), "start b: boom")
	require.Equal(t, []string{"start a", "start b", "stop a"}, events)
}
