package verify

import (
	"fmt"
	"slices"
	"strings"
)

// toolset is a family of tenant tools that write, read, list and delete
// one kind of object (put_document, get_document, list_documents,
// delete_document). list and del may be nil.
type toolset struct {
	write, read, list, del *toolInfo
	// key is the write tool's argument naming the object, "" when the
	// write tool returns the object's id instead; readKey and delKey are
	// the read and delete tools' (usually the same name).
	key, readKey, delKey string
	// values are the write tool's other string arguments (the content).
	values []string
	// listArg is the list tool's string argument (a prefix), or "".
	listArg string
}

func (s *toolset) String() string {
	names := []string{s.write.Name, s.read.Name}
	if s.list != nil {
		names = append(names, s.list.Name)
	}
	if s.del != nil {
		names = append(names, s.del.Name)
	}
	return strings.Join(names, "/")
}

// Verbs that name the tools of a family, in the order they are preferred.
var (
	writeVerbs  = []string{"put", "save", "write", "set", "create", "add", "upsert", "store"}
	readVerbs   = []string{"get", "read", "fetch", "load"}
	deleteVerbs = []string{"delete", "remove", "del"}
)

// findToolsets returns the families of tools in tools: the one named in o,
// or else every family of tools named <verb>_<noun>.
func findToolsets(tools []toolInfo, o *Options) ([]*toolset, error) {
	byName := map[string]*toolInfo{}
	for i := range tools {
		byName[tools[i].Name] = &tools[i]
	}
	if o.WriteTool != "" || o.ReadTool != "" {
		s := &toolset{}
		for _, n := range []struct {
			name string
			dst  **toolInfo
			flag string
		}{{o.WriteTool, &s.write, "write"}, {o.ReadTool, &s.read, "read"}, {o.ListTool, &s.list, "list"}, {o.DeleteTool, &s.del, "delete"}} {
			if n.name == "" {
				continue
			}
			t, ok := byName[n.name]
			if !ok {
				return nil, fmt.Errorf("tenant A is not served a tool %q (the %s tool); it is served %s", n.name, n.flag, toolNames(tools))
			}
			*n.dst = t
		}
		if s.write == nil || s.read == nil {
			return nil, fmt.Errorf("name both the write and the read tool")
		}
		if err := s.deriveArgs(); err != nil {
			return nil, err
		}
		return []*toolset{s}, nil
	}
	var sets []*toolset
	for i := range tools {
		w := &tools[i]
		verb, noun, ok := strings.Cut(w.Name, "_")
		if !ok || !slices.Contains(writeVerbs, verb) || noun == "" {
			continue
		}
		s := &toolset{write: w}
		s.read = first(byName, readVerbs, noun, "")
		if s.read == nil {
			continue
		}
		s.list = first(byName, []string{"list"}, noun, "s", "", "es")
		s.del = first(byName, deleteVerbs, noun, "")
		if s.deriveArgs() != nil {
			continue
		}
		sets = append(sets, s)
	}
	return sets, nil
}

// first returns the first tool named <verb>_<noun><suffix> in that order.
func first(byName map[string]*toolInfo, verbs []string, noun string, suffixes ...string) *toolInfo {
	for _, v := range verbs {
		for _, sfx := range suffixes {
			if t, ok := byName[v+"_"+noun+sfx]; ok {
				return t
			}
		}
	}
	return nil
}

// deriveArgs finds the arguments from the tools' input schemas.
func (s *toolset) deriveArgs() error {
	s.readKey = s.read.keyArg()
	if s.readKey == "" {
		return fmt.Errorf("%s takes no string argument to name what it reads", s.read.Name)
	}
	if s.write.hasProp(s.readKey) {
		s.key = s.readKey
	}
	for _, p := range s.write.stringProps() {
		if p != s.key {
			s.values = append(s.values, p)
		}
	}
	if s.del != nil {
		if s.delKey = s.del.keyArg(); s.delKey == "" {
			s.del = nil
		}
	}
	if s.list != nil {
		if props := s.list.stringProps(); len(props) > 0 {
			s.listArg = props[0]
		}
	}
	return nil
}

// stringProps returns the names of the string properties: the required
// ones first, then the others, each group in name order.
func (t *toolInfo) stringProps() []string {
	var req, opt []string
	for name, p := range t.InputSchema.Properties {
		if typ, _ := p.Type.(string); typ != "string" {
			continue
		}
		if slices.Contains(t.InputSchema.Required, name) {
			req = append(req, name)
		} else {
			opt = append(opt, name)
		}
	}
	slices.Sort(req)
	slices.Sort(opt)
	return append(req, opt...)
}

// keyArg is the string argument that names an object: one called key, id,
// name or path if there is one, else the first string argument.
func (t *toolInfo) keyArg() string {
	props := t.stringProps()
	for _, want := range []string{"key", "id", "name", "path"} {
		if slices.Contains(props, want) {
			return want
		}
	}
	if len(props) > 0 {
		return props[0]
	}
	return ""
}

func (t *toolInfo) hasProp(name string) bool {
	_, ok := t.InputSchema.Properties[name]
	return ok
}

// fill returns args with a zero value added for every required argument
// it lacks that is not a string.
func (t *toolInfo) fill(args map[string]any) map[string]any {
	for _, name := range t.InputSchema.Required {
		if _, ok := args[name]; ok {
			continue
		}
		typ, _ := t.InputSchema.Properties[name].Type.(string)
		switch typ {
		case "number", "integer":
			args[name] = 1
		case "boolean":
			args[name] = false
		case "array":
			args[name] = []any{}
		case "object":
			args[name] = map[string]any{}
		}
	}
	return args
}

func toolNames(tools []toolInfo) string {
	if len(tools) == 0 {
		return "no tools"
	}
	names := make([]string, len(tools))
	for i, t := range tools {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}
