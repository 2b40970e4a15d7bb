/* SPDX-License-Identifier: MIT */
/*
 * listing: a snapshot of one listing, as the store keeps it: task ids in
 * the API's order. Immutable once made, but for the atomic fields;
 * refcounted, so any thread may hold and read one. Never blocks.
 */
#ifndef MIXPEEKFS_LISTING_H
#define MIXPEEKFS_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

struct listing {
	size_t n;
	const char **ids;  /* into one block owned by the listing */
	uint32_t *by_id;   /* indexes of ids, sorted by id */
	size_t bytes;	   /* what the listing takes in memory */
	time_t fetched;	   /* when its fetch began: its oldest data */
	time_t changed;	   /* when the ids last differed from before */
	unsigned gen;	   /* the fetch it came from: 1 for its key's first,
			    * one more for each after, whatever it found */
	unsigned refs;	   /* atomic */
	unsigned failures; /* atomic: refreshes that failed since */
	bool expired;	   /* atomic: a forced refresh is due */
};

/*
 * The ids of one listing, NUL-separated, before listing_new, may take an
 * eighth of cache_size (1 MiB at least): a listing longer than that could
 * not keep its tasks anyway, and an API whose listing never ends (new ids
 * on every page, and no total to go by) is stopped there.
 */
#define LISTING_IDS_SHARE 8
#define LISTING_IDS_MIN ((size_t)1 << 20)
/* How often a listing that moves while it is paged is listed (store.c). */
#define LISTING_TRIES 3

/*
 * A listing of the n NUL-separated ids in ids (which is emptied), later
 * repeats of an id dropped (*dups says how many); fetched is now, and
 * refs 1. 0 or -ENOMEM.
 */
int listing_new(struct buf *ids, size_t n, struct listing **out, size_t *dups);

struct listing *listing_ref(struct listing *l);
void listing_unref(struct listing *l);

/* Whether id is in l (binary search). */
bool listing_has(const struct listing *l, const char *id);

/* Whether two listings hold the same ids in the same order. */
bool listing_same(const struct listing *a, const struct listing *b);

#endif
