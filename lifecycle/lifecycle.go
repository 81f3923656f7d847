package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Component is a long-running part of Orrery.
//
// Start prepares the component and launches its background work; when it
// returns nil the component is ready to serve. Stop ends the background work
// and releases resources; the manager calls it at most once, only after a
// successful Start.
type Component interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Funcs adapts a pair of functions to a Component. A nil function does nothing.
type Funcs struct {
	StartFunc func(ctx context.Context) error
	StopFunc  func(ctx context.Context) error
}

// Start implements Component.
func (f Funcs) Start(ctx context.Context) error {
	if f.StartFunc == nil {
		return nil
	}
	return f.StartFunc(ctx)
}

// Stop implements Component.
func (f Funcs) Stop(ctx context.Context) error {
	if f.StopFunc == nil {
		return nil
	}
	return f.StopFunc(ctx)
}

type named struct {
	name string
	c    Component
}

// Manager starts components in the order they were added and stops them in
// reverse, so that a component may rely on everything added before it.
// It is safe for concurrent use.
type Manager struct {
	logger *slog.Logger

	mu      sync.Mutex
	all     []named
	started []named
	ready   bool
}

// NewManager returns an empty manager.
func NewManager(logger *slog.Logger) *Manager {
	return &Manager{logger: logger}
}

// Add appends a component; it must be called before Start.
func (m *Manager) Add(name string, c Component) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.all = append(m.all, named{name: name, c: c})
}

// Start starts every component in order. On the first failure it stops the
// ones already started and returns the error.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.all {
		m.logger.Info("starting", "component", n.name)
		if err := n.c.Start(ctx); err != nil {
			err = fmt.Errorf("start %s: %w", n.name, err)
			return errors.Join(err, m.stopLocked(ctx))
		}
		m.started = append(m.started, n)
	}
	m.ready = true
	return nil
}

// Ready reports whether every component has started and none has stopped.
func (m *Manager) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready
}

// Stop stops the started components in reverse order and joins their errors.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopLocked(ctx)
}

func (m *Manager) stopLocked(ctx context.Context) error {
	m.ready = false
	var errs []error
	for i := len(m.started) - 1; i >= 0; i-- {
		n := m.started[i]
		m.logger.Info("stopping", "component", n.name)
		if err := n.c.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", n.name, err))
		}
	}
	m.started = nil
	return errors.Join(errs...)
}
