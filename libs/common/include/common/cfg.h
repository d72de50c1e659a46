/* cfg.h - configuration as a table (pgbouncer CF_ABS, redis createIntConfig).
 *
 * A service declares `static const struct cfg_key keys[]` describing the fields of its
 * own config struct. cfg_load() fills the struct from, in increasing precedence:
 * the defaults in the table, an optional file named by CAIRN_CONFIG_FILE (lines of
 * `key = value`, '#' comments), the shared variable CAIRN_<KEY>, and the
 * service-specific variable CAIRN_<SVC>_<KEY>. Every value is validated once; the
 * first invalid, missing or unknown setting stops loading with an error message that
 * names the variable. Variables starting with CAIRN_<SVC>_ that match no key are
 * errors (typos must not pass silently). KAFKA_* variables are not handled here: the
 * kafka module passes them to librdkafka.
 */
#ifndef COMMON_CFG_H
#define COMMON_CFG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

enum cfg_type {
	CFG_T_INT,    /* long long field, bounded by min..max */
	CFG_T_BOOL,   /* bool field: true/false/1/0/yes/no/on/off */
	CFG_T_STR,    /* char * field (owned by the struct, freed by cfg_cleanup) */
	CFG_T_SECRET, /* like STR, but redacted when logged */
};

struct cfg_key {
	const char *name;   /* lower_snake: "http_port" -> CAIRN_<SVC>_HTTP_PORT */
	const char *defval; /* NULL = no default */
	const char *help;   /* one line, shown in docs and errors */
	size_t offset;      /* offsetof(struct <svc>_cfg, field) */
	long long min, max; /* CFG_T_INT bounds */
	enum cfg_type type;
	bool required; /* a required key must end up non-empty */
	bool svc_only; /* read only CAIRN_<SVC>_<KEY>, never the shared CAIRN_<KEY> */
};

/* clang-format off */
#define CFG_KEY_(n, t, st, f, def, lo, hi, h, req, svc) \
	{ .name = (n), .defval = (def), .help = (h), .offset = offsetof(st, f), .min = (lo), \
	  .max = (hi), .type = (t), .required = (req), .svc_only = (svc) }
#define CFG_INT(n, st, f, def, lo, hi, h) CFG_KEY_(n, CFG_T_INT, st, f, def, lo, hi, h, false, false)
/* An integer read only from CAIRN_<SVC>_<KEY> (e.g. a port, which differs per service). */
#define CFG_INT_SVC(n, st, f, def, lo, hi, h) \
	CFG_KEY_(n, CFG_T_INT, st, f, def, lo, hi, h, false, true)
#define CFG_BOOL(n, st, f, def, h) CFG_KEY_(n, CFG_T_BOOL, st, f, def, 0, 1, h, false, false)
#define CFG_STR(n, st, f, def, req, h) CFG_KEY_(n, CFG_T_STR, st, f, def, 0, 0, h, req, false)
#define CFG_SECRET(n, st, f, def, req, h) \
	CFG_KEY_(n, CFG_T_SECRET, st, f, def, 0, 0, h, req, false)
/* clang-format on */

/** @brief Fill `out` (a zeroed struct the table describes) for `service` from `envp`
 *  (NULL = the process environment) and CAIRN_CONFIG_FILE.
 *  Strings in `out` are new allocations; release them with cfg_cleanup() (also on failure).
 *  @returns STATUS_OK, or STATUS_INVALID with e->msg naming the variable and the problem. */
enum status cfg_load(const struct cfg_key *keys, size_t nkeys, const char *service,
                     const char *const *envp, void *out, struct err *e) MUST_CHECK;

/* One table and the struct it fills, for cfg_load_sections(). */
struct cfg_section {
	const struct cfg_key *keys;
	size_t nkeys;
	void *out;
};

/** @brief cfg_load() over several tables at once (e.g. the common service settings and a
 *  service's own): a CAIRN_<SVC>_* variable is unknown only if no section has the key.
 *  On failure the caller still runs cfg_cleanup() on every section. */
enum status cfg_load_sections(const struct cfg_section *sec, size_t nsec, const char *service,
                              const char *const *envp, struct err *e) MUST_CHECK;

/** @brief Free the strings cfg_load() stored in `out`. Safe on a zeroed struct. */
void cfg_cleanup(const struct cfg_key *keys, size_t nkeys, void *out);

/** @brief Log the effective configuration as one info line, secrets shown as "***". */
void cfg_log(const struct cfg_key *keys, size_t nkeys, const char *service, const void *out);

/** @brief The environment variable name of key for service, e.g. CAIRN_MOVER_HTTP_PORT.
 *  Writes into buf (cap bytes). @returns buf. */
char *cfg_var_name(char *buf, size_t cap, const char *service, const char *key);

/** @brief Parse a whole decimal integer within [min,max] (strtoll based).
 *  @returns STATUS_OK or STATUS_INVALID. */
enum status cfg_parse_int(const char *s, long long min, long long max, long long *out) MUST_CHECK;

/** @brief Parse true/false/1/0/yes/no/on/off (case-insensitive). @returns OK or INVALID. */
enum status cfg_parse_bool(const char *s, bool *out) MUST_CHECK;

#endif
