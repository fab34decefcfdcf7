package postgres

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Both strategies are store.Portable: RLS over the application pool, in
// the tenant's own transaction; schema per tenant through the
// Provisioner, whose administrator pool may create and drop the tenant's
// schema and role.
var (
	_ store.Portable = (*RLS)(nil)
	_ store.Portable = (*Provisioner)(nil)
)

// ErrArchive: parts given to Import that this backend cannot restore: a
// part it does not know, a missing or unreadable manifest, a table or
// column the database lacks, a row count that does not match, or an
// archive written by a newer version of the schema. Nothing was changed.
var ErrArchive = errors.New("postgres: cannot import these parts")

// Parts. Each table's rows are one part in COPY's text format (the format
// pg_dump uses), written with fixed output settings (copySettings) so that
// every value reads back exactly; the manifest, written last, names the
// tables in dependency order with their columns and row counts (and, for
// a schema, its migration versions and sequence values).
const (
	rlsParts       = "postgres/rls/"
	schemaParts    = "postgres/schema/"
	manifestName   = "manifest.json"
	portableFormat = 1
	maxManifest    = 64 << 20
)

// copySettings make COPY's text output independent of the session and
// the server's configuration, and read back the same way.
const copySettings = "SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; SET LOCAL TimeZone = 'UTC'; " +
	"SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'; SET LOCAL xmloption = 'content'; SET LOCAL lc_monetary = 'C'"

// manifest describes an export.
type manifest struct {
	Format   int      `json:"format"`
	Strategy Strategy `json:"strategy"`
	// Migrations (schema per tenant) are the schema's latest migration
	// version of each component ("tenantmcp", "app").
	Migrations map[string]int `json:"migrations,omitempty"`
	// Tables in dependency order: a table comes after those its foreign
	// keys reference.
	Tables []tablePart `json:"tables"`
	// Sequences (schema per tenant) of the schema.
	Sequences []sequenceValue `json:"sequences,omitempty"`
}

type tablePart struct {
	Schema  string   `json:"schema,omitempty"` // RLS: the table's schema
	Name    string   `json:"name"`
	Columns []string `json:"columns"` // without tenant_id (RLS) and generated columns
	Part    string   `json:"part"`
	Rows    int64    `json:"rows"`
}

type sequenceValue struct {
	Name      string `json:"name"`
	LastValue int64  `json:"last_value"`
	IsCalled  bool   `json:"is_called"`
}

// table is a table whose rows are exported.
type table struct {
	oid          uint32
	schema, name string
	columns      []string // insertable columns, in order (tenant_id removed for RLS)
	key          []string // primary key columns: the export's order
}

func (t table) qualified() string { return pgx.Identifier{t.schema, t.name}.Sanitize() }

// tablesQuery lists tables with their insertable columns and primary key;
// a condition on c (pg_class) and n (pg_namespace) follows.
const tablesQuery = `SELECT c.oid, n.nspname::text, c.relname::text,
	ARRAY(SELECT a.attname::text FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum),
	ARRAY(SELECT a.attname::text FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND `

// rlsTablesWhere selects the tables under tenant isolation: row level
// security enabled (so the application role sees only the tenant's rows),
// the policy tenant_isolation (Migrate, EnableRLS) and a tenant_id column.
const rlsTablesWhere = `c.relrowsecurity
	AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation')
	AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)`

// listTables returns the tables that the condition where selects, in
// dependency order (referenced tables first; by name where no foreign key
// decides), with the column named drop left out of their columns.
func listTables(ctx context.Context, tx pgx.Tx, drop, where string, args ...any) ([]table, error) {
	rows, err := tx.Query(ctx, tablesQuery+where+" ORDER BY 2, 3", args...)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		err := r.Scan(&t.oid, &t.schema, &t.name, &t.columns, &t.key)
		t.columns = slices.DeleteFunc(t.columns, func(c string) bool { return c == drop })
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	if len(tables) < 2 {
		return tables, nil
	}
	oids := make([]uint32, len(tables))
	for i, t := range tables {
		oids[i] = t.oid
	}
	rows, err = tx.Query(ctx, `SELECT conrelid, confrelid FROM pg_constraint
		WHERE contype = 'f' AND conrelid = ANY($1) AND confrelid = ANY($1) AND conrelid <> confrelid`, oids)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	parents := map[uint32][]uint32{}
	var child, parent uint32
	if _, err := pgx.ForEachRow(rows, []any{&child, &parent}, func() error {
		parents[child] = append(parents[child], parent)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	// Repeatedly take every table whose referenced tables are taken; a
	// cycle (which only deferrable constraints could load) goes last, by
	// name.
	out := make([]table, 0, len(tables))
	done := map[uint32]bool{}
	for len(out) < len(tables) {
		n := len(out)
		for _, t := range tables {
			if !done[t.oid] && !slices.ContainsFunc(parents[t.oid], func(p uint32) bool { return !done[p] }) {
				out, done[t.oid] = append(out, t), true
			}
		}
		if len(out) == n {
			for _, t := range tables {
				if !done[t.oid] {
					out, done[t.oid] = append(out, t), true
				}
			}
		}
	}
	return out, nil
}

// exportTables writes the rows of each of tables, those where filter
// holds (a condition, or ""), ordered by the primary key, as one part
// each, then m (with the tables added) as the manifest.
func exportTables(ctx context.Context, tx pgx.Tx, w store.PartWriter, m *manifest, tables []table, filter string) error {
	prefix := schemaParts
	if m.Strategy == RowLevelSecurity {
		prefix = rlsParts
	}
	m.Tables = []tablePart{}
	for _, t := range tables {
		tp := tablePart{Name: t.name, Columns: t.columns, Part: partName(prefix, t.name)}
		if m.Strategy == RowLevelSecurity {
			tp.Schema, tp.Part = t.schema, partName(prefix, t.schema, t.name)
		}
		q := "COPY (SELECT " + identList(t.columns) + " FROM " + t.qualified()
		if filter != "" {
			q += " WHERE " + filter
		}
		if len(t.key) > 0 {
			q += " ORDER BY " + identList(t.key)
		}
		err := writePart(w, tp.Part, func(pw io.Writer) error {
			tag, err := tx.Conn().PgConn().CopyTo(ctx, pw, q+") TO STDOUT")
			tp.Rows = tag.RowsAffected()
			return err
		})
		if err != nil {
			return fmt.Errorf("export table %s: %w", t.qualified(), err)
		}
		m.Tables = append(m.Tables, tp)
	}
	m.Format = portableFormat
	return writePart(w, prefix+manifestName, func(pw io.Writer) error {
		e := json.NewEncoder(pw)
		e.SetIndent("", "  ")
		return e.Encode(m)
	})
}

// writePart writes part name through a buffer.
func writePart(w store.PartWriter, name string, fill func(io.Writer) error) error {
	wc, err := w.Create(name)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(wc, 64<<10)
	err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// readManifest reads and checks the manifest of parts written under
// prefix by strategy. It returns nil if there are no parts at all.
func readManifest(r store.PartReader, prefix string, strategy Strategy) (*manifest, error) {
	names := r.Names()
	if len(names) == 0 {
		return nil, nil
	}
	name := prefix + manifestName
	if !slices.Contains(names, name) {
		return nil, fmt.Errorf("%w: no part %s among %q", ErrArchive, name, names)
	}
	rc, err := r.Open(name)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", name, err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxManifest+1))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("postgres: read %s: %w", name, err)
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrArchive, name, maxManifest)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrArchive, name, err)
	}
	switch {
	case m.Format != portableFormat:
		return nil, fmt.Errorf("%w: %s has format %d, this binary reads format %d: upgrade tenantmcp", ErrArchive, name, m.Format, portableFormat)
	case m.Strategy != strategy:
		return nil, fmt.Errorf("%w: the parts are from %s, this backend is %s", ErrArchive, m.Strategy, strategy)
	}
	known := map[string]bool{name: true}
	for _, t := range m.Tables {
		if known[t.Part] || !strings.HasPrefix(t.Part, prefix) || t.Rows < 0 {
			return nil, fmt.Errorf("%w: %s: bad entry for table %q", ErrArchive, name, t.Name)
		}
		if !slices.Contains(names, t.Part) {
			return nil, fmt.Errorf("%w: part %s of table %q is missing", ErrArchive, t.Part, t.Name)
		}
		known[t.Part] = true
	}
	for _, n := range names {
		if !known[n] {
			return nil, fmt.Errorf("%w: unknown part %s", ErrArchive, n)
		}
	}
	return &m, nil
}

// checkColumns fails unless target has every column of the archived table.
func checkColumns(tp tablePart, target table) error {
	for _, c := range tp.Columns {
		if !slices.Contains(target.columns, c) {
			return fmt.Errorf("%w: table %s has no column %q that the archive holds (or it is generated): migrate the database to the archive's version first", ErrArchive, target.qualified(), c)
		}
	}
	return nil
}

func findTable(tables []table, schema, name string) (table, bool) {
	i := slices.IndexFunc(tables, func(t table) bool { return t.schema == schema && t.name == name })
	if i < 0 {
		return table{}, false
	}
	return tables[i], true
}

// identList quotes names and joins them with commas.
func identList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = ident(n)
	}
	return strings.Join(q, ", ")
}

// partName is the part of a table: prefix, then its names (schema and
// table, or table), each escaped (dots too) and joined by dots, then
// ".copy". Distinct tables get distinct, valid part names.
func partName(prefix string, names ...string) string {
	for i, n := range names {
		names[i] = strings.ReplaceAll(url.PathEscape(n), ".", "%2E")
	}
	return prefix + strings.Join(names, ".") + ".copy"
}

// Row level security.

// Export implements store.Portable: every row of tenant id in every table
// under tenant isolation (tenantmcp_documents and the tables EnableRLS
// was given), without the tenant_id column, from one snapshot. It runs as
// the application role in the tenant's transaction, so the policy lets it
// read nothing else; each query names the tenant as well.
func (r *RLS) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	err := r.portableTx(ctx, id, true, func(tx pgx.Tx) error {
		tables, err := listTables(ctx, tx, "tenant_id", rlsTablesWhere)
		if err != nil {
			return err
		}
		m := &manifest{Strategy: RowLevelSecurity}
		return exportTables(ctx, tx, w, m, tables, "tenant_id = '"+string(id)+"'")
	})
	if err != nil {
		return fmt.Errorf("postgres: export tenant %s: %w", id, err)
	}
	return nil
}

// Import implements store.Portable. It inserts the rows, in the tenant's
// transaction as the application role (row level security refuses COPY
// FROM, so rows go in as pipelined INSERTs), with tenant_id set to id.
// Sequences of the shared tables are not set: archived values of serial
// columns are restored as they were, and the database's sequences, which
// never go back, stay ahead of them in the database they came from.
func (r *RLS) Import(ctx context.Context, id tenant.ID, pr store.PartReader) error {
	m, err := readManifest(pr, rlsParts, RowLevelSecurity)
	if err != nil {
		return err
	}
	err = r.portableTx(ctx, id, false, func(tx pgx.Tx) error {
		if err := lockTenant(ctx, tx, id); err != nil {
			return err
		}
		tables, err := listTables(ctx, tx, "tenant_id", rlsTablesWhere)
		if err != nil {
			return err
		}
		for _, t := range tables {
			var found bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t.qualified()+" WHERE tenant_id = $1)", string(id)).Scan(&found); err != nil {
				return err
			}
			if found {
				return fmt.Errorf("%w (table %s)", store.ErrNotEmpty, t.qualified())
			}
		}
		if m == nil {
			return nil
		}
		for _, tp := range m.Tables {
			t, ok := findTable(tables, tp.Schema, tp.Name)
			if !ok {
				return fmt.Errorf("%w: the archive holds rows of table %s, which is not in this database under row level security: migrate it first", ErrArchive, pgx.Identifier{tp.Schema, tp.Name}.Sanitize())
			}
			if err := checkColumns(tp, t); err != nil {
				return err
			}
			if err := insertRows(ctx, tx, id, t.qualified(), tp, pr); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotEmpty) && !errors.Is(err, ErrArchive) {
		return fmt.Errorf("postgres: import tenant %s: %w", id, err)
	}
	return err
}

// Purge implements store.Portable: it deletes tenant id's rows from every
// table under tenant isolation, in one transaction of the tenant's (so a
// purge that fails changes nothing), referencing tables first.
func (r *RLS) Purge(ctx context.Context, id tenant.ID) error {
	err := r.portableTx(ctx, id, false, func(tx pgx.Tx) error {
		if err := lockTenant(ctx, tx, id); err != nil {
			return err
		}
		tables, err := listTables(ctx, tx, "tenant_id", rlsTablesWhere)
		if err != nil {
			return err
		}
		for _, t := range slices.Backward(tables) {
			if _, err := tx.Exec(ctx, "DELETE FROM "+t.qualified()+" WHERE tenant_id = $1", string(id)); err != nil {
				return fmt.Errorf("delete from %s: %w", t.qualified(), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: purge tenant %s: %w", id, err)
	}
	return nil
}

// portableTx runs fn in tenant id's transaction with copySettings; a
// snapshot one is REPEATABLE READ and READ ONLY.
func (r *RLS) portableTx(ctx context.Context, id tenant.ID, snapshot bool, fn func(pgx.Tx) error) error {
	if r.closed.Load() {
		return ErrClosed
	}
	begin, err := rlsBegin(id)
	if err != nil {
		return err
	}
	if snapshot {
		begin += "; SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
	}
	return runTx(ctx, r.pool, r.log, begin+"; "+copySettings, fn)
}

// Rows are sent in pipelined batches of at most this many rows or bytes.
const (
	insertBatchRows  = 1000
	insertBatchBytes = 1 << 20
)

// insertRows inserts the rows of part tp.Part into table qt, with
// tenant_id = id, and checks their count.
func insertRows(ctx context.Context, tx pgx.Tx, id tenant.ID, qt string, tp tablePart, pr store.PartReader) error {
	params := []string{"$1"}
	for i := range tp.Columns {
		params = append(params, fmt.Sprintf("$%d", i+2))
	}
	rc, err := pr.Open(tp.Part)
	if err != nil {
		return fmt.Errorf("open %s: %w", tp.Part, err)
	}
	defer rc.Close()
	pc := tx.Conn().PgConn()
	// The unnamed statement, bound for every row: parameters are sent in
	// text format, typed by the server from the columns.
	q := "INSERT INTO " + qt + " (" + identList(append([]string{"tenant_id"}, tp.Columns...)) + ") OVERRIDING SYSTEM VALUE VALUES (" + strings.Join(params, ", ") + ")"
	if _, err := pc.Prepare(ctx, "", q, nil); err != nil {
		return fmt.Errorf("import table %s: %w", qt, err)
	}
	var rows, batchRows, batchBytes int64
	batch := &pgconn.Batch{}
	flush := func() error {
		if batchRows == 0 {
			return nil
		}
		results, err := pc.ExecBatch(ctx, batch).ReadAll()
		if err != nil {
			return fmt.Errorf("import table %s: %w", qt, err)
		}
		for _, res := range results {
			rows += res.CommandTag.RowsAffected()
		}
		batch, batchRows, batchBytes = &pgconn.Batch{}, 0, 0
		return nil
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	values := make([][]byte, 1, len(params))
	values[0] = []byte(id)
	for n := int64(1); ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			break
		}
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("%w: %s: row %d is cut off (no end of line)", ErrArchive, tp.Part, n)
			}
			return fmt.Errorf("read %s: %w", tp.Part, err)
		}
		fields := values[:1] // a table with no other column has empty lines
		if len(tp.Columns) > 0 {
			if fields, err = decodeCopyRow(line[:len(line)-1], fields); err != nil {
				return fmt.Errorf("%w: %s row %d: %v", ErrArchive, tp.Part, n, err)
			}
		}
		if len(fields) != len(params) {
			return fmt.Errorf("%w: %s row %d has %d columns, want %d", ErrArchive, tp.Part, n, len(fields)-1, len(tp.Columns))
		}
		batch.ExecPrepared("", fields, nil, nil) // copies the values
		batchRows++
		batchBytes += int64(len(line))
		if batchRows >= insertBatchRows || batchBytes >= insertBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if rows != tp.Rows {
		return fmt.Errorf("%w: %s holds %d rows, the manifest says %d", ErrArchive, tp.Part, rows, tp.Rows)
	}
	return nil
}

// decodeCopyRow splits one line of COPY's text format (without its
// newline) into its fields, appended to dst: nil for NULL (\N), the
// unescaped bytes otherwise. A line holds at least one field (the lines
// of a table with no columns are empty too: the caller knows).
func decodeCopyRow(line []byte, dst [][]byte) ([][]byte, error) {
	for field := range bytes.SplitSeq(line, []byte{'\t'}) {
		if string(field) == `\N` {
			dst = append(dst, nil)
			continue
		}
		if bytes.IndexByte(field, '\\') < 0 {
			dst = append(dst, append([]byte{}, field...)) // never nil: nil is NULL
			continue
		}
		out := make([]byte, 0, len(field))
		for i := 0; i < len(field); i++ {
			c := field[i]
			if c != '\\' {
				out = append(out, c)
				continue
			}
			i++
			if i == len(field) {
				return nil, errors.New("backslash at the end of a field")
			}
			switch c = field[i]; c {
			case 'b', 'f', 'n', 'r', 't', 'v':
				out = append(out, copyEscapes[c])
			case 'N':
				return nil, errors.New(`\N inside a field`)
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v := int(c - '0')
				for k := 0; k < 2 && i+1 < len(field) && '0' <= field[i+1] && field[i+1] <= '7'; k++ {
					i++
					v = v*8 + int(field[i]-'0')
				}
				out = append(out, byte(v))
			case 'x':
				v, k := 0, 0
				for ; k < 2 && i+1 < len(field) && hexDigit(field[i+1]) >= 0; k++ {
					i++
					v = v*16 + hexDigit(field[i])
				}
				if k == 0 {
					out = append(out, 'x') // as PostgreSQL reads it
				} else {
					out = append(out, byte(v))
				}
			default:
				out = append(out, c)
			}
		}
		dst = append(dst, out)
	}
	return dst, nil
}

// copyEscapes maps the letter of a backslash escape of COPY's text format
// to the byte it stands for.
var copyEscapes = map[byte]byte{'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}

func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Schema per tenant.

// Export implements store.Portable: the tables of tenant id's schema, its
// sequences' values and its migration versions, from one snapshot, read
// as the owner role through the administrator pool. A tenant without a
// schema writes no part.
func (p *Provisioner) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	if !id.Valid() {
		return fmt.Errorf("postgres: %w: %q", tenant.ErrInvalidID, id)
	}
	name := SchemaName(id)
	q := ident(name)
	begin := "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL ROLE " + ident(p.roles.owner) + "; SET LOCAL search_path = " + q + ", pg_temp; " + copySettings
	err := runTx(ctx, p.pool, p.log, begin, func(tx pgx.Tx) error {
		exists, err := schemaExists(ctx, tx, name)
		if err != nil || !exists {
			return err
		}
		m := &manifest{Strategy: SchemaPerTenant}
		if m.Migrations, err = schemaVersions(ctx, tx, id); err != nil {
			return err
		}
		tables, err := schemaTables(ctx, tx, name)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind = 'S' ORDER BY 1`, name)
		if err != nil {
			return err
		}
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, s := range seqs {
			v := sequenceValue{Name: s}
			if err := tx.QueryRow(ctx, "SELECT last_value, is_called FROM "+pgx.Identifier{name, s}.Sanitize()).Scan(&v.LastValue, &v.IsCalled); err != nil {
				return fmt.Errorf("read sequence %s: %w", s, err)
			}
			m.Sequences = append(m.Sequences, v)
		}
		return exportTables(ctx, tx, w, m, tables, "")
	})
	if err != nil {
		return fmt.Errorf("postgres: export tenant %s: %w", id, err)
	}
	return nil
}

// Import implements store.Portable. In one transaction, under the
// tenant's provisioning lock: it refuses a schema that holds rows; it
// provisions the schema (role, grants, tables) at the archive's migration
// versions, dropping an empty schema at other versions first; it loads
// every table with COPY as the owner role and sets the sequences; then it
// applies the migrations the archive is older than. An archive from a
// newer version than this Provisioner's migrations is refused
// (ErrArchive). If anything fails, the transaction takes everything with
// it, a schema and role it created included.
func (p *Provisioner) Import(ctx context.Context, id tenant.ID, pr store.PartReader) error {
	if !id.Valid() {
		return fmt.Errorf("postgres: %w: %q", tenant.ErrInvalidID, id)
	}
	m, err := readManifest(pr, schemaParts, SchemaPerTenant)
	if err != nil {
		return err
	}
	name := SchemaName(id)
	var applied int
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := lockTenant(ctx, tx, id); err != nil {
			return err
		}
		if err := setOwner(ctx, tx, p.roles.owner); err != nil {
			return err
		}
		exists, err := schemaExists(ctx, tx, name)
		if err != nil {
			return err
		}
		var have map[string]int
		if exists {
			if err := checkSchemaEmpty(ctx, tx, name); err != nil {
				return err
			}
			if have, err = schemaVersions(ctx, tx, id); err != nil {
				return err
			}
		}
		if m == nil {
			return nil
		}
		keep := exists && maps.Equal(have, m.Migrations)
		if err := p.checkVersions(m.Migrations, keep); err != nil {
			return err
		}
		if exists && !keep {
			// Empty (checked under lock), but at other versions: made
			// again at the archive's.
			if _, err := tx.Exec(ctx, "DROP SCHEMA "+ident(name)+" CASCADE"); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "RESET ROLE"); err != nil {
			return err
		}
		if err := p.prepareSchema(ctx, tx, id); err != nil {
			return err
		}
		if applied, err = p.migrateSchema(ctx, tx, id, m.Migrations); err != nil {
			return err
		}
		if err := p.copyIn(ctx, tx, name, m, pr); err != nil {
			return err
		}
		n, err := p.migrateSchema(ctx, tx, id, nil)
		applied += n
		if err != nil {
			return err
		}
		return recordSchema(ctx, tx, id, applied > 0)
	})
	switch {
	case errors.Is(err, store.ErrNotEmpty), errors.Is(err, ErrArchive), errors.Is(err, ErrNotMigrated):
		return err
	case err != nil:
		return fmt.Errorf("postgres: import tenant %s: %w", id, err)
	case m == nil:
		return nil
	}
	p.log.InfoContext(ctx, "tenant schema imported", "tenant_id", string(id), "schema", name, "tables", len(m.Tables), "applied", applied)
	return nil
}

// checkVersions refuses archived migration versions this Provisioner
// cannot provision: newer than it knows, or of the application's tables
// when it has none of their migrations (unless the existing schema is at
// exactly those versions and is kept).
func (p *Provisioner) checkVersions(archived map[string]int, keep bool) error {
	for c, v := range archived {
		var ms []Migration
		switch c {
		case componentTenantmcp:
			ms = tenantSchemaMigrations
		case componentApp:
			ms = p.migrations
		default:
			return fmt.Errorf("%w: unknown migration component %q", ErrArchive, c)
		}
		known := 0
		if len(ms) > 0 {
			known = ms[len(ms)-1].Version
		}
		switch {
		case keep || v <= known:
		case c == componentApp && len(ms) == 0:
			return fmt.Errorf("%w: the archive holds the application's tables at migration %d, and this Provisioner has none of their migrations (ProvisionerOptions.Migrations): import with the binary that has them", ErrArchive, v)
		default:
			return fmt.Errorf("%w: the archive is at %s migration %d, this binary knows up to %d: upgrade tenantmcp", ErrArchive, c, v, known)
		}
	}
	return nil
}

// copyIn loads m's tables into schema with COPY and sets its sequences;
// tx acts as the owner role.
func (p *Provisioner) copyIn(ctx context.Context, tx pgx.Tx, schema string, m *manifest, pr store.PartReader) error {
	if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL DEFERRED; "+copySettings); err != nil {
		return err
	}
	tables, err := schemaTables(ctx, tx, schema)
	if err != nil {
		return err
	}
	for _, tp := range m.Tables {
		t, ok := findTable(tables, schema, tp.Name)
		if !ok {
			return fmt.Errorf("%w: the archive holds table %q, which the tenant's schema lacks at the archive's migration versions", ErrArchive, tp.Name)
		}
		if err := checkColumns(tp, t); err != nil {
			return err
		}
		rc, err := pr.Open(tp.Part)
		if err != nil {
			return fmt.Errorf("open %s: %w", tp.Part, err)
		}
		rr := &recordingReader{r: rc}
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, rr, "COPY "+t.qualified()+" ("+identList(tp.Columns)+") FROM STDIN")
		rc.Close()
		if rr.err != nil { // COPY reports it only as text
			return fmt.Errorf("read %s: %w", tp.Part, rr.err)
		}
		if err != nil {
			if pgCode(err) == "22P04" || pgCode(err) == "22P02" { // bad_copy_file_format, invalid_text_representation
				return fmt.Errorf("%w: %s: %v", ErrArchive, tp.Part, err)
			}
			return fmt.Errorf("import table %s: %w", t.qualified(), err)
		}
		if tag.RowsAffected() != tp.Rows {
			return fmt.Errorf("%w: %s holds %d rows, the manifest says %d", ErrArchive, tp.Part, tag.RowsAffected(), tp.Rows)
		}
	}
	for _, s := range m.Sequences {
		if _, err := tx.Exec(ctx, "SELECT setval($1::regclass, $2, $3)", pgx.Identifier{schema, s.Name}.Sanitize(), s.LastValue, s.IsCalled); err != nil {
			return fmt.Errorf("%w: sequence %q: %v", ErrArchive, s.Name, err)
		}
	}
	return nil
}

// Purge implements store.Portable: in one transaction, under the
// tenant's provisioning lock, it drops tenant id's schema with everything
// in it (as the owner role, which cannot drop a schema it does not own),
// removes it from the catalog and drops its role. A missing schema or
// role is fine, so a purge that failed can run again. It refuses a role
// of that name that could log in or is a superuser: that is not a tenant
// role Provision made. Names come only from id.
func (p *Provisioner) Purge(ctx context.Context, id tenant.ID) error {
	if !id.Valid() {
		return fmt.Errorf("postgres: %w: %q", tenant.ErrInvalidID, id)
	}
	name := SchemaName(id)
	q := ident(name)
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := lockTenant(ctx, tx, id); err != nil {
			return err
		}
		var login, super, catalog bool
		err := tx.QueryRow(ctx, `SELECT coalesce(bool_or(rolcanlogin), false), coalesce(bool_or(rolsuper), false),
			to_regclass('public.tenantmcp_schemas') IS NOT NULL FROM pg_roles WHERE rolname = $1`, name).Scan(&login, &super, &catalog)
		if err != nil {
			return err
		}
		if login || super {
			return fmt.Errorf("role %s can log in or is a superuser: it is not a tenant role, refusing to drop it", q)
		}
		if err := setOwner(ctx, tx, p.roles.owner); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+q+" CASCADE"); err != nil {
			return fmt.Errorf("drop schema: %w", err)
		}
		if catalog {
			if _, err := tx.Exec(ctx, "DELETE FROM public.tenantmcp_schemas WHERE tenant_id = $1", string(id)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "RESET ROLE; DROP ROLE IF EXISTS "+q); err != nil {
			return fmt.Errorf("drop role (it may still hold privileges in another database of the cluster): %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: purge tenant %s: %w", id, err)
	}
	p.log.InfoContext(ctx, "tenant schema purged", "tenant_id", string(id), "schema", name)
	return nil
}

// recordingReader keeps the first error of r other than io.EOF.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func schemaExists(ctx context.Context, tx pgx.Tx, name string) (bool, error) {
	var ok bool
	err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", name).Scan(&ok)
	return ok, err
}

// schemaTables are the tables of a tenant schema, its migrations table
// aside.
func schemaTables(ctx context.Context, tx pgx.Tx, schema string) ([]table, error) {
	return listTables(ctx, tx, "", "n.nspname = $1 AND c.relname <> 'tenantmcp_migrations'", schema)
}

// schemaVersions returns the latest migration of each component that
// tenant id's schema records.
func schemaVersions(ctx context.Context, tx pgx.Tx, id tenant.ID) (map[string]int, error) {
	rows, err := tx.Query(ctx, "SELECT component, max(version) FROM "+ident(SchemaName(id))+".tenantmcp_migrations GROUP BY component")
	if err != nil {
		return nil, fmt.Errorf("read migration versions: %w", err)
	}
	v := map[string]int{}
	var c string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&c, &n}, func() error { v[c] = n; return nil }); err != nil {
		return nil, fmt.Errorf("read migration versions: %w", err)
	}
	return v, nil
}

// checkSchemaEmpty locks every table of schema against writes for the
// rest of tx and returns store.ErrNotEmpty if one holds a row.
func checkSchemaEmpty(ctx context.Context, tx pgx.Tx, schema string) error {
	tables, err := schemaTables(ctx, tx, schema)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if _, err := tx.Exec(ctx, "LOCK TABLE "+t.qualified()+" IN EXCLUSIVE MODE"); err != nil {
			return err
		}
		var found bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t.qualified()+")").Scan(&found); err != nil {
			return err
		}
		if found {
			return fmt.Errorf("%w (table %s)", store.ErrNotEmpty, t.qualified())
		}
	}
	return nil
}

// migrationsUpTo returns the migrations of ms up to version v.
func migrationsUpTo(ms []Migration, v int) []Migration {
	i := slices.IndexFunc(ms, func(m Migration) bool { return m.Version > v })
	if i < 0 {
		return ms
	}
	return ms[:i]
}
