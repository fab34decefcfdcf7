package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

// marker is a piece of A's data that B must never reach.
type marker struct {
	set     *toolset
	key     string // what the read and delete tools take
	content string // the secret
}

// connect connects A and B, lists their tools and finds the toolsets.
func (v *run) connect(ctx context.Context) {
	v.claimsA, _ = jwtClaims(v.tokA)
	v.claimsB, _ = jwtClaims(v.tokB)
	var same bool
	v.rep.TenantA, v.rep.TenantB, same, v.tenantValues = describeTenants(v.claimsA, v.claimsB)
	var err error
	if v.a, err = dial(ctx, v.url, v.tokA, v.httpA, "", v.opts.Timeout); err != nil {
		v.add("connect", "connect as tenant A", StatusError, "cannot connect to %s over MCP with tenant A's token: %v", v.url, err)
		return
	}
	v.version = v.a.protocol()
	v.modern = mcp.IsModernProtocol(v.version)
	v.rep.Protocol = v.version
	if v.b, err = dial(ctx, v.url, v.tokB, v.httpB, "", v.opts.Timeout); err != nil {
		v.add("connect", "connect as tenant B", StatusError, "cannot connect to %s over MCP with tenant B's token: %v", v.url, err)
		return
	}
	if v.toolsA, err = v.a.tools(ctx); err != nil {
		v.add("connect", "list tenant A's tools", StatusError, "tools/list as A: %v", err)
		return
	}
	if v.toolsB, err = v.b.tools(withCheck(ctx, "connect")); err != nil {
		v.add("connect", "list tenant B's tools", StatusError, "tools/list as B: %v", err)
		return
	}
	v.connected = true
	if same {
		v.add("tenants", "tokens of two tenants", StatusError,
			"A's and B's tokens differ only in the user, scopes, token id and times (A: %s, B: %s): they look like two users of one tenant, who share its data by design; give tokens of two different tenants", v.rep.TenantA, v.rep.TenantB)
	}
	sets, err := findToolsets(v.toolsA, v.opts)
	if err != nil {
		v.add("markers", "write markers as A", StatusError, "%v", err)
		return
	}
	v.sets = sets
	for _, s := range sets {
		v.rep.Toolsets = append(v.rep.Toolsets, s.String())
	}
}

// writeMarkers writes A's markers with every toolset: a flat key and a
// nested one (where the tool takes it), each with content of its own.
func (v *run) writeMarkers(ctx context.Context) {
	if !v.connected {
		return
	}
	if len(v.sets) == 0 {
		v.add("markers", "write markers as A", StatusNA,
			"not applicable: tenant A is served no family of write/read tools (%s); name them with --write-tool and --read-tool", toolNames(v.toolsA))
		return
	}
	var failed []string
	for _, s := range v.sets {
		for i, key := range []string{"tmverify-" + v.id + "/a/doc.md", "tmverify-" + v.id + "-a"} {
			m, err := v.writeMarker(ctx, s, key)
			if err != nil {
				if i == 0 {
					continue // the tool may not take nested keys: the flat one will do
				}
				failed = append(failed, err.Error())
				continue
			}
			v.markers = append(v.markers, m)
			v.rep.Markers = append(v.rep.Markers, m.key)
		}
	}
	if len(failed) > 0 {
		v.add("markers", "write markers as A", StatusError, "%s", summarize(failed))
	}
}

// writeMarker writes one marker as A and reads it back.
func (v *run) writeMarker(ctx context.Context, s *toolset, key string) (*marker, error) {
	content := "tmverify secret " + randomHex(12)
	v.scan.addContent(content)
	m := &marker{set: s, key: key, content: content}
	args := map[string]any{}
	if s.key != "" {
		args[s.key] = key
		v.written = append(v.written, m) // before the call: an interrupt may come during it
	}
	for _, val := range s.values {
		args[val] = content
	}
	res, err := v.a.call(ctx, s.write.Name, s.write.fill(args), nil)
	if err != nil {
		return nil, fmt.Errorf("%s as A: %v", s.write.Name, err)
	}
	if !res.ran() {
		return nil, fmt.Errorf("%s as A %s", s.write.Name, res.describe())
	}
	if s.key == "" { // the tool made the id: it is in the result
		if m.key = idFrom(res, s.readKey); m.key == "" {
			return nil, fmt.Errorf("%s takes no %q argument and its result names no %q", s.write.Name, s.readKey, s.readKey)
		}
		v.written = append(v.written, m)
	}
	if err := v.readBack(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// idFrom returns the string field name of a result's structured content
// (or of its text, if that is a JSON object).
func idFrom(r *reply, name string) string {
	var res struct {
		Structured map[string]any `json:"structuredContent"`
	}
	json.Unmarshal(r.raw, &res)
	if res.Structured == nil {
		json.Unmarshal([]byte(r.text), &res.Structured)
	}
	id, _ := res.Structured[name].(string)
	return id
}

// readBack reads a marker as A; it must hold its content (and only if
// the write tool stores one).
func (v *run) readBack(ctx context.Context, m *marker) error {
	res, err := v.a.call(ctx, m.set.read.Name, m.set.read.fill(map[string]any{m.set.readKey: m.key}), nil)
	if err != nil {
		return fmt.Errorf("%s %q as A: %v", m.set.read.Name, m.key, err)
	}
	if !res.ran() {
		return fmt.Errorf("%s %q as A %s", m.set.read.Name, m.key, res.describe())
	}
	if len(m.set.values) > 0 && !strings.Contains(res.text, m.content) {
		return fmt.Errorf("%s %q as A returned %s, not the content A wrote", m.set.read.Name, m.key, excerpt([]byte(res.text), 100))
	}
	return nil
}

// intact reads every marker as A and returns what is wrong with them.
func (v *run) intact(ctx context.Context) []string {
	var bad []string
	for _, m := range v.markers {
		if err := v.readBack(ctx, m); err != nil {
			bad = append(bad, err.Error())
		}
	}
	return bad
}

// restore writes back the markers that B's attempts (or, on a broken
// server, B's cleanup) changed, so that the next check starts from A's
// data.
func (v *run) restore(ctx context.Context) {
	for _, m := range v.markers {
		if v.readBack(ctx, m) == nil || m.set.key == "" {
			continue
		}
		args := map[string]any{m.set.key: m.key}
		for _, val := range m.set.values {
			args[val] = m.content
		}
		v.a.call(ctx, m.set.write.Name, m.set.write.fill(args), nil)
	}
}

// bCall is one of B's calls of a tool, for the checks that send many.
func (v *run) bCall(ctx context.Context, tool *toolInfo, args any) (*reply, error) {
	if m, ok := args.(map[string]any); ok {
		args = tool.fill(m)
	}
	return v.b.call(ctx, tool.Name, args, nil)
}

// tricksFor returns the keys B tries for marker i: every trick for the
// first marker, the exact key and one variant for the others.
func (v *run) tricksFor(i int, m *marker, tricks func(string, []string) []string) []string {
	if i == 0 {
		return tricks(m.key, v.tenantValues)
	}
	return []string{m.key, "./" + m.key}
}

// tryKeys calls tool as B once per key (as argument arg), handing each
// reply to seen (if set). It stops at the first request that fails to
// reach the server, and returns how many were answered.
func (v *run) tryKeys(ctx context.Context, tool *toolInfo, arg string, keys []string, seen func(key string, r *reply)) (int, error) {
	for i, k := range keys {
		res, err := v.bCall(ctx, tool, map[string]any{arg: k})
		if err != nil {
			return i, fmt.Errorf("B's %s failed: %w", tool.Name, err)
		}
		if seen != nil {
			seen(k, res)
		}
	}
	return len(keys), nil
}

// dataReady reports whether the data checks can run, recording id as not
// applicable (no markers) otherwise.
func (v *run) dataReady(id, attack string) bool {
	if len(v.markers) > 0 {
		return true
	}
	if v.connected {
		v.add(id, attack, StatusNA, "not applicable: A has no markers (see the markers line)")
	}
	return false
}

// checkList: B lists with every prefix trick; none of A's keys may appear.
func (v *run) checkList(ctx context.Context) {
	const id, attack = "list", "B lists A's data (prefix tricks: empty, ../, %, *, SQL, A's tenant id, look-alikes)"
	if !v.dataReady(id, attack) {
		return
	}
	ctx = withCheck(ctx, id)
	var leaks, errs []string
	calls, sets := 0, 0
	for _, s := range v.sets {
		if s.list == nil {
			continue
		}
		sets++
		var argsList []any
		if s.listArg == "" {
			argsList = []any{map[string]any{}}
		} else {
			for _, p := range prefixTricks(v.tenantValues) {
				argsList = append(argsList, map[string]any{s.listArg: p})
			}
		}
		for _, args := range argsList {
			res, err := v.bCall(ctx, s.list, args)
			if err != nil {
				errs = append(errs, "B's "+s.list.Name+" failed: "+err.Error())
				break
			}
			calls++
			if res.ran() && strings.Contains(res.text, v.id) {
				leaks = append(leaks, fmt.Sprintf("B's %s %s returned A's keys: %s", s.list.Name, argString(args), excerpt([]byte(res.text), 160)))
			}
		}
	}
	if sets == 0 {
		v.add(id, attack, StatusNA, "not applicable: no list tool among %s", strings.Join(v.rep.Toolsets, ", "))
		return
	}
	v.verdict(id, attack, leaks, errs, fmt.Sprintf("%d lists by B: none showed any of A's %d keys", calls, len(v.markers)))
}

// checkRead: B reads A's keys, and every trick of them.
func (v *run) checkRead(ctx context.Context) {
	const id, attack = "read", "B reads A's keys (A's exact keys, ../<A's tenant>/, encodings, case, look-alikes)"
	if !v.dataReady(id, attack) {
		return
	}
	ctx = withCheck(ctx, id)
	var leaks, errs []string
	calls := 0
	for i, m := range v.markers {
		n, err := v.tryKeys(ctx, m.set.read, m.set.readKey, v.tricksFor(i, m, keyTricks), func(k string, res *reply) {
			if strings.Contains(string(res.raw), m.content) {
				leaks = append(leaks, fmt.Sprintf("B's %s %q returned A's content", m.set.read.Name, k))
			}
		})
		calls += n
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	v.verdict(id, attack, leaks, errs, fmt.Sprintf("%d reads by B: none returned A's content", calls))
}

// checkSpoofArgs: B names A's tenant in the arguments and in _meta.
func (v *run) checkSpoofArgs(ctx context.Context) {
	const id, attack = "spoof-args", "B names A's tenant in tool arguments and _meta"
	if !v.dataReady(id, attack) {
		return
	}
	if len(v.tenantValues) == 0 {
		v.add(id, attack, StatusNA, "not applicable: A's token has no tenant claim that differs from B's (is it a JWT?)")
		return
	}
	ctx = withCheck(ctx, id)
	spoof := map[string]any{}
	for _, name := range []string{"tenant", "tenant_id", "tenantId", "org_id", "organization", "tid"} {
		spoof[name] = v.tenantValues[0]
	}
	for name, val := range v.claimsA {
		if s, ok := val.(string); ok && !isTimeOrID(name) {
			spoof[name] = s
		}
	}
	var leaks, errs []string
	calls := 0
	for _, m := range v.markers {
		plain := map[string]any{m.set.readKey: m.key}
		args := map[string]any{m.set.readKey: m.key}
		for k, val := range spoof {
			args[k] = val
		}
		// In the arguments, in _meta, and in both.
		for _, c := range []struct{ args, meta map[string]any }{{args, nil}, {plain, spoof}, {args, spoof}} {
			res, err := v.b.call(ctx, m.set.read.Name, m.set.read.fill(c.args), c.meta)
			if err != nil {
				errs = append(errs, "B's call failed: "+err.Error())
				continue
			}
			calls++
			if strings.Contains(string(res.raw), m.content) {
				leaks = append(leaks, fmt.Sprintf("B's %s with A's tenant in the arguments returned A's content", m.set.read.Name))
			}
		}
		if m.set.list != nil {
			res, err := v.b.call(ctx, m.set.list.Name, spoof, spoof)
			if err == nil {
				calls++
				if res.ran() && strings.Contains(res.text, v.id) {
					leaks = append(leaks, fmt.Sprintf("B's %s with A's tenant in the arguments returned A's keys", m.set.list.Name))
				}
			}
		}
	}
	v.verdict(id, attack, leaks, errs, fmt.Sprintf("%d calls by B with %s=%q (and A's other claims) in the arguments and _meta: none reached A's data", calls, "tenant_id", v.tenantValues[0]))
}

// checkSpoofHeaders: B's requests name A's tenant and user in headers a
// proxy or a careless server might trust.
func (v *run) checkSpoofHeaders(ctx context.Context) {
	const id, attack = "spoof-headers", "B names A's tenant in HTTP headers (X-Tenant-ID, X-Org-ID, X-Forwarded-User, ...)"
	if !v.dataReady(id, attack) {
		return
	}
	if len(v.tenantValues) == 0 {
		v.add(id, attack, StatusNA, "not applicable: A's token has no tenant claim that differs from B's (is it a JWT?)")
		return
	}
	ctx = withCheck(ctx, id)
	t := v.tenantValues[0]
	sub, _ := v.claimsA["sub"].(string)
	header := map[string]string{
		"X-Tenant-ID": t, "X-Tenant": t, "X-Org-ID": t, "X-Organization": t, "Tenant": t, "X-Customer-ID": t,
		"X-Forwarded-User": sub, "X-Auth-Request-User": sub, "X-User-ID": sub, "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1",
	}
	var leaks, errs []string
	calls := 0
	for _, m := range v.markers {
		calls++
		r, err := v.post(ctx, v.httpB, rawCall{token: v.tokB, method: "tools/call", header: header, session: v.sessionOf(v.b),
			params: map[string]any{"name": m.set.read.Name, "arguments": m.set.read.fill(map[string]any{m.set.readKey: m.key})}})
		if err != nil {
			errs = append(errs, "B's request failed: "+err.Error())
			continue
		}
		if strings.Contains(string(r.body), m.content) {
			leaks = append(leaks, fmt.Sprintf("B's %s with A's tenant in headers returned A's content", m.set.read.Name))
		}
	}
	v.verdict(id, attack, leaks, errs, fmt.Sprintf("%d reads by B with X-Tenant-ID: %s and 10 other headers: none returned A's content", calls, t))
}

// checkMalformed: B sends wrong types, duplicate keys, oversize and
// malformed arguments and bodies; none may reach A's data, and the server
// keeps serving A.
func (v *run) checkMalformed(ctx context.Context) {
	const id, attack = "malformed", "B sends malformed and oversize arguments and bodies"
	if !v.dataReady(id, attack) {
		return
	}
	ctx = withCheck(ctx, id)
	m := v.markers[0]
	tool, key := m.set.read.Name, m.set.readKey
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	call := func(args string) []byte {
		return []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":` + q(tool) + `,"arguments":` + args + v.metaJSON() + `}}`)
	}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	bodies := []struct{ what, body string }{
		{"key as a number", `{` + q(key) + `:12345}`},
		{"key as an array", `{` + q(key) + `:[` + q(m.key) + `]}`},
		{"key as an object", `{` + q(key) + `:{"$ne":null}}`},
		{"key null", `{` + q(key) + `:null}`},
		{"key true", `{` + q(key) + `:true}`},
		{"arguments a string", q(m.key)},
		{"arguments an array", `[` + q(m.key) + `]`},
		{"duplicate key, A's last", `{` + q(key) + `:"tmverify-b-own",` + q(key) + `:` + q(m.key) + `}`},
		{"duplicate key, A's first", `{` + q(key) + `:` + q(m.key) + `,` + q(key) + `:"tmverify-b-own"}`},
		{"escaped key", `{` + q(key) + `:` + strings.Replace(q(m.key), "t", `\u0074`, 1) + `}`},
		{"invalid UTF-8", `{` + q(key) + `:"` + m.key + "\xff\xfe" + `"}`},
		{"600-byte key", `{` + q(key) + `:` + q(strings.Repeat("a", 600)+m.key) + `}`},
		{"20000-deep nesting", `{` + q(key) + `:` + deep + `}`},
		{"prototype keys", `{` + q(key) + `:` + q(m.key) + `,"__proto__":{"tenant":"x"},"constructor":{"prototype":{}}}`},
	}
	var raw [][2]string
	for _, b := range bodies {
		raw = append(raw, [2]string{b.what, string(call(b.body))})
	}
	raw = append(raw,
		[2]string{"truncated JSON", string(call(`{` + q(key) + `:` + q(m.key)))[:60]},
		[2]string{"1 MiB key", string(call(`{` + q(key) + `:` + q(strings.Repeat("a", 1<<20)+m.key) + `}`))},
		[2]string{"batch", "[" + string(call(`{`+q(key)+`:`+q(m.key)+`}`)) + "," + string(call(`{`+q(key)+`:`+q(m.key)+`}`)) + "]"},
		[2]string{"not JSON", "tools/call " + tool + " " + m.key},
	)
	var leaks []string
	for _, r := range raw {
		rep, err := v.post(ctx, v.httpB, rawCall{token: v.tokB, body: []byte(r[1]), tool: tool, session: v.sessionOf(v.b)})
		if err != nil {
			continue // a connection the server cut is a refusal
		}
		if strings.Contains(string(rep.body), m.content) {
			leaks = append(leaks, fmt.Sprintf("B's %s (%s) returned A's content", tool, r[0]))
		}
	}
	// The list tool's argument of the wrong type.
	for _, s := range v.sets {
		if s.list == nil || s.listArg == "" {
			continue
		}
		for _, val := range []any{12345, []any{""}, map[string]any{"$regex": ".*"}, nil} {
			if res, err := v.bCall(ctx, s.list, map[string]any{s.listArg: val}); err == nil && res.ran() && strings.Contains(res.text, v.id) {
				leaks = append(leaks, fmt.Sprintf("B's %s with %s=%v returned A's keys", s.list.Name, s.listArg, val))
			}
		}
	}
	if bad := v.intact(ctx); len(bad) > 0 {
		v.add(id, attack, StatusError, "after B's malformed requests A no longer reads its markers: %s", summarize(bad))
		return
	}
	v.verdict(id, attack, leaks, nil, fmt.Sprintf("%d malformed or oversize requests by B (wrong types, duplicate keys, invalid UTF-8, 600-byte and 1 MiB keys, 20000-deep nesting, a batch, truncated JSON): none returned A's data; A still reads its markers", len(raw)))
}

// sessionOf is the session id a hand-made request of c's holder carries:
// its client's, on a revision that has sessions.
func (v *run) sessionOf(c *mcpClient) string {
	if v.modern || c == nil {
		return ""
	}
	return c.session()
}

// metaJSON is the protocol metadata of a hand-made tools/call of the
// run's revision, as the tail of its params object ("" for a legacy one).
func (v *run) metaJSON() string {
	if !v.modern {
		return ""
	}
	b, _ := json.Marshal(map[string]any{
		"io.modelcontextprotocol/protocolVersion":    v.version,
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
	})
	return `,"_meta":` + string(b)
}

// checkOverwrite: B writes to A's keys (and tricks of them); A's data
// must stay as A wrote it.
func (v *run) checkOverwrite(ctx context.Context) {
	const id, attack = "overwrite", "B overwrites A's keys (exact keys, path tricks, look-alikes)"
	if !v.dataReady(id, attack) {
		return
	}
	ctx = withCheck(ctx, id)
	bContent := "tmverify-b " + randomHex(12)
	var leaks, errs []string
	calls, accepted := 0, 0
	for i, m := range v.markers {
		if m.set.key == "" {
			continue // the tool makes its own ids: there is no key to write to
		}
		keys := []string{m.key, "./" + m.key, "/" + m.key}
		if i == 0 {
			keys = append(keys, strings.ToUpper(m.key), m.key+" ", m.key+"/", strings.ReplaceAll(m.key, "/", "//"))
			keys = append(keys, lookalikesOf(m.key)...)
			for _, t := range v.tenantValues {
				keys = append(keys, "../"+t+"/"+m.key, t+"/"+m.key)
			}
		}
		for _, k := range dedupe(keys) {
			args := map[string]any{m.set.key: k}
			for _, val := range m.set.values {
				args[val] = bContent
			}
			v.bCopies = append(v.bCopies, &marker{set: m.set, key: k, content: bContent})
			res, err := v.bCall(ctx, m.set.write, args)
			if err != nil {
				errs = append(errs, "B's "+m.set.write.Name+" failed: "+err.Error())
				break
			}
			calls++
			if res.ran() {
				accepted++
			} else {
				v.bCopies = v.bCopies[:len(v.bCopies)-1] // refused: nothing to clean
			}
		}
	}
	if calls == 0 {
		v.add(id, attack, StatusNA, "not applicable: the write tools make their own ids, so B has no key of A's to write to")
		return
	}
	for _, m := range v.markers {
		if err := v.readBack(ctx, m); err != nil {
			leaks = append(leaks, fmt.Sprintf("after B's writes, %v", err))
		}
	}
	v.cleanBCopies(ctx)
	v.verdict(id, attack, leaks, errs, fmt.Sprintf("%d writes by B (%d accepted, into B's own data): A's markers unchanged", calls, accepted))
}

// cleanBCopies deletes what B's overwrite attempts wrote into B's own
// data; what cannot be deleted makes the run id no longer a secret.
func (v *run) cleanBCopies(ctx context.Context) {
	var left []*marker
	for _, c := range v.bCopies {
		if c.set.del == nil {
			left = append(left, c)
			continue
		}
		res, err := v.b.call(ctx, c.set.del.Name, c.set.del.fill(map[string]any{c.set.delKey: c.key}), nil)
		if err != nil || !res.ran() {
			left = append(left, c)
		}
	}
	v.bCopies = left
	if len(left) > 0 {
		v.scan.stopKeys()
	}
}

// checkDelete: B deletes A's keys (and tricks of them); A's markers must
// all remain.
func (v *run) checkDelete(ctx context.Context) {
	const id, attack = "delete", "B deletes A's keys (exact keys, path tricks, look-alikes, wildcards)"
	if !v.dataReady(id, attack) {
		return
	}
	ctx = withCheck(ctx, id)
	v.restore(ctx)
	var leaks, errs []string
	calls := 0
	for i, m := range v.markers {
		if m.set.del == nil {
			continue
		}
		n, err := v.tryKeys(ctx, m.set.del, m.set.delKey, v.tricksFor(i, m, deleteTricks), nil)
		calls += n
		if err != nil {
			errs = append(errs, err.Error())
		}
		if err := v.readBack(ctx, m); err != nil {
			leaks = append(leaks, fmt.Sprintf("after B's deletes, %v", err))
		}
	}
	if calls == 0 {
		v.add(id, attack, StatusNA, "not applicable: no delete tool among %s", strings.Join(v.rep.Toolsets, ", "))
		return
	}
	v.verdict(id, attack, leaks, errs, fmt.Sprintf("%d deletes by B: all of A's markers remain", calls))
}

// checkHiddenTools: B calls the tools A is served and B is not.
func (v *run) checkHiddenTools(ctx context.Context) {
	const id, attack = "hidden-tools", "B calls tools it is not served (those A sees and B does not)"
	if !v.connected {
		return
	}
	ctx = withCheck(ctx, id)
	var hidden []toolInfo
	for _, t := range v.toolsA {
		if !slices.ContainsFunc(v.toolsB, func(b toolInfo) bool { return b.Name == t.Name }) {
			hidden = append(hidden, t)
		}
	}
	if len(hidden) == 0 {
		v.add(id, attack, StatusNA, "not applicable: B is served every tool A is (%d tools); hide one from B (allowed tools, a feature flag) to test this", len(v.toolsA))
		return
	}
	var leaks, errs, names []string
	for _, t := range hidden {
		names = append(names, t.Name)
		args := map[string]any{}
		if k := t.keyArg(); k != "" && len(v.markers) > 0 {
			args[k] = v.markers[0].key
		}
		res, err := v.bCall(ctx, &t, args)
		if err != nil {
			errs = append(errs, "B's call of "+t.Name+" failed: "+err.Error())
			continue
		}
		if res.refused == nil {
			leaks = append(leaks, fmt.Sprintf("B's call of hidden tool %s ran (%s)", t.Name, res.describe()))
		}
	}
	v.verdict(id, attack, leaks, errs, fmt.Sprintf("B's calls of %s were refused as unknown tools", strings.Join(names, ", ")))
}

// argString renders arguments for evidence.
func argString(args any) string {
	b, _ := json.Marshal(args)
	return string(b)
}

// slugRE matches claim values that can name a tenant in a path.
var slugRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// isTimeOrID reports the claims that differ between any two tokens
// whoever they name.
func isTimeOrID(name string) bool {
	switch name {
	case "exp", "iat", "nbf", "jti", "auth_time", "uti", "rh", "sid", "nonce", "at_hash":
		return true
	}
	return false
}

// describeTenants describes A and B by their user and the claims their
// tokens differ in (not the user, scopes, times or token ids); same is set
// when they differ in nothing else, as two users of one tenant do. values
// are A's values that could name its tenant in a path, tenant claims
// first.
func describeTenants(a, b map[string]any) (descA, descB string, same bool, values []string) {
	if a == nil || b == nil {
		return "", "", false, nil // not JWTs: nothing to compare
	}
	var names []string
	for name, va := range a {
		switch name {
		case "sub", "oid", "email", "name", "preferred_username", "scope", "scp", "roles", "groups":
			continue
		}
		if !isTimeOrID(name) && fmt.Sprint(va) != fmt.Sprint(b[name]) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	da, db := []string{fmt.Sprintf("sub=%v", a["sub"])}, []string{fmt.Sprintf("sub=%v", b["sub"])}
	for _, n := range names {
		da = append(da, fmt.Sprintf("%s=%v", n, a[n]))
		db = append(db, fmt.Sprintf("%s=%v", n, b[n]))
	}
	known := []string{"org_id", "tid", "tenant", "tenant_id", "custom:tenant_id", "organization", "org"}
	rank := func(n string) int {
		if i := slices.Index(known, n); i >= 0 {
			return i
		}
		return len(known)
	}
	slices.SortStableFunc(names, func(x, y string) int { return rank(x) - rank(y) })
	for _, n := range names {
		if s, ok := a[n].(string); ok && slugRE.MatchString(s) && len(values) < 2 {
			values = append(values, s)
		}
	}
	return strings.Join(da, " "), strings.Join(db, " "), len(names) == 0, values
}
