package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
)

// A deployment is named by --config FILE (a real deployment) or --data DIR
// (a data directory made by "tenantmcp dev").

const (
	defaultDataDir = "./tenantmcp-data"
	devStateFile   = "dev.json"
	devKeyFile     = "dev-issuer-key.pem"
)

// devState is what "tenantmcp dev" records in its data dir so that other
// commands (token, tenant) address the same deployment.
type devState struct {
	Addr      string `json:"addr"`
	Issuer    string `json:"issuer"`
	Resource  string `json:"resource"`
	Isolation string `json:"isolation"`
	// Database is the DSN the server uses (the application role); Admin
	// the one that created it. Empty for the embedded default.
	Database string `json:"database,omitempty"`
	Admin    string `json:"admin_database,omitempty"`
}

type target struct {
	// path is the configuration file of a deployment ("" for a dev data
	// directory).
	path    string
	cfg     *config.Config
	dev     *auth.DevIssuer // nil for --config deployments
	dataDir string
	state   *devState
}

type targetFlags struct {
	config string
	data   string
}

func (tf *targetFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&tf.config, "config", "", "deployment configuration file (deploy.toml; default "+config.EnvConfigFile+" if set)")
	cmd.Flags().StringVar(&tf.data, "data", "", "data directory of a 'tenantmcp dev' server (default "+defaultDataDir+" if it exists)")
}

// load opens the deployment the flags name: --config or --data, else the
// file TENANTMCP_CONFIG names (as serve reads it), else the default dev
// data directory if it exists.
func (tf *targetFlags) load(cmd *cobra.Command, e *env) (*target, error) {
	path := tf.config
	if path == "" && tf.data == "" {
		path = e.getenv(config.EnvConfigFile)
	}
	switch {
	case tf.config != "" && tf.data != "":
		return nil, usagef(cmd, "give --config FILE or --data DIR, not both")
	case path != "":
		cfg, err := config.Load(path, e.environ)
		if err != nil {
			return nil, err
		}
		return &target{path: path, cfg: cfg, dataDir: cfg.Server.DataDir}, nil
	case tf.data == "" && !fileExists(filepath.Join(defaultDataDir, devStateFile)):
		return nil, usagef(cmd, "which deployment? give --config FILE (a deployment; or set %s to its path) or --data DIR (a 'tenantmcp dev' data directory)", config.EnvConfigFile)
	}
	dir := tf.data
	if dir == "" {
		dir = defaultDataDir
	}
	return loadDev(dir, e)
}

// openRegistry loads the deployment the flags name and opens its registry
// (and audit store); the caller closes the App.
func (tf *targetFlags) openRegistry(cmd *cobra.Command, e *env) (*target, *app.App, error) {
	t, err := tf.load(cmd, e)
	if err != nil {
		return nil, nil, err
	}
	a, err := app.OpenRegistry(cmd.Context(), t.cfg, &app.Options{Dev: t.dev})
	if err != nil {
		return nil, nil, err
	}
	return t, a, nil
}

func loadDev(dir string, e *env) (*target, error) {
	st, err := readDevState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a dev data directory (no %s): start one with '%s dev --data %s'", dir, devStateFile, e.command(), shellQuote(dir))
	}
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(filepath.Join(dir, devKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read dev issuer key: %w", err)
	}
	iss, err := auth.NewDevIssuer(st.Issuer, key)
	if err != nil {
		return nil, err
	}
	cfg, err := devConfig(st.Addr, dir, st.Database, st.Admin, st.Isolation, e.environ)
	if err != nil {
		return nil, err
	}
	return &target{cfg: cfg, dev: iss, dataDir: dir, state: st}, nil
}

// devConfig is the configuration of a dev server, built through the same
// parser and validation as a deployment file.
func devConfig(addr, dataDir, database, adminDSN, isolation string, environ []string) (*config.Config, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "[server]\nlisten = %s\ndata_dir = %s\n", strconv.Quote(addr), strconv.Quote(dataDir))
	fmt.Fprintf(&b, "[auth]\nenabled = true\nprovider = \"generic\"\nissuer = %s\n", strconv.Quote("http://"+addr+"/dev"))
	fmt.Fprintf(&b, "[auth.multi_tenant]\nenabled = true\ntenant_claim = \"org_id\"\n")
	if isolation != "" {
		fmt.Fprintf(&b, "isolation = %s\n", strconv.Quote(isolation))
	}
	if database != "" {
		fmt.Fprintf(&b, "[database]\ndsn = %s\n", strconv.Quote(database))
		if adminDSN != "" {
			fmt.Fprintf(&b, "admin_dsn = %s\n", strconv.Quote(adminDSN))
		}
	}
	// In dev mode the flags decide the deployment; only log, registry
	// cache, rate-limit, audit, metrics listener and database role
	// settings come from the environment.
	var env []string
	for _, kv := range environ {
		for _, p := range []string{"TENANTMCP_LOG_", "TENANTMCP_REGISTRY_", "TENANTMCP_RATELIMIT_", "TENANTMCP_AUTH_MULTI_TENANT_DEFAULT_RATE_LIMIT=", "TENANTMCP_AUTH_MULTI_TENANT_RATE_LIMIT_BURST=",
			"TENANTMCP_DATABASE_OWNER_ROLE=", "TENANTMCP_DATABASE_APP_ROLE=", "TENANTMCP_AUDIT_", "TENANTMCP_SERVER_METRICS_LISTEN="} {
			if strings.HasPrefix(kv, p) {
				env = append(env, kv)
			}
		}
	}
	return config.Parse([]byte(b.String()), env)
}
