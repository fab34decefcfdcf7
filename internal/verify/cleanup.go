package verify

import (
	"context"
	"fmt"
	"strings"
)

// cleanup deletes everything the run may have written: A's markers as A
// and B's overwrite attempts as B. It runs last, also after an interrupt
// (with a context of its own), and says what it could not remove.
func (v *run) cleanup(ctx context.Context) {
	const id, attack = "cleanup", "delete A's markers as A (and B's writes as B)"
	if len(v.written) == 0 && len(v.bCopies) == 0 {
		return
	}
	var failed, noDelete []string
	deleted := 0
	seen := map[string]bool{}
	for _, w := range []struct {
		c       *mcpClient
		who     string
		markers []*marker
	}{{v.a, "A", v.written}, {v.b, "B", v.bCopies}} {
		for _, m := range w.markers {
			if seen[w.who+"\x00"+m.key] {
				continue
			}
			seen[w.who+"\x00"+m.key] = true
			if m.set.del == nil {
				noDelete = append(noDelete, fmt.Sprintf("%s's %q", w.who, m.key))
				continue
			}
			res, err := w.c.call(ctx, m.set.del.Name, m.set.del.fill(map[string]any{m.set.delKey: m.key}), nil)
			switch {
			case err != nil:
				failed = append(failed, fmt.Sprintf("%s %q as %s: %v", m.set.del.Name, m.key, w.who, err))
			case res.ran():
				deleted++
			}
			// A tool error is most often "not found": a write that never
			// happened (an interrupted run). The list below tells.
		}
	}
	// What A still lists of this run.
	listed := map[string]bool{}
	for _, m := range v.written {
		s := m.set
		if s.list == nil || listed[s.list.Name] {
			continue
		}
		listed[s.list.Name] = true
		args := map[string]any{}
		if s.listArg != "" {
			args[s.listArg] = "tmverify-" + v.id
		}
		res, err := v.a.call(ctx, s.list.Name, s.list.fill(args), nil)
		switch {
		case err != nil:
			failed = append(failed, fmt.Sprintf("%s as A: %v", s.list.Name, err))
		case res.ran() && strings.Contains(res.text, v.id) && s.del != nil:
			failed = append(failed, fmt.Sprintf("A's %s still shows markers: %s", s.list.Name, excerpt([]byte(res.text), 160)))
		}
	}
	lists := make([]string, 0, len(listed))
	for name := range listed {
		lists = append(lists, name)
	}
	switch {
	case len(failed) > 0:
		v.add(id, attack, StatusError, "could not remove every marker: %s", summarize(failed))
	case len(noDelete) > 0:
		v.add(id, attack, StatusNA, "not applicable for %s: no delete tool, so these stay; remove them by hand: %s", strings.Join(v.rep.Toolsets, ", "), strings.Join(noDelete, ", "))
	case len(lists) > 0:
		v.add(id, attack, StatusPass, "deleted %d markers; A's %s shows none of them", deleted, strings.Join(lists, ", "))
	default:
		v.add(id, attack, StatusPass, "deleted %d markers", deleted)
	}
}
