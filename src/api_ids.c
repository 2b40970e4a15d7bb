// SPDX-License-Identifier: MIT
/*
 * api_ids: tasks by id, many in one request: a list request with a
 * task_id `in` filter. It carries the GETs that wait for their turn at
 * the same time (sched.c merges them; this file says how) and the polls
 * of the tasks that .wait waits for (api_get_tasks).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_i.h"
#include "log.h"
#include "scheduler.h"

/* The body that lists exactly the tasks ids (case-sensitive). */
static int ids_body(char *const *ids, size_t n, struct buf *body)
{
	struct buf arr = BUF_INIT(64 << 20);
	struct json_cond c = { .field = "task_id", .op = "in" };
	struct list_body b = { .conds = &c,
			       .nconds = 1,
			       .case_sensitive = true };
	size_t i;
	int res = buf_addch(&arr, '[');

	for (i = 0; i < n && !res; i++) {
		if (i)
			res = buf_addch(&arr, ',');
		if (!res)
			res = json_quote(ids[i], &arr);
	}
	if (!res)
		res = buf_addch(&arr, ']');
	c.value = buf_str(&arr);
	if (!res)
		res = json_list_body(&b, body);
	buf_release(&arr);
	return res;
}

static int merged_build(char *const *ids, size_t n, struct buf *path,
			struct buf *body)
{
	int res = api_list_path((unsigned)n, 0, NULL, false, path);

	return res ? res : ids_body(ids, n, body);
}

static int by_id(const void *a, const void *b)
{
	return strcmp((*(struct task *const *)a)->id,
		      (*(struct task *const *)b)->id);
}

/* The task of pg (sorted by id) with id, or NULL. */
static struct task *find(const struct page *pg, const char *id)
{
	size_t lo = 0, hi = pg->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(pg->tasks[mid]->id, id);

		if (!c)
			return pg->tasks[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int merged_split(const char *body, size_t len, char *const *ids,
			size_t n, struct buf *outs, int *got)
{
	struct page pg;
	size_t i;
	int res = json_parse_page(body, len, &pg);

	if (res)
		return res;
	qsort(pg.tasks, pg.n, sizeof(*pg.tasks), by_id);
	for (i = 0; i < n; i++) {
		struct task *t = find(&pg, ids[i]);

		/* each answer is the task alone, as GET would send it */
		got[i] = t ? task_json(t, &outs[i]) : -EAGAIN;
	}
	page_release(&pg);
	return 0;
}

void api_ids_init(void)
{
	struct sched_merger m = { api_page_size, merged_build, merged_split };

	sched_set_merger(&m);
}

int api_get_tasks(char *const *ids, size_t n, api_sink sink, void *ctx)
{
	struct buf body = BUF_INIT(64 << 20);
	struct page pg = { 0 };
	size_t i;
	int res;

	if (n == 0 || n > api_page_size)
		return -EINVAL;
	res = ids_body(ids, n, &body);
	if (!res)
		res = api_fetch_page(buf_str(&body), (unsigned)n, 0, NULL,
				     false, &pg);
	buf_release(&body);
	for (i = 0; !res && i < pg.n; i++)
		res = sink(ctx, pg.tasks[i]);
	page_release(&pg);
	return res;
}
