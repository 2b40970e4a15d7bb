/* SPDX-License-Identifier: MIT */
/*
 * api: the Mixpeek tasks endpoints. Builds list requests, pages through
 * results (offset pages fetched concurrently; past the API's offset cap,
 * ranges of task_id fetched concurrently, or the cursor chain) and
 * returns task records. Logs each failure once.
 * Thread-safe after api_init. api_list, api_get_task and api_probe block
 * on HTTP (http_request); the others never do.
 */
#ifndef MIXPEEKFS_API_H
#define MIXPEEKFS_API_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "listreq.h"
#include "task.h"

#define API_OFFSET_MAX 10000L

/* Once, before any thread starts. */
void api_init(unsigned page_size, unsigned max_connections);

/* Called once per task, in the API's order; the record is borrowed. */
typedef int (*api_sink)(void *ctx, struct task *t);

/*
 * List every task matching q (at most limit of them when limit > 0),
 * calling sink for each in order, on the calling thread. 0 or -errno;
 * nothing partial is reported as success. Blocks on HTTP: one request
 * per page, up to max_connections at once.
 */
int api_list(const struct list_body *q, long limit, api_sink sink, void *ctx);

/*
 * GET one task. 0, -ENOENT, -EACCES, -EIO, ... Blocks on HTTP. GETs that
 * wait for their turn together go as one list request (api_ids.c).
 */
int api_get_task(const char *id, struct task **out);

/*
 * The tasks ids (at most page_size of them) in one list request, each
 * one found given to sink; one the API does not list is left out. 0 or
 * -errno. Blocks on HTTP.
 */
int api_get_tasks(char *const *ids, size_t n, api_sink sink, void *ctx);

/*
 * How many tasks q lists, from the total of one list request of one
 * task; -EIO when the answer has no total. Blocks on HTTP.
 */
int api_count(const struct list_body *q, long *count);

/*
 * Check that the API answers and accepts the key: one list request for
 * a single task (blocks on HTTP). On failure msg says why, for the
 * terminal.
 */
int api_probe(char *msg, size_t size);

/* The path and query of one list page. */
int api_list_path(unsigned limit, long offset, const char *cursor,
		  bool include_total, struct buf *out);

/*
 * The offsets of the pages after the first that can be fetched at once:
 * page_size, 2 * page_size, ... while below total and within the API's
 * offset cap. Writes at most max; returns how many there are in all.
 */
size_t api_plan_offsets(long total, unsigned page_size, long *offsets,
			size_t max);

/* Tasks a listing must still fetch through the cursor after the plan. */
bool api_plan_needs_cursor(long total, unsigned page_size);

#endif
