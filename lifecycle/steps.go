package lifecycle

import (
	"slices"

	"github.com/tenantmcp/tenantmcp/registry"
)

// Steps lists the steps of operation op (OpProvision, …) for tenant t
// with this manager's backends, in the order they run: the values
// registry.Lifecycle.Step takes. Nil for an operation it does not know.
func (m *Manager) Steps(op string, t *registry.Tenant) []string {
	var steps []string
	switch op {
	case OpProvision:
		steps = append(steps, stepRecord)
		for _, b := range m.o.Backends {
			if b.Provision != nil {
				steps = append(steps, b.Name)
			}
		}
		steps = append(steps, stepActivate)
	case OpArchive:
		steps = []string{stepSuspend, stepWrite}
	case OpPurge:
		steps = m.dataSteps(nil)
		if t != nil && t.Lifecycle.Deleted {
			steps = append(steps, stepRemove)
		}
	case OpRestore:
		steps = append(m.dataSteps([]string{stepRecord}), stepActivate)
	}
	return steps
}

// dataSteps appends the names of the backends that hold data.
func (m *Manager) dataSteps(steps []string) []string {
	for _, b := range m.o.Backends {
		if b.Data != nil {
			steps = append(steps, b.Name)
		}
	}
	return steps
}

// Progress is how far t's operation in progress has come: the steps
// before its current one are done, of total. ok is false when none is in
// progress (or its step is not one this manager knows, such as a
// backend removed since).
func (m *Manager) Progress(t *registry.Tenant) (done, total int, ok bool) {
	if t.Lifecycle.Operation == "" {
		return 0, 0, false
	}
	steps := m.Steps(t.Lifecycle.Operation, t)
	i := slices.Index(steps, t.Lifecycle.Step)
	if i < 0 {
		return 0, len(steps), false
	}
	return i, len(steps), true
}
