/* throttle.c - sliding-window counters of failed logins. */
#include "throttle.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

/* One key: the timestamps of its last `max` failures, a ring. */
struct win {
	char *key;
	int64_t *ts;
	int n, head; /* head = index of the oldest */
};

struct table {
	struct win *slots;
	size_t cap, used;
	int max;
};

struct auth_throttle {
	pthread_mutex_t mu;
	struct table acct, addr;
	int window_s, max_keys;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static void table_init(struct table *tb, int max)
{
	tb->cap = 256;
	tb->used = 0;
	tb->max = max;
	tb->slots = xcalloc(tb->cap, sizeof(*tb->slots));
}

static void win_free(struct win *w)
{
	free(w->key);
	free(w->ts);
	memset(w, 0, sizeof(*w));
}

static void table_cleanup(struct table *tb)
{
	for (size_t i = 0; i < tb->cap; i++)
		win_free(&tb->slots[i]);
	free(tb->slots);
}

static struct win *slot(struct table *tb, const char *key)
{
	size_t i = hash_str(key) & (tb->cap - 1);

	while (tb->slots[i].key && strcmp(tb->slots[i].key, key) != 0)
		i = (i + 1) & (tb->cap - 1);
	return &tb->slots[i];
}

/* Number of failures of w within the window ending at now; drops older ones. */
static int win_count(struct win *w, int max, int64_t now, int window_s)
{
	while (w->n > 0 && w->ts[w->head] <= now - window_s) {
		w->head = (w->head + 1) % max;
		w->n--;
	}
	return w->n;
}

/* Rebuild with capacity newcap, dropping windows with no failure left in them. */
static void table_rehash(struct table *tb, size_t newcap, int64_t now, int window_s)
{
	struct table old = *tb;

	tb->slots = xcalloc(newcap, sizeof(*tb->slots));
	tb->cap = newcap;
	tb->used = 0;
	for (size_t i = 0; i < old.cap; i++) {
		struct win *w = &old.slots[i];

		if (!w->key)
			continue;
		if (win_count(w, old.max, now, window_s) == 0) {
			win_free(w);
			continue;
		}
		*slot(tb, w->key) = *w;
		tb->used++;
	}
	free(old.slots);
}

struct auth_throttle *auth_throttle_new(const struct auth_throttle_cfg *cfg)
{
	struct auth_throttle *t = xcalloc(1, sizeof(*t));
	int am = cfg && cfg->account_max > 0 ? cfg->account_max : 5;
	int dm = cfg && cfg->address_max > 0 ? cfg->address_max : 20;

	t->window_s = cfg && cfg->window_s > 0 ? cfg->window_s : 900;
	t->max_keys = cfg && cfg->max_keys > 0 ? cfg->max_keys : 100000;
	table_init(&t->acct, am);
	table_init(&t->addr, dm);
	pthread_mutex_init(&t->mu, NULL);
	return t;
}

void auth_throttle_free(struct auth_throttle *t)
{
	if (!t)
		return;
	table_cleanup(&t->acct);
	table_cleanup(&t->addr);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* @returns seconds until key may try again, 0 if it may now. */
static int blocked_for(struct table *tb, const char *key, int64_t now, int window_s)
{
	struct win *w;
	int64_t until;

	if (!key)
		return 0;
	w = slot(tb, key);
	if (!w->key || win_count(w, tb->max, now, window_s) < tb->max)
		return 0;
	/* Blocked until the oldest failure of the last `max` leaves the window. */
	until = w->ts[w->head] + window_s;
	return until > now ? (int)(until - now) : 1;
}

bool auth_throttle_allow(struct auth_throttle *t, const char *account, const char *address,
                         int64_t now, int *retry_after_s)
{
	int a, b;

	pthread_mutex_lock(&t->mu);
	a = blocked_for(&t->acct, account, now, t->window_s);
	b = blocked_for(&t->addr, address, now, t->window_s);
	pthread_mutex_unlock(&t->mu);
	*retry_after_s = a > b ? a : b;
	return *retry_after_s == 0;
}

static void record(struct auth_throttle *t, struct table *tb, const char *key, int64_t now)
{
	struct win *w;

	if (!key)
		return;
	if ((tb->used + 1) * 2 > tb->cap) {
		table_rehash(tb, tb->cap, now, t->window_s);
		if ((tb->used + 1) * 2 > tb->cap && tb->used < (size_t)t->max_keys)
			table_rehash(tb, tb->cap * 2, now, t->window_s);
		if ((tb->used + 1) * 2 > tb->cap)
			return; /* at the memory bound: this key is not tracked */
	}
	w = slot(tb, key);
	if (!w->key) {
		w->key = xstrdup(key);
		w->ts = xcalloc((size_t)tb->max, sizeof(*w->ts));
		tb->used++;
	}
	win_count(w, tb->max, now, t->window_s);
	if (w->n == tb->max) { /* keep the newest `max` */
		w->head = (w->head + 1) % tb->max;
		w->n--;
	}
	w->ts[(w->head + w->n) % tb->max] = now;
	w->n++;
}

void auth_throttle_fail(struct auth_throttle *t, const char *account, const char *address,
                        int64_t now)
{
	pthread_mutex_lock(&t->mu);
	record(t, &t->acct, account, now);
	record(t, &t->addr, address, now);
	pthread_mutex_unlock(&t->mu);
}

void auth_throttle_success(struct auth_throttle *t, const char *account)
{
	struct win *w;

	if (!account)
		return;
	pthread_mutex_lock(&t->mu);
	w = slot(&t->acct, account);
	if (w->key) {
		w->n = 0;
		w->head = 0;
	}
	pthread_mutex_unlock(&t->mu);
}
