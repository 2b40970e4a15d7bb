// SPDX-License-Identifier: MIT
/*
 * lview: a listing folder's .jsonl and .tsv, rendered from its listing
 * and the task records the store holds: one line per task the folder
 * shows, in the listing's order (lines.c makes each line). No libfuse
 * calls; dirsnap.c keeps what this renders (the view's snapshot).
 */
#include <errno.h>
#include <string.h>

#include "fs_i.h"
#include "lines.h"

/* The view file name stands for in listing folder parent, or NK_ROOT. */
enum nkind view_kind(const struct node *parent, const char *name)
{
	if (parent->kind != NK_LISTING)
		return NK_ROOT;
	if (!strcmp(name, JSONL_NAME))
		return NK_JSONL;
	if (!strcmp(name, TSV_NAME))
		return NK_TSV;
	return NK_ROOT;
}

/*
 * The record of id as the listing brought it: the store's copy, fresh or
 * not (no request). Only one the store let go of (cache_size) is fetched
 * again; one that is gone (404) since is left out (-ENOENT).
 */
static int listed_task(const char *id, struct task **t)
{
	*t = store_task_peek(id);
	return *t ? 0 : store_task(id, t);
}

int lview_render(const struct node *dir, const struct listing *l,
		 enum nkind kind, struct buf *out, time_t *newest)
{
	struct buf json = BUF_INIT(TASK_JSON_MAX);
	size_t i;
	int res = 0;

	*newest = l->changed;
	if (kind == NK_TSV)
		res = buf_addstr(out, LINES_TSV_HEADER);
	for (i = 0; i < l->n && !res; i++) {
		struct task *t;

		res = listed_task(l->ids[i], &t);
		if (res) {
			res = res == -ENOENT ? 0 : res;
			continue;
		}
		/* as the folder: a task seen to leave it is not shown */
		if (!moved_out(dir, t)) {
			json.len = 0; /* the allocation serves every task */
			res = task_json(t, &json);
			if (!res && kind == NK_JSONL)
				res = lines_jsonl(json.data, json.len, out);
			else if (!res)
				res = lines_tsv(t->id, t->type, t->status,
						json.data, json.len, out);
			if ((time_t)t->changed > *newest)
				*newest = t->changed;
		}
		task_unref(t);
	}
	buf_release(&json);
	return res;
}
