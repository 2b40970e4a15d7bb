// SPDX-License-Identifier: MIT
/*
 * idrange: cuts of the task_id space. Quantiles of a sample when one is
 * spread over the listing; otherwise a straight line between two known
 * ids, reading each id as a fraction written in the digits of the
 * alphabet the ids use ("task_3f..." and UUIDs use a few dozen bytes, so
 * counting in all 256 would crowd every cut into a corner).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "idrange.h"

/* Digits of a fraction: enough for a double's 53 bits in base 96. */
#define DIGITS_MAX 12

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool inside(const char *s, const char *lo, const char *hi)
{
	return (!lo || strcmp(s, lo) > 0) && (!hi || strcmp(s, hi) < 0);
}

size_t idrange_quantiles(const char **ids, size_t n, const char *lo,
			 const char *hi, size_t k, const char **out)
{
	size_t m = 0, i, j, nout = 0;

	if (k > IDRANGE_MAX_CUTS + 1)
		k = IDRANGE_MAX_CUTS + 1;
	qsort(ids, n, sizeof(*ids), cmp_str);
	/* keep the ids inside, once each, at the front */
	for (i = 0; i < n; i++)
		if (inside(ids[i], lo, hi) &&
		    (m == 0 || strcmp(ids[m - 1], ids[i])))
			ids[m++] = ids[i];
	for (j = 1; j < k && m > 0; j++) {
		const char *c = ids[m * j / k];

		if (nout == 0 || strcmp(out[nout - 1], c) < 0)
			out[nout++] = c;
	}
	return nout;
}

/* The printable ASCII bytes that occur in s, added to seen. */
static void learn(const char *s, bool *seen)
{
	for (; *s; s++)
		if (*s >= 0x20 && *s <= 0x7e)
			seen[(unsigned char)*s] = true;
}

struct alphabet {
	char letters[96];
	unsigned n;
};

/* The digit of byte c: 0 ends the id, letters count from 1. */
static double digit(const struct alphabet *a, unsigned char c)
{
	unsigned below = 0;

	while (below < a->n && (unsigned char)a->letters[below] < c)
		below++;
	if (below < a->n && (unsigned char)a->letters[below] == c)
		return 1.0 + below;
	return 0.5 + below; /* between two letters */
}

/* s (after the common prefix) as a fraction in [0, 1). */
static double fraction(const struct alphabet *a, const char *s, int digits)
{
	double base = a->n + 1.0, v = 0, scale = 1.0;
	int i;

	for (i = 0; i < digits && s[i]; i++) {
		scale /= base;
		v += digit(a, (unsigned char)s[i]) * scale;
	}
	return v;
}

/* prefix followed by the letters of fraction v; NULL on ENOMEM. */
static char *spell(const struct alphabet *a, const char *prefix, size_t plen,
		   double v, int digits)
{
	char *s = malloc(plen + (size_t)digits + 1);
	size_t len = plen;
	int i;

	if (!s)
		return NULL;
	memcpy(s, prefix, plen);
	for (i = 0; i < digits; i++) {
		double d;

		v *= a->n + 1.0;
		d = (double)(long)v; /* v >= 0 */
		v -= d;
		if (d < 1)
			break; /* the end of the id */
		if (d > a->n)
			d = a->n;
		s[len++] = a->letters[(unsigned)d - 1];
	}
	s[len] = '\0';
	return s;
}

static void free_all(char **out, size_t n)
{
	while (n)
		free(out[--n]);
}

int idrange_interpolate(const char *lo, const char *hi, const char *const *ids,
			size_t n, size_t k, char **out, size_t *nout)
{
	bool seen[128] = { false };
	struct alphabet a = { .n = 0 };
	double vlo, vhi, span;
	size_t plen = 0, i, j;
	int digits, c;

	*nout = 0;
	if (k > IDRANGE_MAX_CUTS + 1)
		k = IDRANGE_MAX_CUTS + 1;
	while (lo[plen] && lo[plen] == hi[plen])
		plen++;
	/* never cut a UTF-8 character in two */
	while (plen > 0 && ((unsigned char)lo[plen] & 0xc0) == 0x80)
		plen--;
	/* the alphabet of what follows the common prefix */
	learn(lo + plen, seen);
	learn(hi + plen, seen);
	for (i = 0; i < n; i++)
		if (!strncmp(ids[i], lo, plen))
			learn(ids[i] + plen, seen);
	for (c = 0x20; c <= 0x7e; c++)
		if (seen[c])
			a.letters[a.n++] = (char)c;
	if (a.n < 2) /* nothing to count in: two letters far apart */
		a = (struct alphabet){ .letters = "0z", .n = 2 };
	/* as many digits as a double holds exactly (53 bits) */
	for (digits = 0, span = 1;
	     digits < DIGITS_MAX && span * (a.n + 1.0) < 4503599627370496.0;
	     digits++)
		span *= a.n + 1.0;
	vlo = fraction(&a, lo + plen, digits);
	vhi = fraction(&a, hi + plen, digits);
	for (j = 1; j < k; j++) {
		char *cut = spell(&a, lo, plen,
				  vlo + (vhi - vlo) * (double)j / (double)k,
				  digits);

		if (!cut) {
			free_all(out, *nout);
			*nout = 0;
			return -ENOMEM;
		}
		if (inside(cut, lo, hi) &&
		    (*nout == 0 || strcmp(out[*nout - 1], cut) < 0))
			out[(*nout)++] = cut;
		else
			free(cut);
	}
	return 0;
}

size_t idrange_count(long total, long per)
{
	long k;

	if (per < 1)
		per = 1;
	k = (total + per - 1) / per;
	if (k < 1)
		k = 1;
	if (k > IDRANGE_MAX_CUTS + 1)
		k = IDRANGE_MAX_CUTS + 1;
	return (size_t)k;
}
