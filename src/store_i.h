/* SPDX-License-Identifier: MIT */
/*
 * store_i: what store.c, store_ids.c and store_values.c share, private
 * to them. store.c holds the records and listings and their ttls;
 * store_ids.c the two tables of ids it looks things up in; store_values.c
 * the statuses and task types seen so far.
 *
 * The id tables have no lock of their own: store.c calls them with its
 * lock held. The values have their own lock, taken after the store's
 * (store -> values). Nothing here blocks on HTTP.
 */
#ifndef MIXPEEKFS_STORE_I_H
#define MIXPEEKFS_STORE_I_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "store.h"
#include "task.h"

/*
 * The task records by id: a chained hash table of nb buckets (a power of
 * 2), twice as many once there are more tasks than buckets. It links the
 * records through their own hnext and hash, not uthash's 56 bytes a task.
 * It holds no reference: store.c adds and deletes.
 */
struct taskmap {
	struct task **b;
	size_t nb, n;
};

struct task *taskmap_find(const struct taskmap *m, const char *id);
/* Add t (not in the map yet). 0 or -ENOMEM. */
int taskmap_add(struct taskmap *m, struct task *t);
void taskmap_del(struct taskmap *m, struct task *t);
/* Free the buckets; the records are the caller's. */
void taskmap_release(struct taskmap *m);

/*
 * Ids the API answered 404 for lately: looking one up again within the
 * ttl costs no request (stat tasks/.git, a prompt run in a loop). The
 * last MISSING_MAX are kept; a listing that shows the id forgets it.
 */
#define MISSING_MAX 1024

struct missing;
struct missing_set {
	struct missing *by_id;
	struct missing *ring[MISSING_MAX]; /* the newest MISSING_MAX */
	unsigned pos;
};

void missing_add(struct missing_set *s, const char *id);
void missing_drop(struct missing_set *s, const char *id);
/* Whether the API answered 404 for id less than ttl seconds ago. */
bool missing_has(const struct missing_set *s, const char *id, unsigned ttl);
void missing_clear(struct missing_set *s);

/* store_counts.c: folder counts by store_key, kept for a ttl. */
#define COUNTS_MAX 1024
bool counts_get(const char *key, unsigned ttl, long *n);
void counts_put(const char *key, long n);
void counts_clear(void);

/*
 * The most statuses, and task types, kept (the published ones count): a
 * server that sends a new one on every task makes no endless folder.
 */
#define STORE_VALUES_MAX 1024

/* Put the published statuses and types first. 0 or -ENOMEM. */
int values_init(void);
/* Add name to which's values, if new. 0 or -ENOMEM. */
int values_add(enum store_values which, const char *name);
void values_cleanup(void);

#endif
