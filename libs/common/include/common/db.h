/* db.h - PostgreSQL access on libpq: connections, parameterised statements, transactions
 * with retry, the SQLSTATE -> status table, SET LOCAL helpers and the migration runner.
 * See docs/db.md.
 *
 * Threads: a struct db_conn is used by one thread at a time (one PGconn per thread).
 */
#ifndef COMMON_DB_H
#define COMMON_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "common/err.h"

struct db_conn;

/** @brief Connect to PostgreSQL from a libpq URI or conninfo string (PG* env applies).
 *  @returns a new connection (free with db_conn_free), or NULL with e filled
 *  (STATUS_UNAVAILABLE, retriable) when the server cannot be reached. */
struct db_conn *db_conn_new(const char *uri, struct err *e);

/** @brief Close and free; accepts NULL. An open transaction is rolled back by the server. */
void db_conn_free(struct db_conn *dbc);

/** @brief The underlying libpq connection. @returns borrowed; valid until db_conn_free. */
PGconn *db_conn_get_pg(struct db_conn *dbc);

/** @brief True between a successful db_tx_begin and db_tx_commit/db_tx_rollback. */
bool db_tx_is_open(const struct db_conn *dbc);

/** @brief SQLSTATE of the last failed statement ("" if none or no server error).
 *  @returns borrowed; valid until the next call on dbc. */
const char *db_conn_last_sqlstate(const struct db_conn *dbc);

/** @brief Map a SQLSTATE to a status (the table in db.c; see docs/db.md).
 *  @param retriable receives whether retrying the transaction may succeed; may be NULL.
 *  NULL or "" maps to STATUS_UNAVAILABLE, retriable (connection lost, no server answer). */
enum status db_status_from_sqlstate(const char *sqlstate, bool *retriable);

/** @brief Run "SELECT 1". If the connection is broken, try one PQreset first.
 *  @returns STATUS_OK or STATUS_UNAVAILABLE (retriable). */
MUST_CHECK enum status db_ping(struct db_conn *dbc, struct err *e);

/** @brief Execute a statement with text parameters ($1..$n, NULL = SQL NULL) and discard
 *  any rows. @returns STATUS_OK or the mapped SQLSTATE status (e->retriable set). */
MUST_CHECK enum status db_exec(struct db_conn *dbc, const char *sql, int nparams,
                               const char *const *params, struct err *e);

/** @brief Like db_exec but returns the rows.
 *  @param res receives a new PGresult on success (caller PQclear()s); NULL on failure. */
MUST_CHECK enum status db_query(struct db_conn *dbc, const char *sql, int nparams,
                                const char *const *params, PGresult **res, struct err *e);

/** @brief Run a script of several statements (simple query protocol, no parameters). */
MUST_CHECK enum status db_exec_script(struct db_conn *dbc, const char *sql, struct err *e);

/** @brief Create schema (if missing) and run ddl (idempotent statements, e.g. CREATE TABLE IF
 *  NOT EXISTS) in it, in one transaction serialised per schema by an advisory lock, so that
 *  concurrent creators do not race on the catalog. schema must pass db_ident_is_valid().
 *  @returns STATUS_OK, STATUS_INVALID (bad name) or the mapped database error. */
MUST_CHECK enum status db_ensure_ddl(struct db_conn *dbc, const char *schema, const char *ddl,
                                     struct err *e);

/** @brief BEGIN (read committed). STATUS_INVALID if a transaction is already open. */
MUST_CHECK enum status db_tx_begin(struct db_conn *dbc, struct err *e);

/** @brief COMMIT. On failure the transaction is over (rolled back by the server); a
 *  serialization failure at commit is reported retriable. */
MUST_CHECK enum status db_tx_commit(struct db_conn *dbc, struct err *e);

/** @brief ROLLBACK, best effort; never fails visibly (a broken connection is reset later by
 *  db_ping / db_tx_run). Safe to call when no transaction is open. */
void db_tx_rollback(struct db_conn *dbc);

/** @brief set_config(name, value, true): a SET LOCAL that lasts until the end of the open
 *  transaction (e.g. "app.tenant_id"). STATUS_INVALID if no transaction is open. */
MUST_CHECK enum status db_tx_set_local(struct db_conn *dbc, const char *name, const char *value,
                                       struct err *e);

/* Body of a transaction for db_tx_run: runs inside BEGIN .. COMMIT. */
typedef enum status (*db_tx_fn)(struct db_conn *dbc, void *user, struct err *e);

/** @brief Run fn inside a transaction, committing when it returns STATUS_OK. When fn or
 *  COMMIT fails with a retriable error (serialization failure, deadlock, lost connection)
 *  the transaction is rolled back and retried with exponential backoff (10 ms doubling, at
 *  most 1 s), up to max_attempts in total (<= 0 means 5). fn must be safe to re-run.
 *  @returns STATUS_OK or the last error. */
MUST_CHECK enum status db_tx_run(struct db_conn *dbc, db_tx_fn fn, void *user, int max_attempts,
                                 struct err *e);

/** @brief True when s is a safe unquoted SQL identifier: [a-z_][a-z0-9_]{0,62}. Schema and
 *  table names given to this library must pass it (they are spliced into SQL). */
bool db_ident_is_valid(const char *s);

/* One migration file, as found by db_migration_list. */
struct db_migration {
	long version; /* NNNN */
	char *name;   /* file name, e.g. "0001_init.sql" (owned) */
	char *path;   /* dir/name (owned) */
};

/** @brief Parse a migration file name "NNNN_<what>.sql" (at least 4 digits, then '_', a
 *  non-empty name of [a-z0-9_-], ".sql").
 *  @returns STATUS_OK with *version set, or STATUS_INVALID naming the file. */
MUST_CHECK enum status db_migration_parse_name(const char *fname, long *version, struct err *e);

/** @brief List the migrations in dir, sorted by version. Files not ending in ".sql" and
 *  dot-files are ignored; a ".sql" file with a bad name or a duplicate version is an error.
 *  @param out receives a new array (free with db_migration_list_free), *n its length. */
MUST_CHECK enum status db_migration_list(const char *dir, struct db_migration **out, size_t *n,
                                         struct err *e);

/** @brief Free an array from db_migration_list; accepts NULL. */
void db_migration_list_free(struct db_migration *m, size_t n);

/** @brief Apply dir's migrations to schema `service` (created if missing), each once, in
 *  version order, under pg_advisory_lock(hashtext('cairn.migrate.'||service)). Each file
 *  runs in its own transaction with search_path = service, public, and is recorded in
 *  <service>.schema_migrations(version, name, checksum, applied_at). A file whose SHA-256
 *  changed since it was applied is an error naming it (STATUS_CONFLICT); nothing after it
 *  is applied. Files must not contain BEGIN/COMMIT themselves.
 *  @param applied receives how many files were applied now; may be NULL. */
MUST_CHECK enum status db_migrate(struct db_conn *dbc, const char *service, const char *dir,
                                  int *applied, struct err *e);

#endif
