package verify

import (
	"net/url"
	"strings"
)

// The argument tricks tenant B tries with A's keys: paths that climb out
// of its own namespace or into A's (named by A's tenant id from A's
// token), prefixes that a backend might treat as patterns, encodings, and
// look-alike characters that a normalising backend might fold into A's.

// lookalikes swaps characters for ones that look the same.
var lookalikes = []struct{ from, to string }{
	{"-", "\u2010"}, // hyphen
	{"e", "\u0435"}, // Cyrillic e
	{"a", "\u0430"}, // Cyrillic a
	{"/", "\u2215"}, // division slash
	{"/", "\uff0f"}, // fullwidth solidus
	{".", "\u2024"}, // one dot leader
	{"t", "\uff54"}, // fullwidth t
}

// lookalikesOf returns s with each look-alike swap applied once (to its
// first occurrence), and with a zero-width space inserted.
func lookalikesOf(s string) []string {
	var out []string
	for _, l := range lookalikes {
		if strings.Contains(s, l.from) {
			out = append(out, strings.Replace(s, l.from, l.to, 1))
		}
	}
	if len(s) > 1 {
		out = append(out, s[:1]+"\u200b"+s[1:])
	}
	return out
}

// keyTricks returns the keys B tries for A's key k: k itself, its path,
// case and encoding variants, its look-alikes, and paths through A's
// tenant ids.
func keyTricks(k string, tenants []string) []string {
	out := []string{
		k, "./" + k, "/" + k, k + "/", k + "/.", "a/../" + k, strings.ReplaceAll(k, "/", "//"),
		k + " ", " " + k, k + ".", strings.ToUpper(k), k + "\x00", k + "%00",
		url.PathEscape(k), strings.ReplaceAll(k, "/", `\`), "../" + k,
	}
	out = append(out, lookalikesOf(k)...)
	for _, t := range tenants {
		out = append(out, "../"+t+"/"+k, "../../"+t+"/"+k, t+"/"+k, "tenants/"+t+"/"+k, "..%2F"+t+"%2F"+k, `..\`+t+`\`+k)
		for _, l := range lookalikesOf(t) {
			out = append(out, "../"+l+"/"+k)
		}
	}
	return dedupe(out)
}

// prefixTricks returns the list prefixes B tries: empty and root-like
// ones, pattern characters of SQL LIKE, globs and regular expressions,
// SQL injection, and paths through A's tenant ids. None mentions the run
// id, so A's keys in a reply are A's, not an echo.
func prefixTricks(tenants []string) []string {
	out := []string{
		"", "/", ".", "..", "../", "./", "../..", "*", "%", "_", "%%", ".*", "\\", "'",
		"' OR '1'='1", "\x00", "tmverify", "tmverify-", "TMVERIFY",
	}
	for _, t := range tenants {
		out = append(out, t, t+"/", "../"+t, "../"+t+"/", "../../"+t+"/", "tenants/"+t+"/")
		out = append(out, lookalikesOf(t)...)
	}
	return dedupe(out)
}

// deleteTricks returns the keys B tries to delete A's key k with: fewer
// than it reads with (a delete that reaches A's data shows in A's data,
// whichever trick did it), and patterns that would match k.
func deleteTricks(k string, tenants []string) []string {
	out := []string{k, "./" + k, "/" + k, k + "/", "a/../" + k, strings.ToUpper(k), k + "\x00", url.PathEscape(k)}
	out = append(out, lookalikesOf(k)...)
	for _, t := range tenants {
		out = append(out, "../"+t+"/"+k, t+"/"+k)
	}
	return dedupe(append(out, k+"*", k+"%", k[:len(k)-1]+"_", "*", "%"))
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
