// SPDX-License-Identifier: MIT
/*
 * listing: one listing's snapshot: the ids in one block after the pointer
 * array, and an index of them sorted by id for listing_has.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "listing.h"

struct listing *listing_ref(struct listing *l)
{
	__atomic_add_fetch(&l->refs, 1, __ATOMIC_RELAXED);
	return l;
}

void listing_unref(struct listing *l)
{
	if (!l || __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL))
		return;
	free(l->ids);
	free(l->by_id);
	free(l);
}

static int cmp_index(const void *a, const void *b, void *ids)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	int c = strcmp(((const char **)ids)[x], ((const char **)ids)[y]);

	return c ? c : (x > y) - (x < y);
}

bool listing_has(const struct listing *l, const char *id)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->ids[l->by_id[mid]], id);

		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

int listing_new(struct buf *ids, size_t n, struct listing **out, size_t *dups)
{
	struct listing *l = calloc(1, sizeof(*l));
	char *blob, *p;
	size_t i, len, keep;
	bool *dup = NULL;

	if (!l)
		return -ENOMEM;
	l->refs = 1;
	l->fetched = time(NULL);
	blob = buf_detach(ids, &len);
	l->ids = malloc((n + 1) * sizeof(*l->ids) + len + 1);
	l->by_id = malloc((n + 1) * sizeof(*l->by_id));
	dup = calloc(n + 1, sizeof(*dup));
	if (!blob || !l->ids || !l->by_id || !dup) {
		free(blob);
		free(dup);
		listing_unref(l);
		return -ENOMEM;
	}
	/* the ids live right after the pointer array, in one block */
	p = (char *)(l->ids + n + 1);
	memcpy(p, blob, len);
	free(blob);
	for (i = 0; i < n; i++) {
		l->ids[i] = p;
		l->by_id[i] = (uint32_t)i;
		p += strlen(p) + 1;
	}
	qsort_r(l->by_id, n, sizeof(*l->by_id), cmp_index, l->ids);
	for (i = 1; i < n; i++)
		if (!strcmp(l->ids[l->by_id[i]], l->ids[l->by_id[i - 1]]))
			dup[l->by_id[i]] = true; /* the later one */
	for (i = 0, keep = 0; i < n; i++)
		if (!dup[i])
			l->ids[keep++] = l->ids[i];
	*dups = n - keep;
	l->n = keep;
	if (keep < n) {
		/* index the compacted positions again */
		for (i = 0; i < l->n; i++)
			l->by_id[i] = (uint32_t)i;
		qsort_r(l->by_id, l->n, sizeof(*l->by_id), cmp_index, l->ids);
	}
	free(dup);
	/* malloc's own word per block, as heap chunks really cost */
	l->bytes = sizeof(*l) +
		(n + 1) * (sizeof(*l->ids) + sizeof(*l->by_id)) + len + 1 +
		3 * sizeof(size_t);
	*out = l;
	return 0;
}

bool listing_same(const struct listing *a, const struct listing *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->ids[i], b->ids[i]))
			return false;
	return true;
}
