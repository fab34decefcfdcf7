package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// ErrInvalid is matched (errors.Is) by every Errors value: the configuration
// has unknown keys or bad values.
var ErrInvalid = errors.New("config: invalid configuration")

// Error is one configuration problem.
type Error struct {
	// Key is the dotted key ("auth.multi_tenant.isolation") or, for an
	// unknown environment variable, the variable's name. It is "" only for
	// a TOML syntax error.
	Key string
	// Msg says what is wrong and what to do.
	Msg string
	// Env is the environment variable the bad value came from, if any.
	Env string
	// File and Line locate the key in the configuration file when known.
	File string
	Line int
}

// Error formats the problem as "key: message", followed by where the value
// came from: " (line 12)", " (deploy.toml line 12)" or
// " (from TENANTMCP_SERVER_LISTEN)".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	switch {
	case e.Env != "" && e.Env != e.Key:
		fmt.Fprintf(&b, " (from %s)", e.Env)
	case e.Line > 0 && e.File != "":
		fmt.Fprintf(&b, " (%s line %d)", e.File, e.Line)
	case e.Line > 0:
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Errors is every problem found in a configuration, in file order, then
// environment, then cross-key validation. It is never empty when returned
// as an error.
type Errors []*Error

// Error returns one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is ErrInvalid.
func (es Errors) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the individual problems.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxErrors bounds how many problems are reported (and located).
const maxErrors = 100

func (es Errors) capped() Errors {
	if len(es) <= maxErrors {
		return es
	}
	more := len(es) - maxErrors
	return append(es[:maxErrors:maxErrors], &Error{Msg: fmt.Sprintf("and %d more problems not shown", more)})
}

func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Load reads the TOML file at path (path "" means defaults only), applies the
// TENANTMCP_* overrides found in environ (as returned by os.Environ; the
// package never reads the environment itself), fills in derived defaults and
// validates. Every problem is reported at once as Errors, each naming the
// key, the file line or the environment variable.
func Load(path string, environ []string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
	}
	c, err := parse(data, environ, path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Parse is Load for a file already in memory.
func Parse(data []byte, environ []string) (*Config, error) {
	return parse(data, environ, "")
}

// source records where a key's value came from.
type source struct {
	fileKey []string // set from the file under this TOML key path
	env     string   // set from this environment variable (wins)
}

type loader struct {
	cfg     *Config
	file    string
	data    string
	doc     map[string]any
	sources map[string]source
	errs    Errors
	bad     map[string]bool // keys whose value could not be decoded
}

func parse(data []byte, environ []string, file string) (*Config, error) {
	l := &loader{
		cfg:     Default(),
		file:    file,
		data:    string(data),
		sources: map[string]source{},
		bad:     map[string]bool{},
	}
	syntaxOK := l.decodeFile()
	l.applyEnv(environ)
	if !syntaxOK {
		return nil, l.errs.capped()
	}
	l.cfg.fitArgumentLimit(func(key string) bool { _, ok := l.sources[key]; return ok })
	for _, e := range l.cfg.validate() {
		if l.bad[e.Key] {
			continue // already reported as undecodable; its default would only confuse
		}
		l.locate(e)
		l.errs = append(l.errs, e)
	}
	if len(l.errs) > 0 {
		return nil, l.errs.capped()
	}
	l.cfg.applyDerived()
	l.cfg.applyLocalDefaults(func(key string) bool { _, ok := l.sources[key]; return ok })
	return l.cfg, nil
}

// add records a problem for key; line lookup happens here for file keys.
func (l *loader) add(key, msg string, fileKey []string) {
	e := &Error{Key: key, Msg: msg}
	if fileKey != nil && len(l.errs) < maxErrors {
		e.File = l.file
		e.Line = l.line(fileKey)
	}
	l.errs = append(l.errs, e)
}

// locate annotates a validation error with where its key was set.
func (l *loader) locate(e *Error) {
	src, ok := l.sources[e.Key]
	if !ok {
		return
	}
	if src.env != "" {
		e.Env = src.env
		return
	}
	if len(l.errs) >= maxErrors {
		return
	}
	e.File = l.file
	e.Line = l.line(src.fileKey)
}

// decodeFile decodes the TOML document key by key, collecting every unknown
// key and badly typed value. It reports false on a syntax error.
func (l *loader) decodeFile() bool {
	if strings.TrimSpace(l.data) == "" {
		return true
	}
	md, err := toml.Decode(l.data, &l.doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			l.errs = append(l.errs, &Error{Msg: "TOML syntax error: " + pe.Message, File: l.file, Line: pe.Position.Line})
		} else {
			l.errs = append(l.errs, &Error{Msg: "TOML syntax error: " + err.Error(), File: l.file})
		}
		return false
	}
	// Keys reported as unknown or not tables: their children are skipped.
	dead := map[string]bool{}
	for _, key := range md.Keys() {
		if len(key) == 0 {
			continue
		}
		quoted := key.String()
		if dead[quoted] || hasDeadPrefix(dead, key) {
			continue // [[x]] lists x once per element
		}
		path := strings.Join(key, ".")
		plain := plainKey(key)
		if sections[path] && plain {
			if t := md.Type(key...); t != "Hash" {
				l.add(path, fmt.Sprintf("must be a table ([%s]), not %s", path, tomlTypeName(t)), key)
				dead[quoted] = true
			}
			continue
		}
		if k := keyByPath[path]; k != nil && plain {
			l.set(k, key, lookup(l.doc, key))
			dead[quoted] = true // a leaf has no children; a table value was reported by set
			continue
		}
		l.add(quoted, unknownMessage(key), key)
		dead[quoted] = true
	}
	return true
}

// plainKey reports whether no piece of key contains a dot, so that its
// dotted form names it unambiguously ("a.b" quoted is not a.b).
func plainKey(key toml.Key) bool {
	for _, k := range key {
		if strings.Contains(k, ".") {
			return false
		}
	}
	return true
}

func hasDeadPrefix(dead map[string]bool, key toml.Key) bool {
	for i := 1; i < len(key); i++ {
		if dead[key[:i].String()] {
			return true
		}
	}
	return false
}

func lookup(doc map[string]any, key []string) any {
	var cur any = doc
	for _, k := range key {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func unknownMessage(key toml.Key) string {
	what := "unknown key"
	if len(key) == 1 {
		what = "unknown key or section"
	}
	if s, ok := suggest(key); ok {
		return fmt.Sprintf("%s; did you mean %s?", what, s)
	}
	return fmt.Sprintf("%s (see docs/configuration.md for the list of keys)", what)
}

// suggest proposes the known key or section a mistyped key most likely
// meant: the same leaf name in another section, else the nearest path.
func suggest(key toml.Key) (string, bool) {
	path := strings.Join(key, ".")
	last := key[len(key)-1]
	for _, k := range keyTable {
		if k.name() == last {
			return k.path, true
		}
	}
	if s, ok := nearest(path, knownPaths()); ok {
		return s, true
	}
	// "logging" for "log", "database_settings" for "database": a known
	// name at the same depth that the key starts with.
	for _, p := range knownPaths() {
		if strings.Count(p, ".") == len(key)-1 && strings.HasPrefix(path, p) {
			return p, true
		}
	}
	return "", false
}

func tomlTypeName(t string) string {
	switch t {
	case "Hash":
		return "a table"
	case "ArrayHash":
		return "an array of tables"
	case "Array":
		return "an array"
	case "String":
		return "a string"
	case "Integer":
		return "an integer"
	case "Float":
		return "a float"
	case "Bool":
		return "a boolean"
	case "Datetime", "DatetimeLocal", "DateLocal", "TimeLocal":
		return "a date/time"
	}
	return "a " + strings.ToLower(t)
}

func valueTypeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case time.Time:
		return "a date/time"
	}
	return fmt.Sprintf("%T", v)
}

// set decodes one file value into the key's field.
func (l *loader) set(k *keyDef, fileKey []string, v any) {
	l.sources[k.path] = source{fileKey: fileKey}
	fail := func(msg string) {
		l.bad[k.path] = true
		l.add(k.path, msg, fileKey)
	}
	shown := func() string {
		if k.secret {
			return ""
		}
		switch x := v.(type) {
		case string:
			return " (" + strconv.Quote(truncate(x)) + ")"
		case int64, float64, bool:
			return fmt.Sprintf(" (%v)", x)
		}
		return ""
	}
	switch p := k.field(l.cfg).(type) {
	case *string:
		s, ok := v.(string)
		if !ok {
			fail(fmt.Sprintf("must be a string, not %s%s", valueTypeName(v), shown()))
			return
		}
		*p = s
	case *bool:
		b, ok := v.(bool)
		if !ok {
			fail(fmt.Sprintf("must be true or false, not %s%s", valueTypeName(v), shown()))
			return
		}
		*p = b
	case *int:
		n, ok := v.(int64)
		if !ok {
			fail(fmt.Sprintf("must be an integer, not %s%s", valueTypeName(v), shown()))
			return
		}
		if n > math.MaxInt32 || n < math.MinInt32 {
			fail(fmt.Sprintf("%d is out of range", n))
			return
		}
		*p = int(n)
	case *int64:
		n, ok := v.(int64)
		if !ok {
			fail(fmt.Sprintf("must be an integer, not %s%s", valueTypeName(v), shown()))
			return
		}
		*p = n
	case *float64:
		switch n := v.(type) {
		case float64:
			*p = n
		case int64:
			*p = float64(n)
		default:
			fail(fmt.Sprintf("must be a number, not %s%s", valueTypeName(v), shown()))
			return
		}
	case *time.Duration:
		s, ok := v.(string)
		if !ok {
			fail(fmt.Sprintf("must be a duration string such as \"30s\", \"5m\" or \"1h\", not %s%s", valueTypeName(v), shown()))
			return
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			fail(fmt.Sprintf("%s is not a duration: use a number with a unit, such as \"30s\", \"5m\" or \"1h\"", strconv.Quote(truncate(s))))
			return
		}
		*p = d
	case *[]string:
		arr, ok := v.([]any)
		if !ok {
			fail(fmt.Sprintf("must be an array of strings such as [\"a\", \"b\"], not %s%s", valueTypeName(v), shown()))
			return
		}
		out := make([]string, 0, len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				fail(fmt.Sprintf("element %d must be a string, not %s", i+1, valueTypeName(e)))
				return
			}
			out = append(out, s)
		}
		*p = out
	default:
		panic("config: unsupported field type for " + k.path)
	}
}

// applyEnv applies TENANTMCP_* overrides. Later entries win, as in a shell.
func (l *loader) applyEnv(environ []string) {
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if notConfig(name) {
			continue
		}
		k := keyByEnv[name]
		if k == nil {
			msg := "unknown environment variable (no configuration key has this name)"
			if s, ok := nearest(name, envNames()); ok {
				msg = fmt.Sprintf("unknown environment variable; did you mean %s?", s)
			}
			l.errs = append(l.errs, &Error{Key: name, Msg: msg, Env: name})
			continue
		}
		delete(l.bad, k.path)
		l.sources[k.path] = source{env: name}
		if err := k.setString(l.cfg, value); err != nil {
			l.bad[k.path] = true
			l.errs = append(l.errs, &Error{Key: k.path, Msg: err.Error(), Env: name})
		}
	}
}

// setString parses an environment value into the key's field.
func (k *keyDef) setString(c *Config, value string) error {
	shown := strconv.Quote(truncate(value))
	if k.secret {
		shown = "the value"
	}
	switch p := k.field(c).(type) {
	case *string:
		*p = value
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("%s is not a boolean: use true or false", shown)
		}
		*p = b
	case *int:
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 32)
		if err != nil {
			return fmt.Errorf("%s is not an integer", shown)
		}
		*p = int(n)
	case *int64:
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return fmt.Errorf("%s is not an integer", shown)
		}
		*p = n
	case *float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return fmt.Errorf("%s is not a number", shown)
		}
		*p = f
	case *time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("%s is not a duration: use a number with a unit, such as \"30s\", \"5m\" or \"1h\"", shown)
		}
		*p = d
	case *[]string:
		out := []string{}
		for _, s := range strings.Split(value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		*p = out
	default:
		panic("config: unsupported field type for " + k.path)
	}
	return nil
}

func truncate(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

type probeFail struct{}

var errProbe = errors.New("tenantmcp config line probe")

func (probeFail) UnmarshalTOML(any) error { return errProbe }

// line returns the line where key is defined in the file, or 0. The toml
// package keeps key positions private; it reveals them in the ParseError of
// a decode that fails at exactly that key, so decode into a struct that has
// only that path, ending in a value that refuses to decode. It runs only for
// keys with a problem (at most maxErrors per load); reflect caches each
// struct type it builds, which is fine for a configuration loaded at start-up.
func tomlTag(name string) reflect.StructTag {
	return reflect.StructTag("toml:" + strconv.Quote(name))
}

func (l *loader) line(key []string) int {
	if len(key) == 0 || l.data == "" {
		return 0
	}
	// The decoder matches field names case-insensitively when there is no
	// exact match, so siblings that differ from the key only in case get
	// fields of their own.
	t := reflect.TypeOf(probeFail{})
	anyType := reflect.TypeOf((*any)(nil)).Elem()
	for i := len(key) - 1; i >= 0; i-- {
		fields := []reflect.StructField{{Name: "F", Type: t, Tag: tomlTag(key[i])}}
		if parent, ok := lookup(l.doc, key[:i]).(map[string]any); ok {
			for name := range parent {
				if name != key[i] && strings.EqualFold(name, key[i]) {
					fields = append(fields, reflect.StructField{Name: fmt.Sprintf("G%d", len(fields)), Type: anyType, Tag: tomlTag(name)})
				}
			}
		}
		t = reflect.StructOf(fields)
	}
	_, err := toml.Decode(l.data, reflect.New(t).Interface())
	var pe toml.ParseError
	if errors.As(err, &pe) && pe.Message == errProbe.Error() {
		return pe.Position.Line
	}
	return 0
}

// redactURL hides the password of a URL-shaped secret.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "REDACTED"
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}
