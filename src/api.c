// SPDX-License-Identifier: MIT
/*
 * api: requests to /v1/tasks. The first list page asks for the total;
 * the remaining offset pages go out concurrently (bounded by
 * max_connections). A listing deeper than the offset cap, without a
 * sort, comes sorted by task_id: from both ends at once while two offset
 * windows cover it, as task_id ranges at once past that (api_ranges.c);
 * sorted by task_id, as ranges too. Otherwise (another sort, a limit, or
 * an API that refuses the ranges or ignores the sort) it continues one
 * page at a time with next_cursor.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "http.h"
#include "json.h"
#include "api_i.h"
#include "log.h"
#include "scheduler.h"

void api_init(unsigned ps, unsigned conns)
{
	api_page_size = ps ? ps : 100;
	api_max_conns = conns ? conns : 1;
	api_ids_init();
}

size_t api_plan_offsets(long total, unsigned ps, long *offsets, size_t max)
{
	size_t n = 0;
	long off;

	for (off = ps; off < total && off <= API_OFFSET_MAX; off += ps) {
		if (n < max)
			offsets[n] = off;
		n++;
	}
	return n;
}

bool api_plan_needs_cursor(long total, unsigned ps)
{
	long last = (API_OFFSET_MAX / ps) * ps; /* deepest offset page */

	return total > last + (long)ps;
}

struct delivery {
	api_sink sink;
	void *ctx;
	long limit;
	long seen;
	struct guard guard; /* the listing's cursors and its total */
};

/* Feed a page to the sink; 1 when the limit is reached. */
static int deliver(struct delivery *d, const struct page *pg)
{
	size_t i;
	int res;

	for (i = 0; i < pg->n; i++) {
		if (d->limit > 0 && d->seen >= d->limit)
			return 1;
		res = d->sink(d->ctx, pg->tasks[i]);
		if (res)
			return res;
		d->seen++;
	}
	res = guard_count(&d->guard, d->seen);
	return res ? res : d->limit > 0 && d->seen >= d->limit;
}

/* Follow next_cursor from pg (consumed) to the end. */
static int follow_cursor(const char *body, struct page *pg, struct delivery *d)
{
	char *cursor = pg->next_cursor;
	int res = 0;

	pg->next_cursor = NULL;
	while (cursor && !res) {
		struct page next;

		res = guard_cursor(&d->guard, cursor);
		if (res)
			break;
		res = api_fetch_page(body, api_page_size, 0, cursor, false,
				     &next);
		if (res)
			break;
		res = deliver(d, &next);
		free(cursor);
		cursor = NULL;
		if (!res && !api_last_page(&next)) {
			cursor = next.next_cursor;
			next.next_cursor = NULL;
		}
		page_release(&next);
	}
	free(cursor);
	return res < 0 ? res : 0;
}

/* A list of pages to fetch together, and what to do with them. */
struct plan {
	size_t n;
	const char **bodies;
	long *offsets;
	struct page *pages;
};

static int plan_init(struct plan *p, size_t n)
{
	memset(p, 0, sizeof(*p));
	p->bodies = calloc(n + 1, sizeof(*p->bodies));
	p->offsets = calloc(n + 1, sizeof(*p->offsets));
	p->pages = calloc(n + 1, sizeof(*p->pages));
	return p->bodies && p->offsets && p->pages ? 0 : -ENOMEM;
}

static void plan_add(struct plan *p, const char *body, long offset)
{
	p->bodies[p->n] = body;
	p->offsets[p->n++] = offset;
}

static void plan_release(struct plan *p)
{
	size_t i;

	for (i = 0; p->pages && i < p->n; i++)
		page_release(&p->pages[i]);
	free(p->pages);
	free(p->bodies);
	free(p->offsets);
}

/* Offset pages of body after the first, then the cursor past the cap. */
static int list_forward(const char *body, struct page *first, long limit,
			struct delivery *d)
{
	struct plan p;
	bool moved = false;
	size_t n, i;
	int res;

	n = api_plan_offsets(first->total, api_page_size, NULL, 0);
	res = plan_init(&p, n);
	if (res)
		goto out;
	for (i = 0; i < n; i++) {
		long off = (long)(i + 1) * api_page_size;

		if (limit > 0 && off >= limit)
			break;
		plan_add(&p, body, off);
	}
	/* the last page's total says whether the folder moved meanwhile */
	res = api_fetch_window(p.bodies, p.offsets, p.n, WINDOW_TOTAL_LAST,
			       p.pages);
	/*
	 * Tasks that left or joined while the pages were fetched shift the
	 * offsets: a task that stayed may be skipped or shown twice. All is
	 * delivered, then -ESTALE says so (the caller may list it again).
	 */
	moved = !res && p.n && p.pages[p.n - 1].total >= 0 &&
		p.pages[p.n - 1].total != first->total;
	if (moved)
		log_debug("POST /v1/tasks/list: the total went from %ld to %ld "
			  "while the pages were fetched",
			  first->total, p.pages[p.n - 1].total);
	for (i = 0; i < p.n && !res; i++) {
		res = deliver(d, &p.pages[i]);
		if (!res && i + 1 < p.n && !api_last_page(&p.pages[i]) &&
		    api_short_page(&p.pages[i], api_page_size)) {
			/* the offsets after a short page would leave a gap */
			log_warn("POST /v1/tasks/list: a short page at offset "
				 "%ld; following the cursor instead",
				 p.offsets[i]);
			res = follow_cursor(body, &p.pages[i], d);
			goto out;
		}
	}
	if (!res && p.n > 0 && !api_last_page(&p.pages[p.n - 1]))
		res = follow_cursor(body, &p.pages[p.n - 1], d);
	else if (!res && p.n == 0)
		res = follow_cursor(body, first, d);
out:
	plan_release(&p);
	return !res && moved ? -ESTALE : res;
}

/* The most tasks one offset window holds: offsets 0 to the cap. */
static long window_cover(void)
{
	return (API_OFFSET_MAX / api_page_size + 1) * (long)api_page_size;
}

/* Whether the ids of the pages run in order (ascending or descending). */
static bool pages_sorted(const struct page *pages, size_t n, int dir)
{
	const char *prev = NULL;
	size_t i, j;

	for (i = 0; i < n; i++)
		for (j = 0; j < pages[i].n; j++) {
			const char *id = pages[i].tasks[j]->id;

			if (prev && strcmp(prev, id) * dir > 0)
				return false;
			prev = id;
		}
	return true;
}

/*
 * A listing too deep for one offset window: fetch it sorted by task_id
 * from both ends at once (two windows of up to 10,000 + api_page_size tasks),
 * and the middle, if any, by cursor from the end of the first window.
 * Comes out in task_id order. -EAGAIN when the API ignores the sort.
 */
static int list_two_ended(const struct list_body *q, long total,
			  struct delivery *d)
{
	struct list_body qa = *q, qb = *q;
	struct buf ba = BUF_INIT(1 << 20), bb = BUF_INIT(1 << 20);
	long cover = window_cover();
	long na = total < cover ? total : cover, nb, off, middle, sent;
	size_t npa = 0, i, j;
	struct plan p;
	int res;

	nb = total - na < cover ? total - na : cover;
	middle = total - na - nb;
	qa.sort_field = qb.sort_field = "task_id";
	qb.sort_desc = true;
	res = json_list_body(&qa, &ba);
	if (!res)
		res = json_list_body(&qb, &bb);
	if (!res)
		res = plan_init(&p, (size_t)((na + nb) / api_page_size + 2));
	if (res)
		goto out_bodies;
	for (off = 0; off < na; off += api_page_size, npa++)
		plan_add(&p, buf_str(&ba), off);
	for (off = 0; off < nb; off += api_page_size)
		plan_add(&p, buf_str(&bb), off);
	res = api_fetch_window(p.bodies, p.offsets, p.n, WINDOW_TOTAL_NONE,
			       p.pages);
	if (res)
		goto out;
	if (!pages_sorted(p.pages, npa, 1) ||
	    !pages_sorted(p.pages + npa, p.n - npa, -1)) {
		log_warn("POST /v1/tasks/list: the API did not sort by task_id;"
			 " paging by cursor instead");
		res = -EAGAIN;
		goto out;
	}
	for (i = 0; i < p.n; i++) {
		long want = (i < npa ? na : nb) -
			(p.offsets[i] > 0 ? p.offsets[i] : 0);

		if (want > (long)api_page_size)
			want = api_page_size;
		if ((long)(p.pages[i].n + p.pages[i].skipped) < want) {
			log_warn("POST /v1/tasks/list: a short page; paging by "
				 "cursor instead");
			res = -EAGAIN;
			goto out;
		}
	}
	for (i = 0; i < npa && !res; i++)
		res = deliver(d, &p.pages[i]);
	if (!res && middle > 0 && npa > 0) {
		/* the middle: by cursor, up to the count the ends leave */
		long limit = d->limit, before = d->seen;

		d->limit = d->seen + middle;
		res = follow_cursor(buf_str(&ba), &p.pages[npa - 1], d);
		d->limit = limit;
		sent = d->seen - before;
		if (!res && sent < middle)
			log_warn("POST /v1/tasks/list: %ld tasks fewer than "
				 "the "
				 "total in the middle of a deep listing",
				 middle - sent);
	}
	/*
	 * The far end, from the smallest id up: of its last page only the
	 * nb it is to cover, the rest being the front's or the middle's
	 */
	for (i = p.n; i-- > npa && !res;) {
		long want = nb - p.offsets[i];

		j = want < (long)p.pages[i].n ? (size_t)want : p.pages[i].n;
		while (j-- > 0 && !res) {
			res = d->sink(d->ctx, p.pages[i].tasks[j]);
			d->seen++;
		}
	}
out:
	plan_release(&p);
out_bodies:
	buf_release(&ba);
	buf_release(&bb);
	return res;
}

int api_list(const struct list_body *q, long limit, api_sink sink, void *ctx)
{
	struct delivery d = { .sink = sink, .ctx = ctx, .limit = limit };
	struct buf body = BUF_INIT(1 << 20);
	unsigned first_limit = api_page_size;
	struct sched_ctx *sx = sched_ctx();
	enum sched_class cls = sx->cls;
	struct page first;
	bool deep, doubtful = false;
	int res;

	res = json_list_body(q, &body);
	if (res)
		return res;
	/* a listing cut at limit (at most 1000) takes one request */
	if (limit > 0 && limit <= 1000)
		first_limit = (unsigned)limit;
	/* the total only where it is used: a listing cut at limit has none */
	res = api_fetch_page(buf_str(&body), first_limit, 0, NULL, limit <= 0,
			     &first);
	if (res)
		goto out_body;
	/* the first page is what a person waits on; the rest come after */
	if (sx->cls < SCHED_LISTING)
		sx->cls = SCHED_LISTING;
	guard_init(&d.guard, first.total);
	deep = !api_last_page(&first) && !api_short_page(&first, first_limit) &&
		first.total >= 0 && limit <= 0 &&
		api_plan_needs_cursor(first.total, api_page_size);
	if (deep &&
	    (q->sort_field ? !strcmp(q->sort_field, "task_id") :
			     first.total > 2 * window_cover())) {
		/*
		 * In task_id order, as ranges of ids at once. Without a sort,
		 * a listing that two windows from both ends cover takes one
		 * request less that way (and no cursor): ranges past that.
		 */
		res = api_list_ranges(q, &first, sink, ctx);
		if (res == -EDOM) {
			/* the total is not what the API holds: the cursor */
			guard_release(&d.guard);
			guard_init(&d.guard, -1);
			deep = false;
			doubtful = true;
		} else if (res != -EAGAIN) {
			goto out_first;
		}
	}
	if (deep && !q->sort_field) {
		res = list_two_ended(q, first.total, &d);
		if (res != -EAGAIN)
			goto out_first;
		d.seen = 0; /* nothing was delivered */
	}
	res = deliver(&d, &first);
	if (res || api_last_page(&first))
		goto out_first;
	if (api_short_page(&first, first_limit) || doubtful) {
		res = follow_cursor(buf_str(&body), &first, &d);
	} else if (first.total >= 0) {
		res = list_forward(buf_str(&body), &first, limit, &d);
	} else {
		/* no total: page by offset, then by cursor past the cap */
		struct page pg, last = first;
		long off;

		memset(&first, 0, sizeof(first));
		for (off = api_page_size; off <= API_OFFSET_MAX;
		     off += api_page_size) {
			res = api_fetch_page(buf_str(&body), api_page_size, off,
					     NULL, false, &pg);
			if (res)
				break;
			page_release(&last);
			last = pg;
			res = deliver(&d, &last);
			if (res || api_last_page(&last) ||
			    api_short_page(&last, api_page_size))
				break;
		}
		if (!res && !api_last_page(&last))
			res = follow_cursor(buf_str(&body), &last, &d);
		page_release(&last);
	}
out_first:
	page_release(&first);
	guard_release(&d.guard);
out_body:
	buf_release(&body);
	sx->cls = cls;
	return res < 0 ? res : 0;
}

/*
 * Whether id can be one segment of a request path: not empty, ".", ".."
 * or holding a "/", which a server or a curl version would resolve or
 * split, whatever the escaping (curl 8.14 resolves %2E%2E).
 */
static bool one_segment(const char *id)
{
	return *id && strcmp(id, ".") && strcmp(id, "..") && !strchr(id, '/');
}

int api_count(const struct list_body *q, long *count)
{
	struct buf body = BUF_INIT(1 << 20);
	struct page pg;
	int res = json_list_body(q, &body);

	if (!res)
		res = api_fetch_page(buf_str(&body), 1, 0, NULL, true, &pg);
	buf_release(&body);
	if (res)
		return res;
	*count = pg.total;
	page_release(&pg);
	if (*count >= 0)
		return 0;
	log_once(LOG_WARNING,
		 "POST /v1/tasks/list: the answer has no total: "
		 "no count");
	return -EIO;
}

int api_get_task(const char *id, struct task **out)
{
	struct buf path = BUF_INIT(65536);
	struct http_response resp;
	char *e;
	int res;

	if (!one_segment(id)) {
		/* no such path can name it: found only by its listings */
		log_debug("task id '%s' is not one path segment: not asked for",
			  id);
		return -ENOENT;
	}
	e = http_escape(id);
	if (!e)
		return -ENOMEM;
	res = buf_printf(&path, "/v1/tasks/%s", e);
	free(e);
	if (res)
		return res;
	res = api_request("GET", buf_str(&path), NULL, id, &resp);
	if (!res) {
		res = json_parse_task(buf_str(&resp.body), resp.body.len, out);
		if (res)
			log_err("GET %s: HTTP %ld: body is not a task",
				buf_str(&path), resp.status);
		else if (strcmp((*out)->id, id)) {
			log_err("GET %s: the API answered with another task",
				buf_str(&path));
			task_unref(*out);
			res = -EIO;
		}
	}
	http_response_release(&resp);
	buf_release(&path);
	return res;
}

int api_probe(char *msg, size_t size)
{
	struct http_response resp;
	char detail[200];
	int res;

	res = sched_request("POST", "/v1/tasks/list?limit=1", "{}", NULL,
			    json_whole_object, &resp);
	log_debug("POST /v1/tasks/list?limit=1 {} (the probe): status %ld, "
		  "%zu bytes, %u attempts",
		  resp.status, resp.body.len, resp.attempts);
	json_error_message(buf_str(&resp.body), resp.body.len, detail,
			   sizeof(detail));
	if (res == -EACCES)
		snprintf(msg, size, "the API rejected the key (HTTP %ld%s%s)",
			 resp.status, detail[0] ? ": " : "", detail);
	else if (res && resp.status == 0)
		snprintf(msg, size, "cannot reach the API: %s", resp.error);
	else if (res)
		snprintf(msg, size, "the API answered HTTP %ld%s%s",
			 resp.status, detail[0] ? ": " : "", detail);
	else {
		struct page pg;

		res = json_parse_page(buf_str(&resp.body), resp.body.len, &pg);
		if (res)
			snprintf(msg, size,
				 "the API answered with something "
				 "that is not a task list");
		else
			page_release(&pg);
	}
	http_response_release(&resp);
	return res;
}
