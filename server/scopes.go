package server

// scopeSet answers "does this token grant scope X", honouring a hierarchy
// in which a broad scope implies narrower ones (transitively).
type scopeSet struct {
	implied map[string]map[string]bool
}

func newScopeSet(hierarchy map[string][]string) scopeSet {
	implied := make(map[string]map[string]bool, len(hierarchy))
	for broad := range hierarchy {
		seen := map[string]bool{}
		var walk func(string)
		walk = func(s string) {
			for _, narrow := range hierarchy[s] {
				if !seen[narrow] {
					seen[narrow] = true
					walk(narrow)
				}
			}
		}
		walk(broad)
		implied[broad] = seen
	}
	return scopeSet{implied: implied}
}

// grants reports whether any of have is need or implies it.
func (s scopeSet) grants(have []string, need string) bool {
	for _, h := range have {
		if h == need || s.implied[h][need] {
			return true
		}
	}
	return false
}
