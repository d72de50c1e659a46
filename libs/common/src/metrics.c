#include "common/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

enum family_type { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM };

struct series {
	struct series *next;
	char *values[METRICS_MAX_LABELS]; /* owned */
	double value;                     /* counter, gauge */
	uint64_t *buckets;                /* histogram: nbounds + 1 non-cumulative counts */
	double sum;
	uint64_t count;
};

struct family {
	struct family *next;
	enum family_type type;
	char *name;
	char *help;
	size_t nlabels;
	char *labels[METRICS_MAX_LABELS];
	double bounds[METRICS_MAX_BUCKETS];
	size_t nbounds;
	pthread_mutex_t lock; /* protects the series list and every value in it */
	struct series *head;
	struct series *tail;
};

/* The public types are the family itself; the casts below are the only conversions. */
struct metrics_counter {
	struct family f;
};
struct metrics_gauge {
	struct family f;
};
struct metrics_histogram {
	struct family f;
};

struct metrics {
	pthread_mutex_t lock; /* protects the family list */
	struct family *head;
	struct family *tail;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	pthread_mutex_init(&m->lock, NULL);
	return m;
}

static void family_free(struct family *f)
{
	struct series *s = f->head;

	while (s) {
		struct series *next = s->next;

		for (size_t i = 0; i < f->nlabels; i++)
			free(s->values[i]);
		free(s->buckets);
		free(s);
		s = next;
	}
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	pthread_mutex_destroy(&f->lock);
	free(f->name);
	free(f->help);
	free(f);
}

void metrics_free(struct metrics *m)
{
	struct family *f;

	if (m == NULL)
		return;
	f = m->head;
	while (f) {
		struct family *next = f->next;

		family_free(f);
		f = next;
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static bool name_valid(const char *s, size_t n, bool colon)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		          (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');

		if (!ok)
			return false;
	}
	return true;
}

static enum status parse_labels(struct family *f, const char *labels, struct err *e)
{
	const char *p = labels;

	if (labels == NULL || *labels == '\0')
		return STATUS_OK;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (f->nlabels == METRICS_MAX_LABELS)
			return err_set(e, STATUS_INVALID, "metric %s: more than %d labels", f->name,
			               METRICS_MAX_LABELS);
		if (!name_valid(p, n, false) || (n >= 2 && p[0] == '_' && p[1] == '_'))
			return err_set(e, STATUS_INVALID, "metric %s: invalid label name '%.*s'",
			               f->name, (int)n, p);
		if (f->type == FAM_HISTOGRAM && n == 2 && memcmp(p, "le", 2) == 0)
			return err_set(e, STATUS_INVALID, "metric %s: label 'le' is reserved",
			               f->name);
		for (size_t i = 0; i < f->nlabels; i++) {
			if (strlen(f->labels[i]) == n && memcmp(f->labels[i], p, n) == 0)
				return err_set(e, STATUS_INVALID,
				               "metric %s: duplicate label '%.*s'", f->name, (int)n,
				               p);
		}
		f->labels[f->nlabels++] = xstrndup(p, n);
		if (end == NULL)
			break;
		p = end + 1;
	}
	return STATUS_OK;
}

static struct series *series_new(const struct family *f, const char *const *values)
{
	struct series *s = xcalloc(1, sizeof(*s));

	for (size_t i = 0; i < f->nlabels; i++)
		s->values[i] = xstrdup(values && values[i] ? values[i] : "");
	if (f->type == FAM_HISTOGRAM)
		s->buckets = xcalloc(f->nbounds + 1, sizeof(*s->buckets));
	return s;
}

/* Caller holds f->lock. Creates the series when create is set, else may return NULL. */
static struct series *series_find(struct family *f, const char *const *values, bool create)
{
	struct series *s;

	for (s = f->head; s; s = s->next) {
		size_t i;

		for (i = 0; i < f->nlabels; i++) {
			const char *v = values && values[i] ? values[i] : "";

			if (strcmp(s->values[i], v) != 0)
				break;
		}
		if (i == f->nlabels)
			return s;
	}
	if (!create)
		return NULL;
	s = series_new(f, values);
	if (f->tail)
		f->tail->next = s;
	else
		f->head = s;
	f->tail = s;
	return s;
}

static struct family *family_register(struct metrics *m, enum family_type type, const char *name,
                                      const char *help, const char *labels, const double *bounds,
                                      size_t nbounds, struct err *e)
{
	struct family *f;
	size_t size = type == FAM_COUNTER ? sizeof(struct metrics_counter)
	              : type == FAM_GAUGE ? sizeof(struct metrics_gauge)
	                                  : sizeof(struct metrics_histogram);

	if (name == NULL || !name_valid(name, strlen(name), true)) {
		err_set(e, STATUS_INVALID, "invalid metric name '%s'", name ? name : "(null)");
		return NULL;
	}
	/* Allocated as the public type, whose first (only) member is the family. */
	f = xcalloc(1, size);
	f->type = type;
	f->name = xstrdup(name);
	f->help = xstrdup(help ? help : "");
	pthread_mutex_init(&f->lock, NULL);
	if (parse_labels(f, labels, e) != STATUS_OK)
		goto fail;
	if (type == FAM_HISTOGRAM) {
		if (bounds == NULL || nbounds == 0 || nbounds > METRICS_MAX_BUCKETS) {
			err_set(e, STATUS_INVALID, "metric %s: need 1..%d buckets", name,
			        METRICS_MAX_BUCKETS);
			goto fail;
		}
		for (size_t i = 0; i < nbounds; i++) {
			if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
				err_set(e, STATUS_INVALID,
				        "metric %s: bucket bounds must be finite and increasing",
				        name);
				goto fail;
			}
			f->bounds[i] = bounds[i];
		}
		f->nbounds = nbounds;
	}

	pthread_mutex_lock(&m->lock);
	for (struct family *o = m->head; o; o = o->next) {
		if (strcmp(o->name, name) == 0) {
			pthread_mutex_unlock(&m->lock);
			err_set(e, STATUS_CONFLICT, "metric %s is already registered", name);
			goto fail;
		}
	}
	/* A family without labels always has its one series, so it renders as 0. */
	if (f->nlabels == 0)
		series_find(f, NULL, true);
	if (m->tail)
		m->tail->next = f;
	else
		m->head = f;
	m->tail = f;
	pthread_mutex_unlock(&m->lock);
	return f;

fail:
	family_free(f);
	return NULL;
}

struct metrics_counter *metrics_counter_new(struct metrics *m, const char *name, const char *help,
                                            const char *labels, struct err *e)
{
	return (struct metrics_counter *)family_register(m, FAM_COUNTER, name, help, labels, NULL,
	                                                 0, e);
}

struct metrics_gauge *metrics_gauge_new(struct metrics *m, const char *name, const char *help,
                                        const char *labels, struct err *e)
{
	return (struct metrics_gauge *)family_register(m, FAM_GAUGE, name, help, labels, NULL, 0,
	                                               e);
}

struct metrics_histogram *metrics_histogram_new(struct metrics *m, const char *name,
                                                const char *help, const char *labels,
                                                const double *bounds, size_t nbounds, struct err *e)
{
	return (struct metrics_histogram *)family_register(m, FAM_HISTOGRAM, name, help, labels,
	                                                   bounds, nbounds, e);
}

void metrics_counter_add(struct metrics_counter *c, const char *const *values, double v)
{
	if (c == NULL || !(v >= 0))
		return;
	pthread_mutex_lock(&c->f.lock);
	series_find(&c->f, values, true)->value += v;
	pthread_mutex_unlock(&c->f.lock);
}

void metrics_counter_inc(struct metrics_counter *c, const char *const *values)
{
	metrics_counter_add(c, values, 1);
}

static double family_get(struct family *f, const char *const *values)
{
	struct series *s;
	double v = 0;

	pthread_mutex_lock(&f->lock);
	s = series_find(f, values, false);
	if (s)
		v = s->value;
	pthread_mutex_unlock(&f->lock);
	return v;
}

double metrics_counter_get(struct metrics_counter *c, const char *const *values)
{
	return c ? family_get(&c->f, values) : 0;
}

void metrics_gauge_set(struct metrics_gauge *g, const char *const *values, double v)
{
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->f.lock);
	series_find(&g->f, values, true)->value = v;
	pthread_mutex_unlock(&g->f.lock);
}

void metrics_gauge_add(struct metrics_gauge *g, const char *const *values, double v)
{
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->f.lock);
	series_find(&g->f, values, true)->value += v;
	pthread_mutex_unlock(&g->f.lock);
}

double metrics_gauge_get(struct metrics_gauge *g, const char *const *values)
{
	return g ? family_get(&g->f, values) : 0;
}

void metrics_histogram_observe(struct metrics_histogram *h, const char *const *values, double v)
{
	struct series *s;
	size_t i;

	if (h == NULL || isnan(v))
		return;
	for (i = 0; i < h->f.nbounds; i++) {
		if (v <= h->f.bounds[i])
			break;
	}
	pthread_mutex_lock(&h->f.lock);
	s = series_find(&h->f, values, true);
	s->buckets[i]++;
	s->sum += v;
	s->count++;
	pthread_mutex_unlock(&h->f.lock);
}

uint64_t metrics_histogram_count(struct metrics_histogram *h, const char *const *values)
{
	struct series *s;
	uint64_t n = 0;

	if (h == NULL)
		return 0;
	pthread_mutex_lock(&h->f.lock);
	s = series_find(&h->f, values, false);
	if (s)
		n = s->count;
	pthread_mutex_unlock(&h->f.lock);
	return n;
}

void metrics_format_double(char *out, size_t cap, double v)
{
	if (isnan(v)) {
		snprintf(out, cap, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* Shortest of %.15g..%.17g that reads back exactly: 0.1 stays "0.1". */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, cap, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static void put_escaped(struct buf *out, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(out, "\\\\");
		else if (*s == '\n')
			buf_puts(out, "\\n");
		else if (quote && *s == '"')
			buf_puts(out, "\\\"");
		else
			buf_append(out, s, 1);
	}
}

/* name{l1="v1",l2="v2"[,le="x"]} value\n */
static void put_sample(struct buf *out, const struct family *f, const char *suffix,
                       const struct series *s, const char *le, double value)
{
	char num[40];
	bool any = false;

	buf_puts(out, f->name);
	buf_puts(out, suffix);
	for (size_t i = 0; i < f->nlabels; i++) {
		buf_puts(out, any ? "," : "{");
		any = true;
		buf_puts(out, f->labels[i]);
		buf_puts(out, "=\"");
		put_escaped(out, s->values[i], true);
		buf_puts(out, "\"");
	}
	if (le) {
		buf_puts(out, any ? "," : "{");
		any = true;
		buf_printf(out, "le=\"%s\"", le);
	}
	if (any)
		buf_puts(out, "}");
	metrics_format_double(num, sizeof(num), value);
	buf_printf(out, " %s\n", num);
}

static void render_family(struct buf *out, struct family *f)
{
	static const char *const type_names[] = { "counter", "gauge", "histogram" };

	buf_printf(out, "# HELP %s ", f->name);
	put_escaped(out, f->help, false);
	buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
	pthread_mutex_lock(&f->lock);
	for (const struct series *s = f->head; s; s = s->next) {
		uint64_t cum = 0;
		char le[40];

		if (f->type != FAM_HISTOGRAM) {
			put_sample(out, f, "", s, NULL, s->value);
			continue;
		}
		for (size_t i = 0; i <= f->nbounds; i++) {
			cum += s->buckets[i];
			if (i < f->nbounds)
				metrics_format_double(le, sizeof(le), f->bounds[i]);
			else
				snprintf(le, sizeof(le), "+Inf");
			put_sample(out, f, "_bucket", s, le, (double)cum);
		}
		put_sample(out, f, "_sum", s, NULL, s->sum);
		put_sample(out, f, "_count", s, NULL, (double)s->count);
	}
	pthread_mutex_unlock(&f->lock);
}

void metrics_render(struct metrics *m, struct buf *out)
{
	/* Lock order: registry, then one family at a time (observers take only the family). */
	pthread_mutex_lock(&m->lock);
	for (struct family *f = m->head; f; f = f->next)
		render_family(out, f);
	pthread_mutex_unlock(&m->lock);
}
