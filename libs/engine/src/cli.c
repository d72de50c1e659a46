/* cli.c - cairn-engine: argument parsing, key/repo setup, JSON summaries. */
#define _GNU_SOURCE
#include "engine/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "engine/backup.h"
#include "engine/chunk.h"
#include "engine/extents.h"
#include "engine/keys.h"
#include "engine/manifest.h"
#include "engine/repo.h"

#include "engine_internal.h"

static const char USAGE[] =
        "usage: cairn-engine COMMAND [OPTIONS]\n"
        "\n"
        "commands (all need --repo DIR --keys DIR --tenant ID and $CAIRN_MASTER_KEY_FILE):\n"
        "  backup  --disk NAME=PATH [--disk ...] [--parent RP|latest]\n"
        "          [--changed-extents [NAME=]FILE] [--chunk-size N[K|M]] [--zstd-level N]\n"
        "          [--no-compress] [--cdc] [--threads N] [--rp-id ID] [--source TEXT] "
        "[--progress]\n"
        "          [--no-direct-io] [--no-image-sha256]\n"
        "  list\n"
        "  restore --rp ID --disk NAME --out PATH [--threads N] [--no-fsync] [--progress]\n"
        "          [--no-direct-io]\n"
        "  verify  --rp ID [--threads N] [--progress]\n"
        "\n"
        "The keys directory holds tenant keys wrapped by the master key (32 raw bytes or 64 hex\n"
        "digits in the file named by CAIRN_MASTER_KEY_FILE); it must not be inside --repo.\n"
        "A changed-extents file lists 'OFFSET LENGTH' per line (bytes, decimal or 0x-hex).\n"
        "Chunk files and restored images are written with O_DIRECT where the file system\n"
        "allows it; --no-direct-io writes through the page cache instead.\n"
        "--zstd-level: -50..22 (default 1); --no-image-sha256 skips the whole-image SHA-256.\n"
        "Output: one JSON object on stdout. Exit: 0 ok, 1 failed, 2 usage, 3 not found,\n"
        "4 corrupt data, 5 cancelled.\n";

#define MAX_DISKS 64

struct cli {
	const char *repo, *keys, *tenant, *rp, *disk_name, *out_path, *parent, *rp_id, *source;
	const char *disk_names[MAX_DISKS], *disk_paths[MAX_DISKS];
	const char *ext_names[MAX_DISKS], *ext_files[MAX_DISKS];
	size_t n_disks, n_ext;
	uint32_t chunk_size;
	int zstd_level;
	bool zstd_level_set, no_compress, no_sha, cdc, no_fsync, progress, no_dio;
	unsigned threads;
	FILE *out, *errs;
	const atomic_bool *cancel;
};

static int exit_for(enum status st)
{
	switch (st) {
	case STATUS_OK:
		return ENGINE_EXIT_OK;
	case STATUS_INVALID:
		return ENGINE_EXIT_USAGE;
	case STATUS_NOT_FOUND:
		return ENGINE_EXIT_NOT_FOUND;
	case STATUS_CORRUPT:
		return ENGINE_EXIT_CORRUPT;
	case STATUS_UNAVAILABLE:
		return ENGINE_EXIT_CANCELLED;
	default:
		return ENGINE_EXIT_FAIL;
	}
}

static void jstr(FILE *f, const char *s)
{
	char buf[8192];

	log_json_escape(buf, sizeof(buf), s ? s : "");
	fprintf(f, "\"%s\"", buf);
}

static int fail(struct cli *c, enum status st, const struct err *e)
{
	fprintf(c->errs, "cairn-engine: %s\n", e->msg);
	fprintf(c->out, "{\"error\":{\"status\":\"%s\",\"message\":", status_str(st));
	jstr(c->out, e->msg);
	fprintf(c->out, "}}\n");
	return exit_for(st);
}

static int usage(struct cli *c, const char *why)
{
	if (why)
		fprintf(c->errs, "cairn-engine: %s\n", why);
	fputs(USAGE, c->errs);
	return ENGINE_EXIT_USAGE;
}

static bool parse_size(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		v <<= 20, end++;
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	if (*end != '\0' || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static void on_progress(const struct engine_progress *p, void *ud)
{
	struct cli *c = ud;

	fprintf(c->errs,
	        "{\"progress\":{\"percent\":%.1f,\"bytes_done\":%" PRIu64 ",\"bytes_read\":%" PRIu64
	        ",\"bytes_stored\":%" PRIu64 ",\"speed_mib_s\":%.1f}}\n",
	        p->percent, p->bytes_done, p->bytes_read, p->bytes_stored, p->speed / 1048576.0);
	fflush(c->errs);
}

/* Open repo + keys for the tenant. */
static enum status open_ctx(struct cli *c, bool create, struct engine_repo **repo,
                            struct engine_tenant_keys *tk, struct err *e)
{
	struct engine_master_key mk;
	struct engine_keystore *ks;
	enum status st;
	struct stat sb;

	*repo = NULL;
	st = engine_master_key_from_env(&mk, e);
	if (st != STATUS_OK)
		return st;
	if (create)
		st = engine_fs_mkdirs(c->repo, 0700, e);
	else if (stat(c->repo, &sb) != 0)
		st = err_set(e, STATUS_NOT_FOUND, "repository %s not found", c->repo);
	if (st != STATUS_OK)
		goto out;
	ks = engine_keystore_file_new(c->keys, c->repo, e);
	if (ks == NULL) {
		st = e ? e->code : STATUS_INTERNAL;
		goto out;
	}
	st = engine_tenant_keys_get(ks, &mk, c->tenant, create, tk, e);
	engine_keystore_free(ks);
	if (st == STATUS_NOT_FOUND)
		st = err_set(e, STATUS_NOT_FOUND, "no keys for tenant %s in %s", c->tenant,
		             c->keys);
	if (st != STATUS_OK)
		goto out;
	*repo = engine_repo_open(c->repo, c->tenant, create, e);
	if (*repo == NULL)
		st = e ? e->code : STATUS_INTERNAL;
	else if (c->no_dio)
		engine_repo_set_direct_io(*repo, false);
out:
	engine_key_wipe(&mk, sizeof(mk));
	return st;
}

static int cmd_backup(struct cli *c)
{
	struct engine_disk_source src[MAX_DISKS];
	struct engine_extents ext[MAX_DISKS];
	struct engine_backup_opts o = { 0 };
	struct engine_backup_result res;
	struct engine_tenant_keys tk;
	struct engine_repo *repo = NULL;
	char **ids = NULL;
	size_t nids = 0, next = 0;
	struct err e;
	enum status st;
	int rc;

	if (c->n_disks == 0)
		return usage(c, "backup needs at least one --disk NAME=PATH");
	memset(src, 0, sizeof(src));
	for (size_t i = 0; i < c->n_disks; i++) {
		src[i].name = c->disk_names[i];
		src[i].path = c->disk_paths[i];
	}
	for (size_t i = 0; i < c->n_ext; i++) {
		size_t d = 0;

		if (c->ext_names[i] == NULL && c->n_disks != 1)
			return usage(c, "with several disks use --changed-extents NAME=FILE");
		if (c->ext_names[i] != NULL) {
			for (d = 0; d < c->n_disks; d++)
				if (strcmp(c->disk_names[d], c->ext_names[i]) == 0)
					break;
			if (d == c->n_disks)
				return usage(c, "--changed-extents names an unknown disk");
		}
		if (src[d].changed != NULL)
			return usage(c, "two --changed-extents for one disk");
		st = engine_extents_load(c->ext_files[i], &ext[next], &e);
		if (st != STATUS_OK) {
			rc = fail(c, st, &e);
			goto out;
		}
		src[d].changed = &ext[next++];
	}
	if (c->n_ext > 0 && c->parent == NULL) {
		rc = usage(c, "--changed-extents needs --parent");
		goto out;
	}
	st = open_ctx(c, true, &repo, &tk, &e);
	if (st != STATUS_OK) {
		rc = fail(c, st, &e);
		goto out;
	}
	if (c->parent != NULL && strcmp(c->parent, "latest") == 0) {
		st = engine_repo_manifest_list(repo, &ids, &nids, &e);
		if (st == STATUS_OK && nids == 0)
			st = err_set(&e, STATUS_NOT_FOUND, "no restore point to use as parent");
		if (st != STATUS_OK) {
			rc = fail(c, st, &e);
			goto out;
		}
		o.parent_rp = ids[nids - 1];
	} else {
		o.parent_rp = c->parent;
	}
	o.chunk_size = c->chunk_size;
	o.zstd_level = c->zstd_level;
	o.zstd_level_set = c->zstd_level_set;
	o.no_compress = c->no_compress;
	o.no_image_sha256 = c->no_sha;
	o.cdc = c->cdc;
	o.threads = c->threads;
	o.rp_id = c->rp_id;
	o.source = c->source;
	o.cancel = c->cancel;
	if (c->progress) {
		o.progress = on_progress;
		o.progress_ud = c;
	}
	st = engine_backup_run(repo, &tk, src, c->n_disks, &o, &res, &e);
	engine_key_wipe(&tk, sizeof(tk));
	if (st != STATUS_OK) {
		rc = fail(c, st, &e);
		goto out;
	}
	fprintf(c->out, "{\"rp_id\":");
	jstr(c->out, res.rp_id);
	fprintf(c->out, ",\"tenant\":");
	jstr(c->out, c->tenant);
	fprintf(c->out, ",\"parent\":");
	jstr(c->out, o.parent_rp);
	fprintf(c->out,
	        ",\"bytes_total\":%" PRIu64 ",\"bytes_read\":%" PRIu64 ",\"bytes_stored\":%" PRIu64
	        ",\"chunks_total\":%" PRIu64 ",\"chunks_new\":%" PRIu64 ",\"chunks_known\":%" PRIu64
	        ",\"chunks_zero\":%" PRIu64 ",\"chunks_parent\":%" PRIu64
	        ",\"chunks_patch\":%" PRIu64 ",\"maps_new\":%" PRIu64
	        ",\"maps_unreadable\":%" PRIu64 ",\"chunks_id_fused\":%" PRIu64
	        ",\"seconds\":%.3f,\"mib_per_s\":%.1f",
	        res.bytes_total, res.bytes_read, res.bytes_stored, res.chunks_total, res.chunks_new,
	        res.chunks_known, res.chunks_zero, res.chunks_parent, res.chunks_patch,
	        res.maps_new, res.maps_unreadable, res.chunks_id_fused, res.seconds,
	        res.seconds > 0 ? (double)res.bytes_total / 1048576.0 / res.seconds : 0);
	fprintf(c->out,
	        ",\"timing\":{\"read\":%.3f,\"read_wait\":%.3f,\"image_sha\":%.3f,\"id\":%.3f,"
	        "\"seal\":%.3f,\"stage\":%.3f,\"durable\":%.3f,\"commit\":%.3f}}\n",
	        res.timing.read, res.timing.read_wait, res.timing.image_sha, res.timing.id,
	        res.timing.seal, res.timing.stage, res.timing.durable, res.timing.commit);
	rc = ENGINE_EXIT_OK;
out:
	for (size_t i = 0; i < next; i++)
		engine_extents_cleanup(&ext[i]);
	engine_repo_ids_free(ids, nids);
	engine_repo_free(repo);
	return rc;
}

static int cmd_list(struct cli *c)
{
	struct engine_tenant_keys tk;
	struct engine_repo *repo;
	struct engine_codec *codec;
	char **ids = NULL;
	size_t n = 0;
	struct err e;
	enum status st = open_ctx(c, false, &repo, &tk, &e);

	if (st != STATUS_OK)
		return fail(c, st, &e);
	st = engine_repo_manifest_list(repo, &ids, &n, &e);
	if (st != STATUS_OK) {
		engine_repo_free(repo);
		return fail(c, st, &e);
	}
	codec = engine_codec_new(&tk, 1, true);
	engine_key_wipe(&tk, sizeof(tk));
	fprintf(c->out, "{\"tenant\":");
	jstr(c->out, c->tenant);
	fprintf(c->out, ",\"restore_points\":[");
	for (size_t i = 0; i < n; i++) {
		struct engine_manifest *m = NULL;
		struct tm tm;
		char when[32];

		fprintf(c->out, "%s{\"id\":", i ? "," : "");
		jstr(c->out, ids[i]);
		st = engine_manifest_load(repo, codec, ids[i], &m, &e);
		if (st != STATUS_OK) {
			fprintf(c->out, ",\"error\":");
			jstr(c->out, e.msg);
			fprintf(c->out, "}");
			continue;
		}
		time_t t = (time_t)m->created;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(c->out, ",\"created\":\"%s\",\"parent\":", when);
		jstr(c->out, m->parent_id);
		fprintf(c->out, ",\"source\":");
		jstr(c->out, m->source);
		fprintf(c->out, ",\"bytes_new\":%" PRIu64 ",\"disks\":[", m->bytes_new);
		for (size_t d = 0; d < m->n_disks; d++) {
			const struct engine_manifest_disk *md = &m->disks[d];
			char hex[65];

			fprintf(c->out, "%s{\"name\":", d ? "," : "");
			jstr(c->out, md->name);
			fprintf(c->out,
			        ",\"size\":%" PRIu64 ",\"chunk_size\":%u,\"chunking\":\"%s\","
			        "\"chunks\":%zu",
			        md->size, md->chunk_size,
			        (md->flags & ENGINE_DISK_CDC) ? "fastcdc" : "fixed", md->n_entries);
			if (md->flags & ENGINE_DISK_HAS_SHA256) {
				engine_hex_encode(md->sha256, 32, hex);
				fprintf(c->out, ",\"sha256\":\"%s\"", hex);
			}
			fprintf(c->out, "}");
		}
		fprintf(c->out, "]}");
		engine_manifest_free(m);
	}
	fprintf(c->out, "]}\n");
	engine_codec_free(codec);
	engine_repo_ids_free(ids, n);
	engine_repo_free(repo);
	return ENGINE_EXIT_OK;
}

static int cmd_restore(struct cli *c)
{
	struct engine_tenant_keys tk;
	struct engine_repo *repo;
	struct engine_restore_opts o = { 0 };
	struct engine_restore_result res;
	struct err e;
	enum status st;

	if (c->rp == NULL || c->disk_name == NULL || c->out_path == NULL)
		return usage(c, "restore needs --rp, --disk NAME and --out PATH");
	st = open_ctx(c, false, &repo, &tk, &e);
	if (st != STATUS_OK)
		return fail(c, st, &e);
	o.threads = c->threads;
	o.no_fsync = c->no_fsync;
	o.no_direct_io = c->no_dio;
	o.cancel = c->cancel;
	if (c->progress) {
		o.progress = on_progress;
		o.progress_ud = c;
	}
	st = engine_restore_disk(repo, &tk, c->rp, c->disk_name, c->out_path, &o, &res, &e);
	engine_key_wipe(&tk, sizeof(tk));
	engine_repo_free(repo);
	if (st != STATUS_OK)
		return fail(c, st, &e);
	fprintf(c->out, "{\"rp_id\":");
	jstr(c->out, c->rp);
	fprintf(c->out, ",\"disk\":");
	jstr(c->out, c->disk_name);
	fprintf(c->out, ",\"out\":");
	jstr(c->out, c->out_path);
	fprintf(c->out,
	        ",\"bytes_total\":%" PRIu64 ",\"bytes_written\":%" PRIu64
	        ",\"chunks_total\":%" PRIu64 ",\"chunks_zero\":%" PRIu64
	        ",\"sha256_checked\":%s,\"seconds\":%.3f,"
	        "\"mib_per_s\":%.1f",
	        res.bytes_total, res.bytes_written, res.chunks_total, res.chunks_zero,
	        res.sha256_checked ? "true" : "false", res.seconds,
	        res.seconds > 0 ? (double)res.bytes_total / 1048576.0 / res.seconds : 0);
	fprintf(c->out,
	        ",\"timing\":{\"fetch\":%.3f,\"buf_wait\":%.3f,\"image_sha\":%.3f,"
	        "\"write\":%.3f}}\n",
	        res.timing.fetch, res.timing.buf_wait, res.timing.image_sha, res.timing.write);
	return ENGINE_EXIT_OK;
}

static int cmd_verify(struct cli *c)
{
	struct engine_tenant_keys tk;
	struct engine_repo *repo;
	struct engine_restore_opts o = { 0 };
	struct engine_verify_report rep;
	struct err e;
	enum status st;

	if (c->rp == NULL)
		return usage(c, "verify needs --rp ID");
	st = open_ctx(c, false, &repo, &tk, &e);
	if (st != STATUS_OK)
		return fail(c, st, &e);
	o.threads = c->threads;
	o.cancel = c->cancel;
	if (c->progress) {
		o.progress = on_progress;
		o.progress_ud = c;
	}
	st = engine_verify_rp(repo, &tk, c->rp, &o, &rep, &e);
	engine_key_wipe(&tk, sizeof(tk));
	engine_repo_free(repo);
	if (st != STATUS_OK && rep.n_problems == 0) {
		engine_verify_report_cleanup(&rep);
		return fail(c, st, &e);
	}
	if (st != STATUS_OK)
		fprintf(c->errs, "cairn-engine: %s\n", e.msg);
	fprintf(c->out, "{\"rp_id\":");
	jstr(c->out, c->rp);
	fprintf(c->out,
	        ",\"ok\":%s,\"chunks_checked\":%" PRIu64 ",\"chunks_missing\":%" PRIu64
	        ",\"chunks_corrupt\":%" PRIu64 ",\"bytes_checked\":%" PRIu64 ",\"seconds\":%.3f,"
	        "\"problems\":[",
	        st == STATUS_OK ? "true" : "false", rep.chunks_checked, rep.chunks_missing,
	        rep.chunks_corrupt, rep.bytes_checked, rep.seconds);
	for (size_t i = 0; i < rep.n_problems; i++) {
		fprintf(c->out, "%s{\"chunk_id\":\"%s\",\"kind\":\"%s\",\"detail\":", i ? "," : "",
		        rep.problems[i].chunk_id,
		        rep.problems[i].kind == STATUS_NOT_FOUND ? "missing" : "corrupt");
		jstr(c->out, rep.problems[i].detail);
		fprintf(c->out, "}");
	}
	fprintf(c->out, "]}\n");
	engine_verify_report_cleanup(&rep);
	return exit_for(st);
}

enum {
	OPT_REPO = 256,
	OPT_KEYS,
	OPT_TENANT,
	OPT_DISK,
	OPT_PARENT,
	OPT_EXT,
	OPT_CHUNK,
	OPT_ZSTD,
	OPT_NOCOMP,
	OPT_NOSHA,
	OPT_CDC,
	OPT_THREADS,
	OPT_RPID,
	OPT_SOURCE,
	OPT_RP,
	OPT_OUT,
	OPT_NOFSYNC,
	OPT_NODIO,
	OPT_PROGRESS,
	OPT_HELP,
};

int engine_cli_main(int argc, char **argv, FILE *out, FILE *errs, const atomic_bool *cancel)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "keys", required_argument, NULL, OPT_KEYS },
		{ "tenant", required_argument, NULL, OPT_TENANT },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "parent", required_argument, NULL, OPT_PARENT },
		{ "changed-extents", required_argument, NULL, OPT_EXT },
		{ "chunk-size", required_argument, NULL, OPT_CHUNK },
		{ "zstd-level", required_argument, NULL, OPT_ZSTD },
		{ "no-compress", no_argument, NULL, OPT_NOCOMP },
		{ "no-image-sha256", no_argument, NULL, OPT_NOSHA },
		{ "cdc", no_argument, NULL, OPT_CDC },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "rp-id", required_argument, NULL, OPT_RPID },
		{ "source", required_argument, NULL, OPT_SOURCE },
		{ "rp", required_argument, NULL, OPT_RP },
		{ "out", required_argument, NULL, OPT_OUT },
		{ "no-fsync", no_argument, NULL, OPT_NOFSYNC },
		{ "no-direct-io", no_argument, NULL, OPT_NODIO },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct cli c;
	const char *cmd;
	long v;
	int o;

	memset(&c, 0, sizeof(c));
	c.out = out;
	c.errs = errs;
	c.cancel = cancel;
	if (argc < 2)
		return usage(&c, NULL);
	cmd = argv[1];
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		fputs(USAGE, out);
		return ENGINE_EXIT_OK;
	}
	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
		char *eq;

		switch (o) {
		case OPT_REPO:
			c.repo = optarg;
			break;
		case OPT_KEYS:
			c.keys = optarg;
			break;
		case OPT_TENANT:
			c.tenant = optarg;
			break;
		case OPT_DISK:
			eq = strchr(optarg, '=');
			if (strcmp(cmd, "backup") != 0) {
				c.disk_name = optarg;
				break;
			}
			if (eq == NULL || eq == optarg || eq[1] == '\0')
				return usage(&c, "--disk wants NAME=PATH");
			if (c.n_disks == MAX_DISKS)
				return usage(&c, "too many disks");
			*eq = '\0';
			c.disk_names[c.n_disks] = optarg;
			c.disk_paths[c.n_disks++] = eq + 1;
			break;
		case OPT_PARENT:
			c.parent = optarg;
			break;
		case OPT_EXT:
			if (c.n_ext == MAX_DISKS)
				return usage(&c, "too many --changed-extents");
			eq = strchr(optarg, '=');
			if (eq != NULL) {
				*eq = '\0';
				c.ext_names[c.n_ext] = optarg;
				c.ext_files[c.n_ext++] = eq + 1;
			} else {
				c.ext_names[c.n_ext] = NULL;
				c.ext_files[c.n_ext++] = optarg;
			}
			break;
		case OPT_CHUNK:
			if (!parse_size(optarg, &c.chunk_size))
				return usage(&c, "bad --chunk-size");
			break;
		case OPT_ZSTD:
			if (!parse_int(optarg, -50, 22, &v))
				return usage(&c, "--zstd-level wants -50..22");
			c.zstd_level = (int)v;
			c.zstd_level_set = true;
			break;
		case OPT_NOCOMP:
			c.no_compress = true;
			break;
		case OPT_NOSHA:
			c.no_sha = true;
			break;
		case OPT_CDC:
			c.cdc = true;
			break;
		case OPT_THREADS:
			if (!parse_int(optarg, 1, 64, &v))
				return usage(&c, "--threads wants 1..64");
			c.threads = (unsigned)v;
			break;
		case OPT_RPID:
			c.rp_id = optarg;
			break;
		case OPT_SOURCE:
			c.source = optarg;
			break;
		case OPT_RP:
			c.rp = optarg;
			break;
		case OPT_OUT:
			c.out_path = optarg;
			break;
		case OPT_NOFSYNC:
			c.no_fsync = true;
			break;
		case OPT_NODIO:
			c.no_dio = true;
			break;
		case OPT_PROGRESS:
			c.progress = true;
			break;
		case OPT_HELP:
			fputs(USAGE, out);
			return ENGINE_EXIT_OK;
		default:
			return usage(&c, "unknown option or missing argument");
		}
	}
	if (optind < argc - 1)
		return usage(&c, "unexpected argument");
	if (c.repo == NULL || c.keys == NULL || c.tenant == NULL)
		return usage(&c, "--repo, --keys and --tenant are required");
	if (!engine_tenant_id_valid(c.tenant))
		return usage(&c, "invalid --tenant (1..64 of A-Za-z0-9_.-)");
	if (strcmp(cmd, "backup") == 0)
		return cmd_backup(&c);
	if (strcmp(cmd, "list") == 0)
		return cmd_list(&c);
	if (strcmp(cmd, "restore") == 0)
		return cmd_restore(&c);
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(&c);
	return usage(&c, "unknown command");
}
