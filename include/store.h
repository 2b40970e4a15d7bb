/* SPDX-License-Identifier: MIT */
/*
 * store: the task store (one record per id, shared by every listing that
 * shows it) and the listing cache, keyed by the normalized request body.
 * Entries are trusted for ttl seconds. Concurrent readers of one listing
 * share one fetch (single-flight). A failed refresh keeps serving the
 * last good listing; a listing never fetched returns the error.
 *
 * Thread-safe: one mutex guards the tables, never held across a fetch.
 * Blocking: store_listing, store_task and store_task_refresh may block on
 * HTTP (their own fetch, or another thread's fetch of the same listing).
 * Every other call never does: it takes the store's lock for a moment
 * (or not at all) and returns.
 */
#ifndef MIXPEEKFS_STORE_H
#define MIXPEEKFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "api.h"
#include "listing.h"
#include "listreq.h"
#include "task.h"

enum store_values {
	STORE_STATUSES,
	STORE_TYPES,
};

/*
 * Where the store gets what it does not hold: the API, or a test's
 * stand-in. Both may block; both are called without the store's lock.
 */
struct store_source {
	/* as api_list: every task of q, in order, through sink */
	int (*list)(const struct list_body *q, long limit, api_sink sink,
		    void *ctx);
	/* as api_get_task: one task; -ENOENT when there is none */
	int (*get_task)(const char *id, struct task **out);
	/* as api_get_tasks: many in one request (NULL: GET each) */
	int (*get_tasks)(char *const *ids, size_t n, api_sink sink, void *ctx);
	/* as api_count: how many tasks q lists (NULL: none known) */
	int (*count)(const struct list_body *q, long *count);
};

/*
 * Before any thread uses the store. Listings and tasks in an active
 * status are trusted for ttl seconds, tasks in a terminal status for
 * ttl_terminal. cache_size: bytes of task records, listings and what the
 * layer above keeps for them (see store_on_memory) before the least
 * recently used go. src (copied) NULL: api_list and api_get_task.
 * 0 or -ENOMEM.
 */
int store_init(unsigned ttl, unsigned ttl_terminal, size_t cache_size,
	       const struct store_source *src);
/* Free everything, once no other thread uses the store. */
void store_cleanup(void);

/*
 * The listing for q (fetched if absent or older than ttl), with a
 * reference for the caller. limit > 0 lists only the first limit tasks.
 * May block on HTTP.
 */
int store_listing(const struct list_body *q, long limit, struct listing **out);
/* The cached listing for q, fresh or not, without fetching; -ENOENT.
 * Never blocks on HTTP. */
int store_listing_peek(const struct list_body *q, long limit,
		       struct listing **out);
/*
 * How many tasks the folder of q (cut at limit > 0) holds: its cached
 * listing's, when fresh; else one request for the total, kept for the
 * ttl. -EINPROGRESS where it would fetch with sched_ctx()->nofetch set;
 * otherwise may block on HTTP.
 */
int store_count(const struct list_body *q, long limit, long *n);
/* Whether l is within the ttl and no refresh was forced since. */
bool listing_fresh(const struct listing *l);
/* Force the next store_listing for q to fetch (a cached listing stays
 * served if that fails). */
void store_expire(const struct list_body *q, long limit);
/* The same for every listing and task (SIGHUP). */
void store_expire_all(void);

/*
 * The task record for id, with a reference: from the store while fresh,
 * otherwise fetched with GET (a stale record is served if that fails for
 * any reason but -ENOENT or -EACCES). An id the API answered 404 for is
 * -ENOENT without a request for ttl seconds. May block on HTTP.
 */
int store_task(const char *id, struct task **out);
/*
 * A walk (find, du, grep -r) asks for many tasks of one folder, one after
 * another: once WALK_GETS of the tasks its stale listing holds were
 * fetched on their own within a ttl, the next one fetches the listing
 * again instead, which brings them all. A lone name, or one the listing
 * does not hold, costs one GET.
 */
#define WALK_GETS 3

/*
 * The task record for id, listed by q (the folder it is in): as
 * store_task, but a stale record under a stale listing of q that is
 * being walked (see WALK_GETS) comes with a fetch of that listing,
 * shared by the whole walk. May block on HTTP.
 */
int store_task_in(const char *id, const struct list_body *q, long limit,
		  struct task **out);
/* The record for id while within its ttl, with a reference; -ENOENT
 * otherwise. Never blocks on HTTP. */
int store_task_cached(const char *id, struct task **out);
/* store_task, fetching even a fresh record; a failed fetch is an error
 * (the stored record stays). May block on HTTP. */
int store_task_refresh(const char *id, struct task **out);
/* The same for a poll (.wait), which is not a refresh by hand: an outage
 * backoff or a rejected key stays as it is. May block on HTTP. */
int store_task_poll(const char *id, struct task **out);
/*
 * Poll the tasks ids (at most page_size) with one list request, as
 * store_task_poll would each: every one listed is stored (its change
 * hook fires as for a listing's); res[i] is 0 for those, and for one the
 * list left out, what a GET of it says (-ENOENT: gone). Returns the list
 * request's error (then every res[i] is it). May block on HTTP.
 */
int store_poll(char *const *ids, size_t n, int *res);
/*
 * fn(id, arg) runs, under the store's lock, whenever a task's JSON
 * changes, the task goes away, leaves a listing or is evicted. It must
 * not call the store.
 */
void store_on_change(void (*fn)(const char *id, void *arg), void *arg);

struct store_usage {
	size_t tasks, task_bytes, task_cap, listings, listed;
	size_t listing_bytes; /* listings, their keys and entries */
	size_t extra_bytes;   /* what store_mem_hooks.extra reports */
};
void store_usage(struct store_usage *u);

/*
 * Memory. cache_size bounds, together: the task records, the listings
 * (the least recently used go first, one past its ttl and in no one's
 * hands before the others) and what the layer above keeps for them (the
 * nodes of a listing's entries), which extra() reports. The store drops
 * task records by itself; listings only in store_trim, which the layer
 * above calls from a thread of its own once full() said the total is
 * over the cap, so that it can make the kernel forget their entries.
 * Both hooks run under the store's lock: they must only read or queue.
 */
struct store_mem_hooks {
	size_t (*extra)(void *arg);
	void (*full)(void *arg);
	void *arg;
};
/* Set the hooks (copied; NULL: none). */
void store_on_memory(const struct store_mem_hooks *h);

/*
 * Drop listings, least recently used first, while the store's bytes
 * plus extra are over 7/8 of cache_size (a margin, so that the next
 * trim is not due at once). charge(key, arg): how many of extra's bytes
 * dropping that listing frees (its folders' nodes, once forgotten);
 * dropped(key, arg): told each key dropped. Both run under the store's
 * lock. A listing being fetched stays. Returns how many were dropped.
 * Never blocks on HTTP.
 */
size_t store_trim(size_t extra, size_t (*charge)(const char *key, void *arg),
		  void (*dropped)(const char *key, void *arg), void *arg);

/* Whether the store's bytes plus extra are over cache_size. */
bool store_over(size_t extra);

/* The store's key for the listing of q (what store_trim's hooks see). */
int store_key(const struct list_body *q, long limit, struct buf *key);

/*
 * How many more seconds t (or l) is within its ttl: what the kernel may
 * keep it for, so nothing it shows is older than the ttl. These and the
 * two below never block on HTTP.
 */
double store_task_left(const struct task *t);
double store_listing_left(const struct listing *l);
/* Whether a record for id is stored and within its ttl. */
bool store_task_fresh(const char *id);
/* The stored record for id, fresh or not, without fetching; or NULL. */
struct task *store_task_peek(const char *id);

/*
 * The known statuses or task types, in order: the API's published values
 * first, then any new ones seen in results. A malloc'd array of
 * malloc'd strings; free with store_values_free().
 */
int store_values(enum store_values which, char ***names, size_t *n);
void store_values_free(char **names, size_t n);
/* Whether v is one of the API's published values (never blocks). */
bool store_value_published(enum store_values which, const char *v);

/* The published values (for tests and the README). */
extern const char *const store_statuses[];
extern const char *const store_types[];

#endif
