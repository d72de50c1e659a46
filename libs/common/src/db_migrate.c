/* The migration runner of db.h: NNNN_<what>.sql files applied once each, in order. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/db.h"
#include "common/xalloc.h"

enum status db_migration_parse_name(const char *fname, long *version, struct err *e)
{
	size_t n = strlen(fname), digits = 0, name_len;
	long v = 0;

	while (fname[digits] >= '0' && fname[digits] <= '9')
		digits++;
	if (digits < 4 || digits > 9)
		return err_set(
		        e, STATUS_INVALID,
		        "migration %s: name must start with a 4-digit version (NNNN_<what>.sql)",
		        fname);
	if (fname[digits] != '_')
		return err_set(e, STATUS_INVALID,
		               "migration %s: expected '_' after the version (NNNN_<what>.sql)",
		               fname);
	if (n < digits + 1 + 4 || strcmp(fname + n - 4, ".sql") != 0)
		return err_set(e, STATUS_INVALID, "migration %s: must end in .sql", fname);
	name_len = n - 4 - (digits + 1);
	if (name_len == 0)
		return err_set(e, STATUS_INVALID, "migration %s: empty name after the version",
		               fname);
	for (size_t i = digits + 1; i < n - 4; i++) {
		char c = fname[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return err_set(e, STATUS_INVALID,
			               "migration %s: name may contain only [a-z0-9_-]", fname);
	}
	for (size_t i = 0; i < digits; i++)
		v = v * 10 + (fname[i] - '0');
	*version = v;
	return STATUS_OK;
}

static int cmp_migration(const void *a, const void *b)
{
	const struct db_migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

void db_migration_list_free(struct db_migration *m, size_t n)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].path);
	}
	free(m);
}

enum status db_migration_list(const char *dir, struct db_migration **out, size_t *nout,
                              struct err *e)
{
	struct db_migration *m = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	enum status st = STATUS_OK;
	DIR *d;

	*out = NULL;
	*nout = 0;
	d = opendir(dir);
	if (d == NULL)
		return err_set(e, STATUS_IO, "migrations dir %s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		long version = 0;

		if (de->d_name[0] == '.' || len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		st = db_migration_parse_name(de->d_name, &version, e);
		if (st != STATUS_OK)
			goto out_free;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			m = xrealloc(m, cap * sizeof(*m));
		}
		m[n].version = version;
		m[n].name = xstrdup(de->d_name);
		m[n].path = xasprintf("%s/%s", dir, de->d_name);
		n++;
	}
	if (n > 0)
		qsort(m, n, sizeof(*m), cmp_migration);
	for (size_t i = 1; i < n; i++) {
		if (m[i].version == m[i - 1].version) {
			st = err_set(e, STATUS_INVALID, "migrations %s and %s share version %ld",
			             m[i - 1].name, m[i].name, m[i].version);
			goto out_free;
		}
	}
	closedir(d);
	*out = m;
	*nout = n;
	return STATUS_OK;

out_free:
	closedir(d);
	db_migration_list_free(m, n);
	return st;
}

static enum status read_file(const char *path, struct buf *b, struct err *e)
{
	char chunk[8192];
	size_t got;
	FILE *f;

	f = fopen(path, "rb");
	if (f == NULL)
		return err_set(e, STATUS_IO, "%s: %s", path, strerror(errno));
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(b, chunk, got);
	if (ferror(f)) {
		fclose(f);
		return err_set(e, STATUS_IO, "%s: read error", path);
	}
	fclose(f);
	if (b->data == NULL)
		buf_append(b, "", 0);
	return STATUS_OK;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1)
		mdlen = 0;
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * (size_t)i, 3, "%02x", md[i]);
	out[2 * (size_t)(mdlen < 32 ? mdlen : 32)] = '\0';
}

/* Applies one file in its own transaction and records it. */
static enum status apply_one(struct db_conn *dbc, const char *service, const struct db_migration *m,
                             const char *sql, const char *sum, struct err *e)
{
	char version[24], *path_sql, *ins;
	const char *params[3];
	enum status st;

	st = db_tx_begin(dbc, e);
	if (st != STATUS_OK)
		return st;
	path_sql = xasprintf("SET LOCAL search_path TO %s, public", service);
	st = db_exec(dbc, path_sql, 0, NULL, e);
	free(path_sql);
	if (st != STATUS_OK)
		goto out_rollback;
	st = db_exec_script(dbc, sql, e);
	if (st != STATUS_OK) {
		struct err inner = e != NULL ? *e : (struct err){ 0 };

		err_set(e, st, "migration %s failed: %s", m->name, inner.msg);
		if (e != NULL)
			e->retriable = inner.retriable;
		goto out_rollback;
	}
	snprintf(version, sizeof(version), "%ld", m->version);
	params[0] = version;
	params[1] = m->name;
	params[2] = sum;
	ins = xasprintf("INSERT INTO %s.schema_migrations(version, name, checksum) "
	                "VALUES ($1, $2, $3)",
	                service);
	st = db_exec(dbc, ins, 3, params, e);
	free(ins);
	if (st != STATUS_OK)
		goto out_rollback;
	st = db_tx_commit(dbc, e);
	if (st != STATUS_OK)
		err_set(e, st, "migration %s: commit failed", m->name);
	return st;

out_rollback:
	db_tx_rollback(dbc);
	return st;
}

static enum status migrate_locked(struct db_conn *dbc, const char *service,
                                  const struct db_migration *m, size_t n, int *applied,
                                  struct err *e)
{
	char *sql;
	PGresult *res = NULL;
	enum status st;

	sql = xasprintf("CREATE SCHEMA IF NOT EXISTS %s;"
	                "CREATE TABLE IF NOT EXISTS %s.schema_migrations ("
	                " version bigint PRIMARY KEY,"
	                " name text NOT NULL,"
	                " checksum text NOT NULL,"
	                " applied_at timestamptz NOT NULL DEFAULT now())",
	                service, service);
	st = db_exec_script(dbc, sql, e);
	free(sql);
	if (st != STATUS_OK)
		return st;
	sql = xasprintf("SELECT version, name, checksum FROM %s.schema_migrations", service);
	st = db_query(dbc, sql, 0, NULL, &res, e);
	free(sql);
	if (st != STATUS_OK)
		return st;

	for (size_t i = 0; i < n; i++) {
		struct buf body;
		char sum[65];
		int row = -1;

		buf_init(&body);
		st = read_file(m[i].path, &body, e);
		if (st != STATUS_OK) {
			buf_cleanup(&body);
			break;
		}
		sha256_hex(body.data, body.len, sum);
		for (int r = 0; r < PQntuples(res); r++)
			if (strtol(PQgetvalue(res, r, 0), NULL, 10) == m[i].version)
				row = r;
		if (row >= 0) {
			if (strcmp(PQgetvalue(res, row, 2), sum) != 0)
				st = err_set(e, STATUS_CONFLICT,
				             "migration %s changed after it was applied as %s "
				             "(checksum %.12s, now %.12s)",
				             m[i].name, PQgetvalue(res, row, 1),
				             PQgetvalue(res, row, 2), sum);
		} else {
			st = apply_one(dbc, service, &m[i], body.data, sum, e);
			if (st == STATUS_OK && applied != NULL)
				(*applied)++;
		}
		buf_cleanup(&body);
		if (st != STATUS_OK)
			break;
	}
	PQclear(res);
	return st;
}

enum status db_migrate(struct db_conn *dbc, const char *service, const char *dir, int *applied,
                       struct err *e)
{
	struct db_migration *m = NULL;
	const char *params[1];
	char *key;
	size_t n = 0;
	enum status st;
	struct err ue;

	if (applied != NULL)
		*applied = 0;
	if (!db_ident_is_valid(service))
		return err_set(e, STATUS_INVALID, "bad service/schema name for migrations");
	if (db_tx_is_open(dbc))
		return err_set(e, STATUS_INVALID, "db_migrate inside an open transaction");
	st = db_migration_list(dir, &m, &n, e);
	if (st != STATUS_OK)
		return st;

	key = xasprintf("cairn.migrate.%s", service);
	params[0] = key;
	st = db_exec(dbc, "SELECT pg_advisory_lock(hashtext($1))", 1, params, e);
	if (st != STATUS_OK)
		goto out;
	st = migrate_locked(dbc, service, m, n, applied, e);
	/* Unlock even on failure; if the connection broke, the server released it. */
	if (db_exec(dbc, "SELECT pg_advisory_unlock(hashtext($1))", 1, params, &ue) != STATUS_OK &&
	    st == STATUS_OK)
		st = err_set(e, ue.code, "%s", ue.msg);
out:
	free(key);
	db_migration_list_free(m, n);
	return st;
}
