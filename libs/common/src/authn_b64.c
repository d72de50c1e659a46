/* authn_b64.c - strict base64url without padding (RFC 4648 section 5, RFC 7515 section 2). */
#include <stdlib.h>
#include <string.h>

#include "common/authn.h"
#include "common/xalloc.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *authn_b64url_encode(const void *p, size_t n)
{
	const unsigned char *in = p;
	char *out = xmalloc(n / 3 * 4 + 5);
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
		out[o++] = alphabet[v & 63];
	}
	if (n - i == 1) {
		unsigned v = (unsigned)in[i] << 16;

		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
	} else if (n - i == 2) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;

		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return out;
}

static int val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

unsigned char *authn_b64url_decode(const char *s, size_t slen, size_t *n)
{
	unsigned char *out;
	size_t i, o = 0, rem = slen % 4;
	unsigned acc = 0;
	int bits = 0;

	if (rem == 1)
		return NULL;
	out = xmalloc(slen / 4 * 3 + 3 + 1);
	for (i = 0; i < slen; i++) {
		int d = val(s[i]);

		if (d < 0)
			goto bad;
		acc = (acc << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero (canonical encoding only). */
	if (acc != 0)
		goto bad;
	out[o] = '\0';
	*n = o;
	return out;
bad:
	free(out);
	return NULL;
}
