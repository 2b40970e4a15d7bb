/* SPDX-License-Identifier: MIT */
/*
 * stats: counters for .mixpeekfs/stats. Requests by endpoint and status,
 * retries, bytes, and cache hits and misses. Cheap to bump from any
 * thread; no library here.
 */
#ifndef MIXPEEKFS_STATS_H
#define MIXPEEKFS_STATS_H

#include <stddef.h>

#include "buf.h"

enum stats_endpoint {
	STATS_LIST, /* POST /v1/tasks/list */
	STATS_GET,  /* GET /v1/tasks/{id} */
	STATS_OTHER,
	STATS_ENDPOINTS
};

enum stats_counter {
	STATS_RETRIES,
	STATS_BYTES,	      /* response bytes received */
	STATS_LISTING_HITS,   /* a listing served from the cache */
	STATS_LISTING_MISSES, /* ... fetched */
	STATS_TASK_HITS,      /* a task record served from the cache */
	STATS_TASK_MISSES,    /* ... fetched with GET */
	STATS_REFRESHES,      /* forced refreshes (SIGHUP, .refresh) */
	STATS_INVALIDATIONS,  /* kernel cache entries dropped */
	STATS_COUNTERS
};

/* One HTTP exchange; status 0 when no response arrived. */
void stats_request(enum stats_endpoint ep, long status);
void stats_add(enum stats_counter c, unsigned long n);
unsigned long stats_get(enum stats_counter c);

/* Append "key value" lines for every counter to out. 0 or -errno. */
int stats_render(struct buf *out);

#endif
