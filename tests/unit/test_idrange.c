// SPDX-License-Identifier: MIT
/*
 * Cuts of the task_id space (idrange.c) and the list body of a range
 * (json.c): whatever the ids, cuts are strictly between the bounds and
 * increasing, and ranges built on them partition the ids.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "idrange.h"
#include "json.h"

static int cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every cut strictly between lo and hi (NULL: open) and increasing. */
static bool cuts_ok(char *const *cuts, size_t n, const char *lo, const char *hi)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if ((lo && strcmp(cuts[i], lo) <= 0) ||
		    (hi && strcmp(cuts[i], hi) >= 0))
			return false;
		if (i && strcmp(cuts[i - 1], cuts[i]) >= 0)
			return false;
	}
	return true;
}

/* How many of the sorted ids fall in each range [cut, next cut). */
static void count_ranges(const char **ids, size_t n, char *const *cuts,
			 size_t ncuts, size_t *counts)
{
	size_t i, r = 0;

	memset(counts, 0, (ncuts + 1) * sizeof(*counts));
	for (i = 0; i < n; i++) {
		while (r < ncuts && strcmp(ids[i], cuts[r]) >= 0)
			r++;
		counts[r]++;
	}
}

static void test_quantiles(void)
{
	const char *ids[] = { "d", "b", "a", "c", "b", "e", "f", "h", "g" };
	const char *out[8];
	size_t n;

	/* 8 distinct ids, 4 ranges: cuts at places 2, 4, 6 */
	n = idrange_quantiles(ids, 9, NULL, NULL, 4, out);
	CHECK(n == 3);
	CHECK_STR(out[0], "c");
	CHECK_STR(out[1], "e");
	CHECK_STR(out[2], "g");
	/* only the ids strictly inside (b, g) count: c d e f */
	n = idrange_quantiles(ids, 9, "b", "g", 2, out);
	CHECK(n == 1);
	CHECK_STR(out[0], "e");
	/* more ranges than ids: no cut twice */
	n = idrange_quantiles(ids, 9, "b", "e", 8, out);
	CHECK(n == 2);
	CHECK_STR(out[0], "c");
	CHECK_STR(out[1], "d");
	/* nothing inside: no cuts */
	CHECK(idrange_quantiles(ids, 9, "h", NULL, 4, out) == 0);
	CHECK(idrange_quantiles(ids, 0, NULL, NULL, 4, out) == 0);
}

/* n ids "task_" + 12 hex digits from a fixed generator. */
static char **hex_ids(size_t n, unsigned seed)
{
	char **ids = calloc(n, sizeof(*ids));
	size_t i;
	int j;

	for (i = 0; i < n; i++) {
		char buf[32] = "task_";

		for (j = 0; j < 12; j++) {
			seed = seed * 1103515245u + 12345u;
			buf[5 + j] = "0123456789abcdef"[(seed >> 16) & 15];
		}
		ids[i] = strdup(buf);
	}
	qsort(ids, n, sizeof(*ids), cmp);
	return ids;
}

static void test_interpolate_hex(void)
{
	size_t n = 20000, ncuts, counts[9], i, sum = 0;
	char **ids = hex_ids(n, 7), *cuts[8];

	/* between the 1000th and the (n-1000)th id, 8 ranges */
	CHECK(idrange_interpolate(ids[999], ids[n - 1000],
				  (const char *const *)ids, 2000, 8, cuts,
				  &ncuts) == 0);
	CHECK(ncuts == 7);
	CHECK(cuts_ok(cuts, ncuts, ids[999], ids[n - 1000]));
	/* uniform ids: each range holds about an eighth of the middle */
	count_ranges((const char **)ids + 1000, n - 2000, cuts, ncuts, counts);
	for (i = 0; i <= ncuts; i++) {
		CHECK(counts[i] > (n - 2000) / 8 * 8 / 10);
		CHECK(counts[i] < (n - 2000) / 8 * 12 / 10);
		sum += counts[i];
	}
	CHECK(sum == n - 2000);
	for (i = 0; i < ncuts; i++) {
		CHECK(!strncmp(cuts[i], "task_", 5));
		free(cuts[i]);
	}
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static void test_interpolate_odd(void)
{
	char *cuts[16];
	size_t ncuts, i;

	/* adjacent ids: nothing fits between them */
	CHECK(idrange_interpolate("a", "a0", NULL, 0, 4, cuts, &ncuts) == 0);
	for (i = 0; i < ncuts; i++) {
		CHECK(cuts_ok(cuts, ncuts, "a", "a0"));
		free(cuts[i]);
	}
	/* no printable ASCII anywhere: a fallback alphabet, still inside */
	CHECK(idrange_interpolate("\xc3\xa4", "\xe6\x97\xa5", NULL, 0, 4, cuts,
				  &ncuts) == 0);
	CHECK(cuts_ok(cuts, ncuts, "\xc3\xa4", "\xe6\x97\xa5"));
	for (i = 0; i < ncuts; i++)
		free(cuts[i]);
	/*
	 * ids that differ inside a UTF-8 character (U+00E4 and U+00E5 share
	 * their first byte): the cut never keeps half a character
	 */
	CHECK(idrange_interpolate("x\xc3\xa4", "x\xc3\xa5zz", NULL, 0, 4, cuts,
				  &ncuts) == 0);
	CHECK(cuts_ok(cuts, ncuts, "x\xc3\xa4", "x\xc3\xa5zz"));
	for (i = 0; i < ncuts; i++) {
		const unsigned char *p = (const unsigned char *)cuts[i];

		/* "x", then either both bytes of a character or none */
		CHECK(p[1] != 0xc3 || (p[2] & 0xc0) == 0x80);
		CHECK(p[1] == 0xc3 || p[1] < 0x80);
		free(cuts[i]);
	}
	/* mixed case and punctuation: cuts between, increasing */
	CHECK(idrange_interpolate("A-1", "z~9", NULL, 0, 16, cuts, &ncuts) ==
	      0);
	CHECK(ncuts > 0 && cuts_ok(cuts, ncuts, "A-1", "z~9"));
	for (i = 0; i < ncuts; i++)
		free(cuts[i]);
}

static void test_count(void)
{
	CHECK(idrange_count(100000, 8000) == 13);
	CHECK(idrange_count(8000, 8000) == 1);
	CHECK(idrange_count(0, 8000) == 1);
	CHECK(idrange_count(100000, 0) == IDRANGE_MAX_CUTS + 1);
}

static void test_body(void)
{
	struct json_cond c = { "status", "eq", "\"FAILED\"", false, 0 };
	struct list_body b = { .sort_field = "task_id" };
	struct buf out = BUF_INIT(4096);

	b.range_lo = "a\"b";
	b.range_lo_incl = true;
	b.range_hi = "z";
	CHECK(json_list_body(&b, &out) == 0);
	CHECK_STR(buf_str(&out),
		  "{\"filters\":{\"AND\":[{\"AND\":[{\"field\":\"task_id\","
		  "\"operator\":\"gte\",\"value\":\"a\\\"b\"},{\"field\":"
		  "\"task_id\",\"operator\":\"lt\",\"value\":\"z\"}],"
		  "\"case_sensitive\":true}]},\"sort\":{\"field\":\"task_id\","
		  "\"direction\":\"asc\"}}");
	buf_release(&out);
	/* with the folder's conditions, which stay case-insensitive */
	b.conds = &c;
	b.nconds = 1;
	b.range_lo_incl = false;
	b.range_hi = NULL;
	CHECK(json_list_body(&b, &out) == 0);
	CHECK_STR(buf_str(&out),
		  "{\"filters\":{\"AND\":[{\"field\":\"status\",\"operator\":"
		  "\"eq\",\"value\":\"FAILED\"},{\"AND\":[{\"field\":"
		  "\"task_id\",\"operator\":\"gt\",\"value\":\"a\\\"b\"}],"
		  "\"case_sensitive\":true}]},\"sort\":{\"field\":\"task_id\","
		  "\"direction\":\"asc\"}}");
	buf_release(&out);
}

int main(void)
{
	json_init();
	test_quantiles();
	test_interpolate_hex();
	test_interpolate_odd();
	test_count();
	test_body();
	return check_done();
}
