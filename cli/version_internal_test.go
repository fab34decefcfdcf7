package cli

import (
	"runtime/debug"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	rev := "4f1c2e9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d"
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"release", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}},
			true, "tenantmcp v1.2.3, commit " + rev + ", go1.26.0"},
		{"modified checkout", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}},
			true, "tenantmcp (devel), commit " + rev + " (modified), go1.26.0"},
		{"-buildvcs=false", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			true, "tenantmcp (devel), commit unknown, go1.26.0"},
		{"test binary: no main module version", &debug.BuildInfo{GoVersion: "go1.26.0"},
			true, "tenantmcp (devel), commit unknown, go1.26.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatVersion(tt.bi, tt.ok); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
	// -ldflags -X cli.Version=… wins over the build information.
	Version = "v9.9.9"
	defer func() { Version = "" }()
	if got := formatVersion(&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, true); got != "tenantmcp v9.9.9, commit unknown, go1.26.0" {
		t.Fatalf("with Version set: %q", got)
	}
}
