#include "common/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xalloc.h"

extern char **environ;

char *cfg_var_name(char *buf, size_t cap, const char *service, const char *key)
{
	size_t n = 0;
	const char *parts[3] = { "CAIRN_", service, key };

	for (int p = 0; p < 3; p++) {
		if (parts[p] == NULL)
			continue;
		for (const char *s = parts[p]; *s && n + 2 < cap; s++)
			buf[n++] = (char)toupper((unsigned char)(*s == '-' ? '_' : *s));
		if (p == 1 && n + 2 < cap)
			buf[n++] = '_';
	}
	buf[n] = '\0';
	return buf;
}

enum status cfg_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end = NULL;
	long long v;

	if (s == NULL || *s == '\0')
		return STATUS_INVALID;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return STATUS_INVALID;
	*out = v;
	return STATUS_OK;
}

enum status cfg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "1", "yes", "on" };
	static const char *const no[] = { "false", "0", "no", "off" };

	for (size_t i = 0; s && i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return STATUS_OK;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return STATUS_OK;
		}
	}
	return STATUS_INVALID;
}

static const char *env_get(const char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (const char *const *p = envp; p && *p; p++) {
		if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
			return *p + n + 1;
	}
	return NULL;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static const struct cfg_key *find_key(const struct cfg_key *keys, size_t nkeys, const char *name)
{
	for (size_t i = 0; i < nkeys; i++) {
		if (strcasecmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

static const struct cfg_key *find_in_sections(const struct cfg_section *sec, size_t nsec,
                                              const char *name);

/* Store one textual value into the field described by k; `origin` names where it came
 * from (an environment variable or file:line) for the error message. */
static enum status store(const struct cfg_key *k, void *out, const char *val, const char *origin,
                         struct err *e)
{
	char *field = (char *)out + k->offset;
	long long iv;
	bool bv;

	switch (k->type) {
	case CFG_T_INT:
		if (cfg_parse_int(val, k->min, k->max, &iv) != STATUS_OK)
			return err_set(
			        e, STATUS_INVALID,
			        "%s: invalid value '%s': expected an integer in %lld..%lld (%s)",
			        origin, val, k->min, k->max, k->help);
		memcpy(field, &iv, sizeof(iv));
		break;
	case CFG_T_BOOL:
		if (cfg_parse_bool(val, &bv) != STATUS_OK)
			return err_set(e, STATUS_INVALID,
			               "%s: invalid value '%s': expected true or false (%s)",
			               origin, val, k->help);
		memcpy(field, &bv, sizeof(bv));
		break;
	case CFG_T_STR:
	case CFG_T_SECRET: {
		char *old;
		char *nv = xstrdup(val);

		memcpy(&old, field, sizeof(old));
		free(old);
		memcpy(field, &nv, sizeof(nv));
		break;
	}
	}
	return STATUS_OK;
}

/* Apply the file's lines that belong to section `which`; a key that no section knows is an
 * error. */
static enum status load_file(const struct cfg_section *sec, size_t nsec, size_t which,
                             const char *path, struct err *e)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	char origin[512];
	int lineno = 0;
	enum status st = STATUS_OK;

	if (f == NULL)
		return err_set(e, STATUS_INVALID, "CAIRN_CONFIG_FILE: cannot open '%s': %s", path,
		               strerror(errno));
	while (st == STATUS_OK && fgets(line, sizeof(line), f)) {
		char *s = trim(line);
		char *eq;
		const struct cfg_key *k;

		lineno++;
		if (*s == '\0' || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (eq == NULL) {
			st = err_set(e, STATUS_INVALID, "%s:%d: expected 'key = value'", path,
			             lineno);
			break;
		}
		*eq = '\0';
		snprintf(origin, sizeof(origin), "%s:%d (%s)", path, lineno, trim(s));
		if (find_in_sections(sec, nsec, trim(s)) == NULL) {
			st = err_set(e, STATUS_INVALID, "%s: unknown setting", origin);
			break;
		}
		k = find_key(sec[which].keys, sec[which].nkeys, trim(s));
		if (k && k->svc_only)
			st = err_set(e, STATUS_INVALID,
			             "%s: set this per service with its CAIRN_<SERVICE>_ variable, "
			             "not in a shared file",
			             origin);
		else if (k)
			st = store(k, sec[which].out, trim(eq + 1), origin, e);
	}
	fclose(f);
	return st;
}

static const struct cfg_key *find_in_sections(const struct cfg_section *sec, size_t nsec,
                                              const char *name)
{
	for (size_t i = 0; i < nsec; i++) {
		const struct cfg_key *k = find_key(sec[i].keys, sec[i].nkeys, name);

		if (k)
			return k;
	}
	return NULL;
}

static enum status load_env(const struct cfg_section *s, const char *service,
                            const char *const *envp, struct err *e)
{
	char name[128];
	const char *v;
	enum status st;

	for (size_t i = 0; i < s->nkeys; i++) {
		cfg_var_name(name, sizeof(name), NULL, s->keys[i].name);
		v = s->keys[i].svc_only ? NULL : env_get(envp, name);
		if (v) {
			st = store(&s->keys[i], s->out, v, name, e);
			if (st != STATUS_OK)
				return st;
		}
		cfg_var_name(name, sizeof(name), service, s->keys[i].name);
		v = env_get(envp, name);
		if (v) {
			st = store(&s->keys[i], s->out, v, name, e);
			if (st != STATUS_OK)
				return st;
		}
	}
	return STATUS_OK;
}

static enum status check_required(const struct cfg_section *s, const char *service, struct err *e)
{
	char name[128];

	for (size_t i = 0; i < s->nkeys; i++) {
		char *sv;

		if (!s->keys[i].required ||
		    (s->keys[i].type != CFG_T_STR && s->keys[i].type != CFG_T_SECRET))
			continue;
		memcpy(&sv, (char *)s->out + s->keys[i].offset, sizeof(sv));
		if (sv == NULL || *sv == '\0')
			return err_set(e, STATUS_INVALID, "%s: required setting is missing (%s)",
			               cfg_var_name(name, sizeof(name), service, s->keys[i].name),
			               s->keys[i].help);
	}
	return STATUS_OK;
}

enum status cfg_load_sections(const struct cfg_section *sec, size_t nsec, const char *service,
                              const char *const *envp, struct err *e)
{
	char prefix[128];
	const char *v;
	enum status st;
	size_t plen;

	if (envp == NULL)
		envp = (const char *const *)environ;
	for (size_t s = 0; s < nsec; s++) {
		for (size_t i = 0; i < sec[s].nkeys; i++) {
			if (sec[s].keys[i].defval == NULL)
				continue;
			st = store(&sec[s].keys[i], sec[s].out, sec[s].keys[i].defval, "default",
			           e);
			if (st != STATUS_OK)
				return st;
		}
	}
	v = env_get(envp, "CAIRN_CONFIG_FILE");
	for (size_t s = 0; v && *v && s < nsec; s++) {
		st = load_file(sec, nsec, s, v, e);
		if (st != STATUS_OK)
			return st;
	}
	for (size_t s = 0; s < nsec; s++) {
		st = load_env(&sec[s], service, envp, e);
		if (st != STATUS_OK)
			return st;
	}
	/* Unknown CAIRN_<SVC>_* variables are typos: refuse them. */
	cfg_var_name(prefix, sizeof(prefix), service, NULL);
	plen = strlen(prefix);
	for (const char *const *p = envp; p && *p; p++) {
		const char *eq = strchr(*p, '=');
		char key[128];

		if (eq == NULL || strncmp(*p, prefix, plen) != 0)
			continue;
		snprintf(key, sizeof(key), "%.*s", (int)(eq - *p - (long)plen), *p + plen);
		if (find_in_sections(sec, nsec, key) == NULL)
			return err_set(e, STATUS_INVALID, "%.*s: unknown setting for service %s",
			               (int)(eq - *p), *p, service);
	}
	for (size_t s = 0; s < nsec; s++) {
		st = check_required(&sec[s], service, e);
		if (st != STATUS_OK)
			return st;
	}
	return STATUS_OK;
}

enum status cfg_load(const struct cfg_key *keys, size_t nkeys, const char *service,
                     const char *const *envp, void *out, struct err *e)
{
	struct cfg_section s = { keys, nkeys, out };

	return cfg_load_sections(&s, 1, service, envp, e);
}

void cfg_cleanup(const struct cfg_key *keys, size_t nkeys, void *out)
{
	for (size_t i = 0; i < nkeys; i++) {
		char *sv;

		if (keys[i].type != CFG_T_STR && keys[i].type != CFG_T_SECRET)
			continue;
		memcpy(&sv, (char *)out + keys[i].offset, sizeof(sv));
		free(sv);
		sv = NULL;
		memcpy((char *)out + keys[i].offset, &sv, sizeof(sv));
	}
}

/* A libpq URI may carry a password: postgresql://user:secret@host -> user:***@host. */
/* A connection string may carry a password: postgresql://user:secret@host, a
 * "?password=secret" parameter, or libpq's "password=secret" keyword. Each is shown as ***. */
static void redact_uri(struct buf *b, const char *v)
{
	const char *scheme = strstr(v, "://");
	const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
	const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
	const char *p = v;

	if (at && colon && colon < at) {
		buf_append(b, v, (size_t)(colon - v));
		buf_puts(b, ":***");
		p = at;
	}
	for (;;) {
		const char *pw = strstr(p, "password=");
		size_t skip;

		if (pw == NULL)
			break;
		buf_append(b, p, (size_t)(pw - p) + strlen("password="));
		buf_puts(b, "***");
		p = pw + strlen("password=");
		skip = strcspn(p, scheme ? "&" : " ");
		p += skip;
	}
	buf_puts(b, p);
}

void cfg_log(const struct cfg_key *keys, size_t nkeys, const char *service, const void *out)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "effective config:");
	for (size_t i = 0; i < nkeys; i++) {
		const char *field = (const char *)out + keys[i].offset;
		long long iv;
		bool bv;
		char *sv;

		buf_printf(&b, " %s=", keys[i].name);
		switch (keys[i].type) {
		case CFG_T_INT:
			memcpy(&iv, field, sizeof(iv));
			buf_printf(&b, "%lld", iv);
			break;
		case CFG_T_BOOL:
			memcpy(&bv, field, sizeof(bv));
			buf_puts(&b, bv ? "true" : "false");
			break;
		case CFG_T_STR:
			memcpy(&sv, field, sizeof(sv));
			if (sv)
				redact_uri(&b, sv);
			break;
		case CFG_T_SECRET:
			memcpy(&sv, field, sizeof(sv));
			buf_puts(&b, sv && *sv ? "***" : "");
			break;
		}
	}
	log_info("%s", b.data);
	buf_cleanup(&b);
}
