/* Integration test (a): the migration runner and db.h against a real PostgreSQL.
 * Two concurrent runners apply a directory once, in order, under the advisory lock; a
 * changed checksum, a bad file name and a failing file are reported naming the file.
 * Also: SQLSTATE mapping of real errors, db_tx_set_local, db_tx_run retrying a
 * serialization failure. Needs CAIRN_DATABASE_URL. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/db.h"
#include "common/xalloc.h"

#include "spine_util.h"

static const char *uri;

static void write_file(const char *dir, const char *name, const char *body)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");

	if (f == NULL)
		spine_die("%s: %s", p, strerror(errno));
	fputs(body, f);
	fclose(f);
	free(p);
}

struct runner {
	const char *schema;
	const char *dir;
	enum status st;
	int applied;
	struct err e;
};

static void *run_migrate(void *arg)
{
	struct runner *r = arg;
	struct db_conn *dbc = db_conn_new(uri, &r->e);

	if (dbc == NULL) {
		r->st = r->e.code;
		return NULL;
	}
	r->st = db_migrate(dbc, r->schema, r->dir, &r->applied, &r->e);
	db_conn_free(dbc);
	return NULL;
}

static void test_migrations(struct db_conn *dbc, const char *schema)
{
	char dir[] = "/tmp/spine-migr-XXXXXX";
	struct runner r[2];
	pthread_t th[2];
	char *sql;
	long v;
	int applied;
	struct err e;
	enum status st;

	if (mkdtemp(dir) == NULL)
		spine_die("mkdtemp: %s", strerror(errno));
	write_file(dir, "0001_create.sql",
	           "CREATE TABLE log (id serial PRIMARY KEY, version int NOT NULL);\n"
	           "INSERT INTO log(version) VALUES (1);\n");
	/* Slow enough that the two runners overlap. */
	write_file(dir, "0002_slow.sql",
	           "SELECT pg_sleep(0.5);\nINSERT INTO log(version) VALUES (2);\n");
	write_file(dir, "0010_needs_0002.sql",
	           "ALTER TABLE log ADD COLUMN note text;\n"
	           "INSERT INTO log(version, note) VALUES (10, 'after 2');\n");
	write_file(dir, "README.md", "not a migration\n");

	for (int i = 0; i < 2; i++) {
		r[i] = (struct runner){ .schema = schema, .dir = dir };
		if (pthread_create(&th[i], NULL, run_migrate, &r[i]) != 0)
			spine_die("pthread_create");
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 2; i++)
		spine_check(r[i].st == STATUS_OK, "concurrent runner %d succeeded (%s)", i,
		            r[i].e.msg);
	spine_check(r[0].applied + r[1].applied == 3 && (r[0].applied == 0 || r[1].applied == 0),
	            "exactly one runner applied the 3 files (%d + %d)", r[0].applied, r[1].applied);
	sql = xasprintf("SELECT count(*) FROM %s.log", schema);
	if (spine_query_long(dbc, sql, &v, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	free(sql);
	spine_check(v == 3, "each file ran once (log has %ld rows)", v);
	sql = xasprintf(
	        "SELECT count(*) FROM (SELECT version, lag(version) OVER (ORDER BY id) AS p "
	        "FROM %s.log) x WHERE p >= version",
	        schema);
	if (spine_query_long(dbc, sql, &v, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	free(sql);
	spine_check(v == 0, "files ran in numeric order");
	sql = xasprintf(
	        "SELECT count(*) FROM %s.schema_migrations WHERE checksum ~ '^[0-9a-f]{64}$'",
	        schema);
	if (spine_query_long(dbc, sql, &v, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	free(sql);
	spine_check(v == 3, "schema_migrations records 3 versions with SHA-256 checksums");

	st = db_migrate(dbc, schema, dir, &applied, &e);
	spine_check(st == STATUS_OK && applied == 0, "re-running applies nothing");

	write_file(dir, "0002_slow.sql", "SELECT 1; -- edited after it was applied\n");
	st = db_migrate(dbc, schema, dir, &applied, &e);
	spine_check(st == STATUS_CONFLICT && strstr(e.msg, "0002_slow.sql") != NULL,
	            "changed checksum is an error naming the file: %s", e.msg);
	write_file(dir, "0002_slow.sql",
	           "SELECT pg_sleep(0.5);\nINSERT INTO log(version) VALUES (2);\n");

	write_file(dir, "0011_broken.sql", "INSERT INTO no_such_table VALUES (1);\n");
	write_file(dir, "0012_after.sql", "INSERT INTO log(version) VALUES (12);\n");
	st = db_migrate(dbc, schema, dir, &applied, &e);
	spine_check(st != STATUS_OK && strstr(e.msg, "0011_broken.sql") != NULL && applied == 0,
	            "failing file is reported by name and stops the run: %s", e.msg);
	write_file(dir, "0011_broken.sql", "INSERT INTO log(version) VALUES (11);\n");
	st = db_migrate(dbc, schema, dir, &applied, &e);
	spine_check(st == STATUS_OK && applied == 2, "after the fix 0011 and 0012 apply (%d)",
	            applied);

	write_file(dir, "13_bad_name.sql", "SELECT 1;\n");
	st = db_migrate(dbc, schema, dir, &applied, &e);
	spine_check(st == STATUS_INVALID && strstr(e.msg, "13_bad_name.sql") != NULL,
	            "badly named file is an error naming it: %s", e.msg);

	sql = xasprintf("rm -rf '%s'", dir);
	if (system(sql) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
	free(sql);
}

static void test_sqlstates(struct db_conn *dbc, const char *schema)
{
	char *sql;
	struct err e;
	enum status st;
	const char *params[1];

	sql = xasprintf("CREATE TABLE %s.u (id int PRIMARY KEY, v int NOT NULL CHECK (v > 0))",
	                schema);
	if (db_exec(dbc, sql, 0, NULL, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	free(sql);
	sql = xasprintf("INSERT INTO %s.u VALUES ($1, 1)", schema);
	params[0] = "1";
	if (db_exec(dbc, sql, 1, params, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	st = db_exec(dbc, sql, 1, params, &e);
	spine_check(st == STATUS_CONFLICT && !e.retriable &&
	                    strcmp(db_conn_last_sqlstate(dbc), "23505") == 0,
	            "unique violation -> conflict (%s)", e.msg);
	params[0] = "x";
	st = db_exec(dbc, sql, 1, params, &e);
	spine_check(st == STATUS_INVALID, "bad integer text -> invalid (%s)", e.msg);
	free(sql);
	sql = xasprintf("INSERT INTO %s.u VALUES (2, -1)", schema);
	st = db_exec(dbc, sql, 0, NULL, &e);
	free(sql);
	spine_check(st == STATUS_INVALID, "check violation -> invalid (%s)", e.msg);
}

static enum status show_tenant(struct db_conn *dbc, void *user, struct err *e)
{
	PGresult *res;
	enum status st;

	st = db_tx_set_local(dbc, "app.tenant_id", "t-42", e);
	if (st != STATUS_OK)
		return st;
	st = db_query(dbc, "SELECT current_setting('app.tenant_id')", 0, NULL, &res, e);
	if (st != STATUS_OK)
		return st;
	snprintf(user, 32, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return STATUS_OK;
}

struct ser_ctx {
	const char *schema;
	int calls;
};

/* Provokes a real serialization failure on the first call, from a second connection. */
static enum status ser_body(struct db_conn *dbc, void *user, struct err *e)
{
	struct ser_ctx *c = user;
	char *sql;
	enum status st;

	c->calls++;
	st = db_exec(dbc, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", 0, NULL, e);
	if (st != STATUS_OK)
		return st;
	sql = xasprintf("SELECT sum(v) FROM %s.u", c->schema);
	st = db_exec(dbc, sql, 0, NULL, e);
	free(sql);
	if (st != STATUS_OK)
		return st;
	if (c->calls == 1) {
		struct db_conn *other = db_conn_new(uri, e);

		if (other == NULL)
			return e->code;
		sql = xasprintf("UPDATE %s.u SET v = v + 1 WHERE id = 1", c->schema);
		st = db_exec(other, sql, 0, NULL, e);
		free(sql);
		db_conn_free(other);
		if (st != STATUS_OK)
			return st;
	}
	sql = xasprintf("UPDATE %s.u SET v = v + 10 WHERE id = 1", c->schema);
	st = db_exec(dbc, sql, 0, NULL, e);
	free(sql);
	return st;
}

static void test_tx(struct db_conn *dbc, const char *schema)
{
	char tenant[32] = "";
	struct ser_ctx c = { .schema = schema };
	struct err e;
	long v;
	char *sql;
	enum status st;

	st = db_tx_run(dbc, show_tenant, tenant, 0, &e);
	spine_check(st == STATUS_OK && strcmp(tenant, "t-42") == 0,
	            "db_tx_set_local is visible inside the transaction (%s)", tenant);
	st = db_tx_set_local(dbc, "app.tenant_id", "x", &e);
	spine_check(st == STATUS_INVALID, "set_local outside a transaction is refused");

	st = db_tx_run(dbc, ser_body, &c, 5, &e);
	spine_check(st == STATUS_OK && c.calls == 2,
	            "db_tx_run retried a serialization failure (calls=%d, %s)", c.calls,
	            st == STATUS_OK ? "ok" : e.msg);
	sql = xasprintf("SELECT v FROM %s.u WHERE id = 1", schema);
	if (spine_query_long(dbc, sql, &v, &e) != STATUS_OK)
		spine_die("%s", e.msg);
	free(sql);
	spine_check(v == 12, "both updates landed exactly once (v=%ld)", v);
	st = db_ping(dbc, &e);
	spine_check(st == STATUS_OK, "db_ping");
}

int main(void)
{
	struct db_conn *dbc;
	char schema[64];
	struct err e;
	char *sql;

	uri = spine_require_env("CAIRN_DATABASE_URL");
	snprintf(schema, sizeof(schema), "spine_m_%ld_%d", (long)time(NULL), (int)getpid());
	dbc = db_conn_new(uri, &e);
	if (dbc == NULL)
		spine_die("%s", e.msg);
	test_migrations(dbc, schema);
	test_sqlstates(dbc, schema);
	test_tx(dbc, schema);
	sql = xasprintf("DROP SCHEMA %s CASCADE", schema);
	if (db_exec(dbc, sql, 0, NULL, &e) != STATUS_OK)
		fprintf(stderr, "warning: %s\n", e.msg);
	free(sql);
	db_conn_free(dbc);
	printf("spine_db: all checks passed\n");
	return 0;
}
