/* SPDX-License-Identifier: MIT */
/*
 * idrange: where to cut a listing sorted by task_id into ranges that can
 * be fetched at once (api_ranges.c). Pure functions on strings: no I/O,
 * no locks, thread-safe. Ids compare as bytes (strcmp), which for UTF-8
 * is code point order, the order the API sorts strings in.
 *
 * The cuts only balance the ranges; they never decide what a listing
 * holds: a range is [cut, next cut), so every id falls in exactly one,
 * whatever the cuts are and whatever alphabet the ids use.
 */
#ifndef MIXPEEKFS_IDRANGE_H
#define MIXPEEKFS_IDRANGE_H

#include <stddef.h>

/* The most cuts one call makes (ranges are cuts + 1). */
#define IDRANGE_MAX_CUTS 1024

/*
 * Cuts at the quantiles of a sample of ids, for k ranges: the sample's
 * ids strictly between lo and hi (NULL: unbounded), sorted and without
 * repeats, taken at every (m / k)th place. ids is reordered (sorted);
 * out gets at most k - 1 pointers into ids, strictly increasing. Returns
 * how many. Used when the sample is spread over the listing (the first
 * page in the API's own order).
 */
size_t idrange_quantiles(const char **ids, size_t n, const char *lo,
			 const char *hi, size_t k, const char **out);

/*
 * Cuts spread evenly between lo and hi (both set, lo < hi), for k
 * ranges, counting in the printable ASCII bytes that lo, hi and the
 * sample ids use after the common prefix of lo and hi (their alphabet;
 * bytes outside it fall between its letters). Each cut is a new malloc'd string, printable ASCII after the
 * common prefix of lo and hi (cut back to a whole UTF-8 character),
 * strictly between lo and hi and increasing; at most k - 1 of them in
 * out. *nout says how many. 0 or -ENOMEM (nothing is left allocated).
 */
int idrange_interpolate(const char *lo, const char *hi, const char *const *ids,
			size_t n, size_t k, char **out, size_t *nout);

/* How many ranges a listing of total tasks gets: about per tasks each. */
size_t idrange_count(long total, long per);

#endif
