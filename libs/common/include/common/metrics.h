/* metrics.h - a small Prometheus metrics registry: counters, gauges and fixed-bucket
 * histograms with a few labels, rendered in the text exposition format 0.0.4.
 *
 * Thread-safety: everything here is safe to call from any thread at any time. Each metric
 * family has its own mutex; rendering locks one family at a time. Metric objects are
 * owned by their registry and stay valid until metrics_free().
 *
 * Label values are passed as an array with exactly as many entries as the family has
 * label names (NULL for a family without labels; a NULL entry means ""). Every distinct
 * combination of values creates a series that lives until the registry is freed, so
 * label values must come from a small bounded set (route patterns, not raw paths).
 */
#ifndef COMMON_METRICS_H
#define COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* At most this many label names per family and this many finite histogram buckets. */
#define METRICS_MAX_LABELS 6
#define METRICS_MAX_BUCKETS 32

/* Latency buckets in seconds, for `(const double[]){ METRICS_BUCKETS_LATENCY }`. */
#define METRICS_BUCKETS_LATENCY                                                                    \
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
#define METRICS_BUCKETS_LATENCY_N 13

struct metrics;
struct metrics_counter;
struct metrics_gauge;
struct metrics_histogram;

/** @brief Create an empty registry.
 *  @returns a new registry (never NULL; aborts on OOM); free it with metrics_free(). */
struct metrics *metrics_new(void);

/** @brief Free the registry and every metric registered in it. Accepts NULL.
 *  No other thread may use the registry or its metrics during or after the call. */
void metrics_free(struct metrics *m);

/** @brief Register a counter.
 *  @param name metric name, [a-zA-Z_:][a-zA-Z0-9_:]* (by convention ending in _total).
 *  @param help one-line description (copied; escaped on output).
 *  @param labels comma-separated label names ("route,method,code") or NULL/"" for none.
 *  @returns the counter, borrowed from m (valid until metrics_free(m)), or NULL with
 *  STATUS_INVALID (bad name, bad/duplicate/too many labels) or STATUS_CONFLICT (the name
 *  is already registered) in *e. */
struct metrics_counter *metrics_counter_new(struct metrics *m, const char *name, const char *help,
                                            const char *labels, struct err *e);

/** @brief Add v (must be >= 0; negative or NaN values are ignored) to the series
 *  selected by values. */
void metrics_counter_add(struct metrics_counter *c, const char *const *values, double v);

/** @brief Add 1 to the series selected by values. */
void metrics_counter_inc(struct metrics_counter *c, const char *const *values);

/** @brief Current value of a series; 0 if the series does not exist yet. */
double metrics_counter_get(struct metrics_counter *c, const char *const *values);

/** @brief Register a gauge. Same arguments, ownership and errors as metrics_counter_new(). */
struct metrics_gauge *metrics_gauge_new(struct metrics *m, const char *name, const char *help,
                                        const char *labels, struct err *e);

/** @brief Set the series selected by values to v. */
void metrics_gauge_set(struct metrics_gauge *g, const char *const *values, double v);

/** @brief Add v (may be negative) to the series selected by values. */
void metrics_gauge_add(struct metrics_gauge *g, const char *const *values, double v);

/** @brief Current value of a series; 0 if the series does not exist yet. */
double metrics_gauge_get(struct metrics_gauge *g, const char *const *values);

/** @brief Register a histogram with fixed buckets.
 *  @param bounds upper bounds (inclusive, "le"), finite and strictly increasing; copied.
 *  The +Inf bucket is implicit. 1 <= nbounds <= METRICS_MAX_BUCKETS. The label name "le"
 *  is reserved. Other arguments, ownership and errors as metrics_counter_new(). */
struct metrics_histogram *metrics_histogram_new(struct metrics *m, const char *name,
                                                const char *help, const char *labels,
                                                const double *bounds, size_t nbounds,
                                                struct err *e);

/** @brief Record one observation v in the series selected by values (NaN is ignored). */
void metrics_histogram_observe(struct metrics_histogram *h, const char *const *values, double v);

/** @brief Number of observations of a series; 0 if the series does not exist yet. */
uint64_t metrics_histogram_count(struct metrics_histogram *h, const char *const *values);

/** @brief Append the whole registry to out in Prometheus text format 0.0.4: families in
 *  registration order, each with # HELP and # TYPE lines, series in creation order.
 *  Content type to serve it with: "text/plain; version=0.0.4; charset=utf-8". */
void metrics_render(struct metrics *m, struct buf *out);

/** @brief Format v the way metrics_render() does ("+Inf", "-Inf", "NaN", or the shortest
 *  decimal that reads back as the same double) into out (cap >= 32 recommended). */
void metrics_format_double(char *out, size_t cap, double v);

#endif
