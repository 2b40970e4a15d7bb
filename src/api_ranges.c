// SPDX-License-Identifier: MIT
/*
 * api_ranges: a listing too deep for one offset window, fetched as ranges
 * of task_id at once instead of one cursor page after another.
 *
 * The listing is cut into ranges [cut, next cut) of task_id, each listed
 * sorted by task_id with a filter (gte/gt and lt, case-sensitive) that
 * bounds it: its first page (with include_total) at offset 0, then its
 * other offset pages, all ranges' pages up to max_connections at once.
 * Where the cuts go only balances the work: every id lies in exactly one
 * range whatever the cuts are. Without a sort the cuts are the quantiles
 * of the first page's ids (the API's own order spreads them over the
 * listing); a range still deeper than the offset window (ids that are
 * not spread evenly, or a listing sorted by task_id, whose first page is
 * one end) is cut again between its first page and its last page
 * (fetched sorted the other way), counting in the ids' alphabet
 * (idrange.c); what is still too deep after that follows the cursor.
 *
 * Nothing reaches the sink before the whole listing came and checked
 * out: the ranges' totals add up to the listing's, every range holds its
 * total, and the ids run strictly upward across all ranges. Then no task
 * is lost or repeated and the order is the ids' byte order, as the API
 * sorts. Otherwise (or when the API refuses the filter with a 4xx) the
 * caller pages another way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_i.h"
#include "idrange.h"
#include "log.h"

/* Pages a range aims at: about max_connections ranges per round. */
#define RANGE_PAGES 8
/* How often a range deeper than the offset window is cut again. */
#define SPLIT_ROUNDS 4
/* The most ranges one listing is cut into. */
#define RANGES_MAX 4096
/* The ranges whose heads are fetched first, to check the total. */
#define RANGES_FIRST 16

enum rkind {
	R_OPEN, /* fetched by head, offsets and cursor */
	R_HEAD, /* just its head page: the ids below a cut range */
	R_TAIL, /* just its tail page (descending): the ids above it */
};

struct range {
	enum rkind kind;
	char *lo; /* owned; NULL: unbounded */
	bool lo_incl;
	char *hi;   /* owned; NULL: unbounded (always exclusive) */
	long total; /* -1 until the head or tail came */
	struct page head;
	bool has_head;
	struct page tail;
	bool has_tail;
	struct page *more; /* offset, then cursor pages after the head */
	size_t nmore, capmore;
};

struct ranges {
	const struct list_body *q;
	const struct page *probe;
	struct range *r;
	size_t n, cap;
	long total; /* the listing's */
	long cover; /* the most tasks one range fetches by offset */
	long requests;
};

static void range_release(struct range *r)
{
	size_t i;

	free(r->lo);
	free(r->hi);
	page_release(&r->head);
	page_release(&r->tail);
	for (i = 0; i < r->nmore; i++)
		page_release(&r->more[i]);
	free(r->more);
}

static void ranges_release(struct ranges *rs)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		range_release(&rs->r[i]);
	free(rs->r);
}

/* arr with room for one more than n (doubling *cap); NULL on ENOMEM. */
static void *grow(void *arr, size_t n, size_t *cap, size_t elem)
{
	size_t want = *cap ? *cap * 2 : 16;
	void *p;

	if (n < *cap)
		return arr;
	p = realloc(arr, want * elem);
	if (p)
		*cap = want;
	return p;
}

/* A new open range (lo and hi copied) at the end of list. */
static int range_add(struct ranges *rs, const char *lo, bool lo_incl,
		     const char *hi)
{
	struct range *r;

	if (rs->n >= RANGES_MAX)
		return -EAGAIN;
	r = grow(rs->r, rs->n, &rs->cap, sizeof(*r));
	if (!r)
		return -ENOMEM;
	rs->r = r;
	r = &rs->r[rs->n];
	memset(r, 0, sizeof(*r));
	r->total = -1;
	r->lo_incl = lo_incl;
	r->lo = lo ? strdup(lo) : NULL;
	r->hi = hi ? strdup(hi) : NULL;
	rs->n++;
	if ((lo && !r->lo) || (hi && !r->hi))
		return -ENOMEM;
	return 0;
}

/* The body of range r, sorted by task_id (descending when desc). */
static int range_body(const struct ranges *rs, const struct range *r, bool desc,
		      struct buf *out)
{
	struct list_body b = *rs->q;

	b.sort_field = "task_id";
	b.sort_desc = desc;
	b.range_lo = r->lo;
	b.range_lo_incl = r->lo_incl;
	b.range_hi = r->hi;
	return json_list_body(&b, out);
}

/* A fetch of many pages at once: one per entry, of ranges' bodies. */
struct batch {
	size_t n;
	struct buf *bodies;
	const char **body_ptrs;
	long *offsets;
	size_t *owner; /* the range each page is for */
	struct page *pages;
};

static int batch_init(struct batch *b, size_t n)
{
	memset(b, 0, sizeof(*b));
	b->bodies = calloc(n + 1, sizeof(*b->bodies));
	b->body_ptrs = calloc(n + 1, sizeof(*b->body_ptrs));
	b->offsets = calloc(n + 1, sizeof(*b->offsets));
	b->owner = calloc(n + 1, sizeof(*b->owner));
	b->pages = calloc(n + 1, sizeof(*b->pages));
	if (!b->bodies || !b->body_ptrs || !b->offsets || !b->owner ||
	    !b->pages)
		return -ENOMEM;
	return 0;
}

static int batch_add(struct batch *b, const struct ranges *rs, size_t ri,
		     bool desc, long offset)
{
	struct buf *body = &b->bodies[b->n];
	int res;

	*body = (struct buf)BUF_INIT(1 << 20);
	res = range_body(rs, &rs->r[ri], desc, body);
	if (res) {
		buf_release(body);
		return res;
	}
	b->body_ptrs[b->n] = buf_str(body);
	b->offsets[b->n] = offset;
	b->owner[b->n++] = ri;
	return 0;
}

static void batch_release(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		buf_release(&b->bodies[i]);
		page_release(&b->pages[i]);
	}
	free(b->bodies);
	free(b->body_ptrs);
	free(b->offsets);
	free(b->owner);
	free(b->pages);
}

/* Fetch the batch; a 4xx (the filter refused) becomes -EAGAIN. */
static int batch_fetch(struct batch *b, struct ranges *rs, bool total)
{
	int res;

	rs->requests += (long)b->n;
	res = api_fetch_window(b->body_ptrs, b->offsets, b->n,
			       total ? WINDOW_TOTAL_ALL : WINDOW_TOTAL_NONE,
			       b->pages);
	if (res == -EINVAL || res == -ENOENT) {
		log_warn("POST /v1/tasks/list: the API refused a task_id "
			 "range; paging by cursor instead");
		return -EAGAIN;
	}
	return res;
}

/* Take the total from a head or tail page. */
static int take_total(struct range *r, const struct page *pg)
{
	if (pg->total < 0 || (r->total >= 0 && r->total != pg->total))
		return -EAGAIN;
	r->total = pg->total;
	return 0;
}

/* A copy of pg's tasks (references), for a range to own. */
static int page_copy(const struct page *pg, struct page *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	out->total = pg->total;
	out->tasks = calloc(pg->n + 1, sizeof(*out->tasks));
	if (!out->tasks)
		return -ENOMEM;
	for (i = 0; i < pg->n; i++)
		out->tasks[i] = task_ref(pg->tasks[i]);
	out->n = pg->n;
	out->skipped = pg->skipped;
	return 0;
}

/*
 * Fetch the missing heads (and, when tails, the tails) of the open
 * ranges that need them: want(r) says which.
 */
static int fetch_ends(struct ranges *rs,
		      bool (*want)(const struct ranges *, const struct range *),
		      bool tails)
{
	struct batch b;
	size_t i;
	int res = batch_init(&b, rs->n * 2);

	for (i = 0; i < rs->n && !res; i++) {
		struct range *r = &rs->r[i];

		if (r->kind != R_OPEN || !want(rs, r))
			continue;
		if (!r->has_head)
			res = batch_add(&b, rs, i, false, 0);
		if (!res && tails && !r->has_tail)
			res = batch_add(&b, rs, i, true, 0);
	}
	if (!res && b.n)
		res = batch_fetch(&b, rs, true);
	for (i = 0; i < b.n && !res; i++) {
		struct range *r = &rs->r[b.owner[i]];
		struct page *dst;

		/* a range's head comes before its tail in the batch */
		if (!r->has_head) {
			r->has_head = true;
			dst = &r->head;
		} else {
			r->has_tail = true;
			dst = &r->tail;
		}
		*dst = b.pages[i];
		memset(&b.pages[i], 0, sizeof(b.pages[i]));
		res = take_total(r, dst);
	}
	batch_release(&b);
	return res;
}

static bool is_new(const struct ranges *rs, const struct range *r)
{
	(void)rs;
	return !r->has_head;
}

static bool too_deep(const struct ranges *rs, const struct range *r)
{
	return r->total < 0 || r->total > rs->cover;
}

/*
 * Fetch the heads of the new ranges, then check that the totals still
 * add up to the listing's: an API that ignores the filter, or counts
 * otherwise, is caught before any more pages are asked for.
 */
static int fetch_new(struct ranges *rs)
{
	long sum = 0;
	size_t i;
	int res = fetch_ends(rs, is_new, false);

	for (i = 0; i < rs->n && !res; i++)
		sum += rs->r[i].total;
	if (!res && sum != rs->total) {
		log_warn("POST /v1/tasks/list: task_id ranges add up to %ld "
			 "tasks, not the listing's %ld; paging by cursor "
			 "instead",
			 sum, rs->total);
		return -EAGAIN;
	}
	return res;
}

static const char *last_id(const struct page *pg)
{
	return pg->tasks[pg->n - 1]->id;
}

/*
 * The cuts between lo and hi (exclusive) for k ranges: quantiles of the
 * first page when enough of its ids lie there, else by alphabet.
 */
static int cuts_between(const struct ranges *rs, const struct range *r,
			size_t k, char **cuts, size_t *ncuts)
{
	const struct page *pr = rs->probe;
	const char **ids = calloc(pr->n + r->head.n + r->tail.n + 1,
				  sizeof(*ids));
	const char **q = calloc(k + 1, sizeof(*q));
	const char *lo = last_id(&r->head), *hi = last_id(&r->tail);
	size_t i, n = 0, nq = 0;
	int res = 0;

	*ncuts = 0;
	if (!ids || !q) {
		res = -ENOMEM;
		goto out;
	}
	if (!rs->q->sort_field) {
		for (i = 0; i < pr->n; i++)
			ids[n++] = pr->tasks[i]->id;
		nq = idrange_quantiles(ids, n, lo, hi, k, q);
	}
	if (nq + 1 >= k && nq > 0) {
		for (i = 0; i < nq && !res; i++) {
			cuts[i] = strdup(q[i]);
			if (!cuts[i])
				res = -ENOMEM;
			else
				(*ncuts)++;
		}
		goto out;
	}
	for (i = 0; i < r->head.n; i++)
		ids[n++] = r->head.tasks[i]->id;
	for (i = 0; i < r->tail.n; i++)
		ids[n++] = r->tail.tasks[i]->id;
	res = idrange_interpolate(lo, hi, ids, n, k, cuts, ncuts);
out:
	free(ids);
	free(q);
	return res;
}

/*
 * Cut one open range (head and tail fetched, more than the window) in
 * three: its head, new open ranges between, its tail. Appended to out.
 */
static int split_one(struct ranges *rs, struct range *r, struct ranges *out)
{
	long ps = api_page_size, middle;
	char *cuts[IDRANGE_MAX_CUTS];
	const char *lo, *hi; /* in the task records: they stay put */
	size_t k, ncuts = 0, i;
	struct range *end;
	int res;

	if (r->head.n != (size_t)ps || r->tail.n != (size_t)ps ||
	    strcmp(last_id(&r->head), last_id(&r->tail)) >= 0)
		return -EAGAIN; /* not what a range this deep looks like */
	lo = last_id(&r->head);
	hi = last_id(&r->tail);
	middle = r->total - 2 * ps;
	k = idrange_count(middle, RANGE_PAGES * ps);
	res = cuts_between(rs, r, k, cuts, &ncuts);
	if (res)
		return res;
	res = range_add(out, NULL, false, NULL);
	if (!res) {
		end = &out->r[out->n - 1];
		end->kind = R_HEAD;
		end->head = r->head;
		end->total = (long)r->head.n;
		memset(&r->head, 0, sizeof(r->head));
	}
	for (i = 0; i <= ncuts && !res; i++)
		res = range_add(out, i ? cuts[i - 1] : lo, i > 0,
				i < ncuts ? cuts[i] : hi);
	if (!res)
		res = range_add(out, NULL, false, NULL);
	if (!res) {
		end = &out->r[out->n - 1];
		end->kind = R_TAIL;
		end->tail = r->tail;
		end->total = (long)r->tail.n;
		memset(&r->tail, 0, sizeof(r->tail));
	}
	for (i = 0; i < ncuts; i++)
		free(cuts[i]);
	return res;
}

/* Cut every open range that is too deep for the offset window. */
static int split_deep(struct ranges *rs)
{
	struct ranges out;
	size_t i;
	int res;

	res = fetch_ends(rs, too_deep, true);
	if (res)
		return res;
	out = *rs;
	out.r = NULL;
	out.n = out.cap = 0;
	for (i = 0; i < rs->n && !res; i++) {
		struct range *r = &rs->r[i];

		if (r->kind == R_OPEN && too_deep(rs, r)) {
			res = split_one(rs, r, &out);
			range_release(r);
		} else {
			res = range_add(&out, NULL, false, NULL);
			if (!res)
				out.r[out.n - 1] = *r; /* moved */
		}
		memset(r, 0, sizeof(*r));
	}
	ranges_release(rs);
	*rs = out;
	return res ? res : fetch_new(rs);
}

static int more_add(struct range *r, struct page *pg)
{
	struct page *m = grow(r->more, r->nmore, &r->capmore, sizeof(*m));

	if (!m)
		return -ENOMEM;
	r->more = m;
	r->more[r->nmore++] = *pg;
	memset(pg, 0, sizeof(*pg));
	return 0;
}

/* Every open range's offset pages after its head, all at once. */
static int fetch_offsets(struct ranges *rs)
{
	long ps = api_page_size, off;
	size_t i, n = 0;
	struct batch b;
	int res;

	for (i = 0; i < rs->n; i++)
		if (rs->r[i].kind == R_OPEN)
			n += (size_t)(rs->cover / ps) + 1;
	res = batch_init(&b, n);
	for (i = 0; i < rs->n && !res; i++) {
		const struct range *r = &rs->r[i];

		if (r->kind != R_OPEN || api_short_page(&r->head, ps))
			continue;
		for (off = ps; off < r->total && off <= API_OFFSET_MAX && !res;
		     off += ps)
			res = batch_add(&b, rs, i, false, off);
	}
	if (!res && b.n)
		res = batch_fetch(&b, rs, false);
	for (i = 0; i < b.n && !res; i++)
		res = more_add(&rs->r[b.owner[i]], &b.pages[i]);
	batch_release(&b);
	return res;
}

static long range_count(const struct range *r)
{
	long n = (long)(r->head.n + r->tail.n);
	size_t i;

	for (i = 0; i < r->nmore; i++)
		n += (long)r->more[i].n;
	return n;
}

/* An open range past the offset window: the rest by cursor. */
static int follow(struct ranges *rs, struct range *r)
{
	const struct page *last = r->nmore ? &r->more[r->nmore - 1] : &r->head;
	struct buf body = BUF_INIT(1 << 20);
	struct guard guard;
	char *cursor;
	int res;

	if (api_last_page(last) || range_count(r) >= r->total)
		return 0;
	guard_init(&guard, r->total);
	res = range_body(rs, r, false, &body);
	cursor = res ? NULL : strdup(last->next_cursor);
	if (!res && !cursor)
		res = -ENOMEM;
	while (cursor && !res && range_count(r) < r->total) {
		struct page pg;

		/* a cursor that comes back: the range would never end */
		if ((res = guard_cursor(&guard, cursor)))
			break;
		rs->requests++;
		res = api_fetch_page(buf_str(&body), api_page_size, 0, cursor,
				     false, &pg);
		free(cursor);
		cursor = NULL;
		if (!res && !api_last_page(&pg)) {
			cursor = strdup(pg.next_cursor);
			if (!cursor)
				res = -ENOMEM;
		}
		if (!res)
			res = more_add(r, &pg);
		page_release(&pg);
	}
	free(cursor);
	buf_release(&body);
	guard_release(&guard);
	return res == -EINVAL || res == -ENOENT ? -EAGAIN : res;
}

/* Append r's tasks in ascending order to seq. */
static void range_tasks(const struct range *r, struct task **seq, size_t *n)
{
	size_t i, j;

	for (i = 0; i < r->head.n; i++)
		seq[(*n)++] = r->head.tasks[i];
	for (i = 0; i < r->nmore; i++)
		for (j = 0; j < r->more[i].n; j++)
			seq[(*n)++] = r->more[i].tasks[j];
	for (i = r->tail.n; i-- > 0;)
		seq[(*n)++] = r->tail.tasks[i];
}

/*
 * Check the whole and hand it to the sink: every range holds its total,
 * they add up to the listing's, the ids run strictly upward.
 */
static int deliver_checked(struct ranges *rs, long total, bool desc,
			   api_sink sink, void *ctx)
{
	struct task **seq;
	long sum = 0;
	size_t i, n = 0;
	int res = 0;

	for (i = 0; i < rs->n; i++) {
		long got = range_count(&rs->r[i]);

		if (got != rs->r[i].total) {
			log_warn("POST /v1/tasks/list: a task_id range held "
				 "%ld "
				 "tasks, not its total %ld; paging by cursor "
				 "instead",
				 got, rs->r[i].total);
			return -EAGAIN;
		}
		sum += got;
	}
	if (sum != total) {
		log_warn("POST /v1/tasks/list: task_id ranges add up to %ld "
			 "tasks, not the listing's %ld; paging by cursor "
			 "instead",
			 sum, total);
		return -EAGAIN;
	}
	seq = calloc((size_t)sum + 1, sizeof(*seq));
	if (!seq)
		return -ENOMEM;
	for (i = 0; i < rs->n; i++)
		range_tasks(&rs->r[i], seq, &n);
	for (i = 1; i < n; i++)
		if (strcmp(seq[i - 1]->id, seq[i]->id) >= 0) {
			log_warn("POST /v1/tasks/list: task_id ranges out of "
				 "order; paging by cursor instead");
			free(seq);
			return -EAGAIN;
		}
	log_debug("POST /v1/tasks/list: %zu tasks in %zu task_id ranges, %ld "
		  "requests after the first",
		  n, rs->n, rs->requests);
	for (i = 0; i < n && !res; i++)
		res = sink(ctx, seq[desc ? n - 1 - i : i]);
	free(seq);
	return res;
}

static int plausible(struct ranges *rs);

/* The first ranges: cut at the first page's quantiles, or one range. */
static int first_ranges(struct ranges *rs)
{
	const struct page *pr = rs->probe;
	long ps = api_page_size;
	const char **ids, **cuts;
	size_t k, ncuts = 0, i;
	int res = 0;

	if (rs->q->sort_field) {
		/* the first page is one end of the whole, sorted by task_id */
		struct range *r;

		res = range_add(rs, NULL, false, NULL);
		if (res)
			return res;
		r = &rs->r[0];
		r->total = pr->total;
		if (rs->q->sort_desc)
			r->has_tail = true;
		else
			r->has_head = true;
		return page_copy(pr, rs->q->sort_desc ? &r->tail : &r->head);
	}
	k = idrange_count(pr->total, RANGE_PAGES * ps);
	ids = calloc(pr->n + 1, sizeof(*ids));
	cuts = calloc(k + 1, sizeof(*cuts));
	if (!ids || !cuts)
		res = -ENOMEM;
	for (i = 0; !res && i < pr->n; i++)
		ids[i] = pr->tasks[i]->id;
	if (!res)
		ncuts = idrange_quantiles(ids, pr->n, NULL, NULL, k, cuts);
	for (i = 0; i <= ncuts && !res; i++)
		res = range_add(rs, i ? cuts[i - 1] : NULL, true,
				i < ncuts ? cuts[i] : NULL);
	free(ids);
	free(cuts);
	if (!res)
		res = plausible(rs);
	return res ? res : fetch_new(rs);
}

static bool first_few(const struct ranges *rs, const struct range *r)
{
	return !r->has_head && (size_t)(r - rs->r) < RANGES_FIRST;
}

/*
 * Whether the listing's total is what the API holds: the heads of the
 * first RANGES_FIRST ranges (cut at the first page's quantiles, so each
 * is about total / ranges) must hold a quarter of their share at least.
 * -EDOM when not (a total of 10^14 for a thousand tasks): the caller
 * follows the cursor instead, without asking for a thousand heads.
 */
static int plausible(struct ranges *rs)
{
	long sum = 0;
	double share;
	size_t i, n = rs->n < RANGES_FIRST ? rs->n : RANGES_FIRST;
	int res;

	if (rs->n <= RANGES_FIRST)
		return 0; /* fetch_new checks the whole sum as cheaply */
	res = fetch_ends(rs, first_few, false);
	/* a head that is its range's last page counts what it holds: a
	 * server that claims 10^14 for the whole claims it for each range */
	for (i = 0; i < n && !res; i++)
		sum += rs->r[i].has_head && api_last_page(&rs->r[i].head) ?
			(long)rs->r[i].head.n :
			rs->r[i].total;
	share = (double)rs->total * (double)n / (double)rs->n;
	if (!res && (double)sum * 4 < share) {
		log_warn("POST /v1/tasks/list: the listing's total (%ld) is "
			 "not what the API holds (%ld tasks in the first %zu "
			 "of %zu task_id ranges); following the cursor",
			 rs->total, sum, n, rs->n);
		return -EDOM;
	}
	return res;
}

int api_list_ranges(const struct list_body *q, const struct page *probe,
		    api_sink sink, void *ctx)
{
	long ps = api_page_size;
	struct ranges rs = { .q = q, .probe = probe };
	size_t i;
	int res, round;

	if (probe->total < 0 || q->range_lo || q->range_hi)
		return -EAGAIN;
	rs.total = probe->total;
	rs.cover = (API_OFFSET_MAX / ps + 1) * ps;
	res = first_ranges(&rs);
	for (round = 0; round < SPLIT_ROUNDS && !res; round++) {
		for (i = 0; i < rs.n; i++)
			if (rs.r[i].kind == R_OPEN && too_deep(&rs, &rs.r[i]))
				break;
		if (i == rs.n)
			break;
		res = split_deep(&rs);
	}
	if (!res)
		res = fetch_offsets(&rs);
	for (i = 0; i < rs.n && !res; i++)
		if (rs.r[i].kind == R_OPEN)
			res = follow(&rs, &rs.r[i]);
	if (!res)
		res = deliver_checked(&rs, probe->total,
				      q->sort_field && q->sort_desc, sink, ctx);
	ranges_release(&rs);
	return res;
}
