#include "common/jsonh.h"

#include <stdio.h>
#include <string.h>

enum status jsonh_check_fields(const json_t *obj, const char *const allowed[], struct err *e)
{
	const char *key;
	json_t *val;

	if (!json_is_object(obj))
		return err_set(e, STATUS_INVALID, "request body must be a JSON object");
	/* jansson's iteration API takes a non-const object but does not modify it. */
	json_object_foreach((json_t *)obj, key, val)
	{
		size_t i;

		for (i = 0; allowed && allowed[i]; i++) {
			if (strcmp(allowed[i], key) == 0)
				break;
		}
		if (allowed == NULL || allowed[i] == NULL)
			return err_set(e, STATUS_INVALID, "unknown field '%.64s'", key);
	}
	return STATUS_OK;
}

/* Looks key up. @returns 1 with *v set when present and not null, 0 when absent/null and
 * optional, or -1 after filling *e when absent/null but required. */
static int lookup(const json_t *obj, const char *key, unsigned flags, json_t **v, struct err *e)
{
	*v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	if (*v != NULL && !json_is_null(*v))
		return 1;
	if (flags & JSONH_REQUIRED) {
		err_set(e, STATUS_INVALID, "field '%s' is required", key);
		return -1;
	}
	return 0;
}

enum status jsonh_get_str(const json_t *obj, const char *key, unsigned flags, size_t max_len,
                          const char **out, struct err *e)
{
	json_t *v;
	int r = lookup(obj, key, flags, &v, e);

	if (r <= 0)
		return r < 0 ? STATUS_INVALID : STATUS_OK;
	if (!json_is_string(v))
		return err_set(e, STATUS_INVALID, "field '%s' must be a string", key);
	if ((flags & JSONH_NONEMPTY) && json_string_length(v) == 0)
		return err_set(e, STATUS_INVALID, "field '%s' must not be empty", key);
	if (max_len > 0 && json_string_length(v) > max_len)
		return err_set(e, STATUS_INVALID, "field '%s' is longer than %zu bytes", key,
		               max_len);
	*out = json_string_value(v);
	return STATUS_OK;
}

enum status jsonh_get_int(const json_t *obj, const char *key, unsigned flags, int64_t min,
                          int64_t max, int64_t *out, struct err *e)
{
	json_t *v;
	int r = lookup(obj, key, flags, &v, e);
	json_int_t n;

	if (r <= 0)
		return r < 0 ? STATUS_INVALID : STATUS_OK;
	if (!json_is_integer(v))
		return err_set(e, STATUS_INVALID, "field '%s' must be an integer", key);
	n = json_integer_value(v);
	if (n < min || n > max)
		return err_set(e, STATUS_INVALID, "field '%s' must be between %lld and %lld", key,
		               (long long)min, (long long)max);
	*out = (int64_t)n;
	return STATUS_OK;
}

enum status jsonh_get_num(const json_t *obj, const char *key, unsigned flags, double *out,
                          struct err *e)
{
	json_t *v;
	int r = lookup(obj, key, flags, &v, e);

	if (r <= 0)
		return r < 0 ? STATUS_INVALID : STATUS_OK;
	if (!json_is_number(v))
		return err_set(e, STATUS_INVALID, "field '%s' must be a number", key);
	*out = json_number_value(v);
	return STATUS_OK;
}

enum status jsonh_get_bool(const json_t *obj, const char *key, unsigned flags, bool *out,
                           struct err *e)
{
	json_t *v;
	int r = lookup(obj, key, flags, &v, e);

	if (r <= 0)
		return r < 0 ? STATUS_INVALID : STATUS_OK;
	if (!json_is_boolean(v))
		return err_set(e, STATUS_INVALID, "field '%s' must be true or false", key);
	*out = json_is_true(v);
	return STATUS_OK;
}

enum status jsonh_get_obj(const json_t *obj, const char *key, unsigned flags, json_t **out,
                          struct err *e)
{
	json_t *v;
	int r = lookup(obj, key, flags, &v, e);

	if (r <= 0)
		return r < 0 ? STATUS_INVALID : STATUS_OK;
	if (!json_is_object(v))
		return err_set(e, STATUS_INVALID, "field '%s' must be an object", key);
	*out = v;
	return STATUS_OK;
}

enum status jsonh_get_arr(const json_t *obj, const char *key, unsigned flags, json_t **out,
                          struct err *e)
{
	json_t *v;
	int r = lookup(obj, key, flags, &v, e);

	if (r <= 0)
		return r < 0 ? STATUS_INVALID : STATUS_OK;
	if (!json_is_array(v))
		return err_set(e, STATUS_INVALID, "field '%s' must be an array", key);
	*out = v;
	return STATUS_OK;
}

enum status jsonh_get_uuid(const json_t *obj, const char *key, unsigned flags, const char **out,
                           struct err *e)
{
	const char *s = NULL;
	enum status st = jsonh_get_str(obj, key, flags, 0, &s, e);

	if (st != STATUS_OK || s == NULL)
		return st;
	if (!jsonh_uuid_valid(s))
		return err_set(e, STATUS_INVALID, "field '%s' must be a UUID", key);
	*out = s;
	return STATUS_OK;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool jsonh_uuid_valid(const char *s)
{
	if (s == NULL)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !is_hex(s[i]))
			return false;
	}
	return s[36] == '\0';
}

bool jsonh_utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false; /* continuation byte, 0xc0/0xc1 overlong lead, or > 0xf4 */
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

char *jsonh_time_format(const struct timespec *ts, char *out)
{
	struct tm tm;
	time_t secs = ts->tv_sec;
	int ms = (int)((ts->tv_nsec / 1000000) % 1000);
	char tmp[96];

	if (gmtime_r(&secs, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
		snprintf(out, JSONH_TIME_LEN, "1970-01-01T00:00:00.000Z");
		return out;
	}
	/* Every field is in range here, so the text is exactly JSONH_TIME_LEN - 1 bytes. */
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
	memcpy(out, tmp, JSONH_TIME_LEN - 1);
	out[JSONH_TIME_LEN - 1] = '\0';
	return out;
}

char *jsonh_time_format_us(int64_t unix_us, char *out)
{
	struct timespec ts;
	int64_t secs = unix_us / 1000000;
	int64_t rem = unix_us % 1000000;

	if (rem < 0) {
		rem += 1000000;
		secs--;
	}
	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)rem * 1000;
	return jsonh_time_format(&ts, out);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

enum status jsonh_time_parse(const char *s, int64_t *unix_us, struct err *e)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0;
	int64_t frac_us = 0, offset_s = 0;
	const char *p;
	bool leap;

	if (s == NULL || strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' ||
	    !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2, &h) ||
	    s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
		goto bad;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
	    h > 23 || mi > 59 || sec > 60)
		goto bad;
	p = s + 19;
	if (*p == '.') {
		int n = 0;

		for (p++; *p >= '0' && *p <= '9'; p++, n++) {
			if (n < 6)
				frac_us = frac_us * 10 + (*p - '0');
		}
		if (n == 0 || n > 9)
			goto bad;
		for (; n < 6; n++)
			frac_us *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 ||
		    om > 59)
			goto bad;
		offset_s = ((int64_t)oh * 3600 + (int64_t)om * 60) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		goto bad;
	}
	if (*p != '\0')
		goto bad;
	if (sec == 60) /* leap second: clamp, as PostgreSQL does */
		sec = 59;
	*unix_us = (days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec -
	            offset_s) *
	                   1000000 +
	           frac_us;
	return STATUS_OK;
bad:
	return err_set(e, STATUS_INVALID, "invalid RFC 3339 timestamp '%.40s'", s ? s : "");
}

enum status jsonh_get_time(const json_t *obj, const char *key, unsigned flags, int64_t *unix_us,
                           struct err *e)
{
	const char *s = NULL;
	enum status st = jsonh_get_str(obj, key, flags, 0, &s, e);

	if (st != STATUS_OK || s == NULL)
		return st;
	if (jsonh_time_parse(s, unix_us, NULL) != STATUS_OK)
		return err_set(e, STATUS_INVALID, "field '%s' must be an RFC 3339 timestamp", key);
	return STATUS_OK;
}
