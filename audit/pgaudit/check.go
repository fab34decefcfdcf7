package pgaudit

import (
	"context"
	"fmt"
)

// CheckAppRole refuses, with ErrUnsafeRole, a Store whose pool could
// change or remove audit records behind the hash chain: a superuser
// session or current user; a role that owns, or may act as the owner of,
// the audit tables (an owner can disable the trigger); a role holding
// UPDATE, DELETE or TRUNCATE on records or checkpoints, or any write
// privilege on floors; or records and checkpoints without their enabled
// append-only trigger. It returns ErrNotMigrated if the tables do not
// exist. The server calls it once at startup with its application pool.
func (s *Store) CheckAppRole(ctx context.Context) error {
	var user string
	var super bool
	if err := s.pool.QueryRow(ctx, `SELECT current_user, bool_or(rolsuper) FROM pg_roles
		WHERE rolname IN (session_user, current_user)`).Scan(&user, &super); err != nil {
		return fmt.Errorf("pgaudit: check application role: %w", err)
	}
	if super {
		return fmt.Errorf("%w: role %q is a superuser (superusers may change anything, triggers included); connect as the application role", ErrUnsafeRole, user)
	}
	rows, err := s.pool.Query(ctx, `SELECT c.relname, pg_get_userbyid(c.relowner),
			pg_has_role(session_user, c.relowner, 'MEMBER') OR pg_has_role(current_user, c.relowner, 'MEMBER'),
			ARRAY(SELECT p FROM unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE', 'INSERT']) p
				WHERE (p <> 'INSERT' OR c.relname = $4)
				  AND (has_table_privilege(session_user, c.oid, p) OR has_table_privilege(current_user, c.oid, p))),
			EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = $5 AND t.tgenabled IN ('O', 'A'))
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname IN ($2, $3, $4) AND c.relkind IN ('r', 'p')
		ORDER BY c.relname`, s.schema, RecordsTable, CheckpointsTable, FloorsTable, TriggerFunction)
	if err != nil {
		return fmt.Errorf("pgaudit: check application role: %w", err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var table, owner string
		var member, trigger bool
		var privs []string
		if err := rows.Scan(&table, &owner, &member, &privs, &trigger); err != nil {
			return fmt.Errorf("pgaudit: check application role: %w", err)
		}
		found++
		switch {
		case member:
			return fmt.Errorf("%w: role %q owns or can act as %q, the owner of %s (an owner can disable its trigger); connect as the application role", ErrUnsafeRole, user, owner, table)
		case len(privs) > 0:
			return fmt.Errorf("%w: role %q holds %v on %s; the application role may only insert and read audit records (run Migrate, which revokes the rest)", ErrUnsafeRole, user, privs, table)
		case table != FloorsTable && !trigger:
			return fmt.Errorf("%w: the append-only trigger %s on %s is missing or disabled; run Migrate, or ALTER TABLE … ENABLE TRIGGER", ErrUnsafeRole, TriggerFunction, table)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgaudit: check application role: %w", err)
	}
	if found < 3 {
		return ErrNotMigrated
	}
	return nil
}
