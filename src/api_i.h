/* SPDX-License-Identifier: MIT */
/*
 * api_i: what api.c, api_page.c and api_ranges.c share, private to them.
 * api_page.c sends requests and fetches list pages; api_ranges.c fetches
 * a deep listing as task_id ranges; api.c pages through everything else.
 * All of it blocks on HTTP but the two inline tests; thread-safe after
 * api_init.
 */
#ifndef MIXPEEKFS_API_I_H
#define MIXPEEKFS_API_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "http.h"
#include "json.h"

/* Set once by api_init, before any thread starts; read-only after. */
extern unsigned api_page_size;
extern unsigned api_max_conns;

/* api_ids.c: tell sched.c how to merge GETs (api_init calls it). */
void api_ids_init(void);

/*
 * One request through sched.c, in the calling thread's context (merge_arg:
 * see sched_request); logs a failure once. 0 or -errno
 * (http_status_errno; -EINTR: nobody waits for it, not sent).
 */
int api_request(const char *method, const char *path, const char *body,
		const char *merge_arg, struct http_response *resp);

/*
 * One list page of body at offset (or cursor, when set), limit tasks,
 * with the total when total is set. 0 or -errno; pg is always filled in
 * (released by the caller, page_release).
 */
int api_fetch_page(const char *body, unsigned limit, long offset,
		   const char *cursor, bool total, struct page *pg);

/*
 * Fetch page i of bodies[i] at offsets[i] (page_size tasks), for i in
 * [0, n), up to max_connections at once; every page, the last one or none
 * asks for the total (WINDOW_TOTAL_*). 0, or the error of the first page
 * (in index order) that failed; after a failure no new request starts.
 */
enum window_total { WINDOW_TOTAL_NONE, WINDOW_TOTAL_ALL, WINDOW_TOTAL_LAST };
int api_fetch_window(const char *const *bodies, const long *offsets, size_t n,
		     enum window_total total, struct page *pages);

/*
 * A listing in task_id order fetched as ranges of task_id at once (see
 * api_ranges.c): q has no sort or sorts by task_id, probe is its first
 * page (with the total). Calls sink for every task in order, only once
 * the whole listing came and checked out. -EAGAIN, with nothing
 * delivered, when the API refused the ranges or they did not add up:
 * the caller pages another way.
 */
int api_list_ranges(const struct list_body *q, const struct page *probe,
		    api_sink sink, void *ctx);

/*
 * What keeps one listing (or one range of it) from running on forever,
 * whatever the API sends: every cursor it was given (one that comes back
 * ends it, even A, B, A, B), and how many tasks it may hold: its total
 * and a margin, when there is a total to go by. (The store bounds the
 * rest: a listing's ids may take an eighth of cache_size.)
 */
struct guard {
	uint64_t *cursors; /* FNV-1a of each cursor taken */
	size_t n, cap;
	long max_tasks; /* -1: no total to go by */
};

/* total: what the API said (-1: nothing). */
void guard_init(struct guard *g, long total);
void guard_release(struct guard *g);
/* 0 for a cursor not seen before; -EIO (logged) for one that came back. */
int guard_cursor(struct guard *g, const char *cursor);
/* 0, or -EIO (logged) once count is past the total and its margin. */
int guard_count(const struct guard *g, long count);

/* The API says nothing follows (or sent nothing to follow on from). */
static inline bool api_last_page(const struct page *pg)
{
	return !pg->next_cursor || pg->n + pg->skipped == 0;
}

/* Fewer results than asked for: offsets after it would skip some. */
static inline bool api_short_page(const struct page *pg, unsigned limit)
{
	return pg->n + pg->skipped < limit;
}

#endif
