/* rp_restore: restore one disk of a restore point the mover made, with the tenant's keys
 * as the mover stores them (catalog.tenant_keys, wrapped under the master key), so the test
 * can compare the bytes with the source image.
 *
 *   rp_restore <master-key-file> <repo-root> <tenant> <restore-point> <disk> <out>
 *
 * Reads CAIRN_DATABASE_URL. Exit 0 when restored (and the engine's checks passed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "engine/backup.h"
#include "engine/hex.h"
#include "engine/keys.h"
#include "engine/repo.h"

int main(int argc, char **argv)
{
	const char *url = getenv("CAIRN_DATABASE_URL");
	struct engine_master_key mk;
	struct engine_tenant_keys tk;
	struct engine_restore_opts o = { 0 };
	struct engine_restore_result res;
	struct engine_repo *repo;
	uint8_t blob[ENGINE_WRAPPED_LEN];
	const char *p[1];
	PGconn *pg;
	PGresult *r;
	struct err e;
	const char *hex;

	if (argc != 7 || url == NULL) {
		fprintf(stderr,
		        "usage: rp_restore KEYFILE REPO TENANT RP DISK OUT (CAIRN_DATABASE_URL)\n");
		return 2;
	}
	if (engine_master_key_load(&mk, argv[1], &e) != STATUS_OK) {
		fprintf(stderr, "master key: %s\n", e.msg);
		return 1;
	}
	pg = PQconnectdb(url);
	p[0] = argv[3];
	/* The catalog is under row-level security: scope the session to the tenant. */
	PQclear(PQexecParams(pg, "SELECT set_config('app.tenant_id', $1, false)", 1, NULL, p, NULL,
	                     NULL, 0));
	r = PQexecParams(
	        pg, "SELECT encode(wrapped, 'hex') FROM catalog.tenant_keys WHERE tenant_id = $1",
	        1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		fprintf(stderr, "tenant keys: %s\n", PQerrorMessage(pg));
		return 1;
	}
	hex = PQgetvalue(r, 0, 0);
	if (strlen(hex) != 2 * ENGINE_WRAPPED_LEN) {
		fprintf(stderr, "tenant keys: unexpected length\n");
		return 1;
	}
	if (!engine_hex_decode(hex, blob, sizeof(blob))) {
		fprintf(stderr, "tenant keys: not hex\n");
		return 1;
	}
	PQclear(r);
	PQfinish(pg);
	if (engine_keys_unwrap(&mk, argv[3], blob, sizeof(blob), &tk, &e) != STATUS_OK) {
		fprintf(stderr, "unwrap: %s\n", e.msg);
		return 1;
	}
	repo = engine_repo_open(argv[2], argv[3], false, &e);
	if (repo == NULL) {
		fprintf(stderr, "repository: %s\n", e.msg);
		return 1;
	}
	if (engine_restore_disk(repo, &tk, argv[4], argv[5], argv[6], &o, &res, &e) != STATUS_OK) {
		fprintf(stderr, "restore: %s\n", e.msg);
		engine_repo_free(repo);
		return 1;
	}
	printf("restored %llu bytes, image sha256 %s\n", (unsigned long long)res.bytes_total,
	       res.sha256_checked ? "checked" : "not recorded");
	engine_repo_free(repo);
	engine_key_wipe(&tk, sizeof(tk));
	engine_key_wipe(&mk, sizeof(mk));
	return 0;
}
