// SPDX-License-Identifier: MIT
/*
 * api_page: one request to /v1/tasks (through sched.c) and one list page,
 * and a window of list pages fetched at once (threads of their own, each
 * in its spawner's sched context; sched.c keeps the daemon within
 * max_connections). Shared by api.c and api_ranges.c through api_i.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "api_i.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "scheduler.h"

unsigned api_page_size = 100;
unsigned api_max_conns = 4;

int api_list_path(unsigned limit, long offset, const char *cursor,
		  bool include_total, struct buf *out)
{
	int res = buf_printf(out, "/v1/tasks/list?limit=%u", limit);

	if (!res && cursor) {
		char *e = http_escape(cursor);

		res = e ? buf_printf(out, "&cursor=%s", e) : -ENOMEM;
		free(e);
	} else if (!res && offset > 0) {
		res = buf_printf(out, "&offset=%ld", offset);
	}
	if (!res && include_total)
		res = buf_addstr(out, "&include_total=true");
	return res;
}

/* The most of a request body a debug line shows. */
#define LOG_BODY_MAX 200

/*
 * A 403 refuses one task or folder, or the key itself (an older render of
 * Mixpeek's errors gives a bad key 403): the probe request says which,
 * once per key_retry_ms at most (a user cannot make every folder fail by
 * asking for a task of another namespace). Whether the key was refused.
 */
static bool key_refused(int *change)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct timespec ok_at; /* the key's last acceptance */
	struct http_response probe;
	struct timespec now;
	bool refused = false;
	int res;

	pthread_mutex_lock(&lock);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (ok_at.tv_sec &&
	    (now.tv_sec - ok_at.tv_sec) * 1000L < http_key_retry_ms()) {
		pthread_mutex_unlock(&lock);
		return false;
	}
	res = sched_request("POST", "/v1/tasks/list?limit=1", "{}", NULL,
			    json_whole_object, &probe);
	if (probe.status == 401 || probe.status == 403) {
		http_key_refused(&probe);
		*change = probe.key_change;
		refused = true;
	} else if (!res) {
		ok_at = now;
	}
	pthread_mutex_unlock(&lock);
	http_response_release(&probe);
	return refused;
}

int api_request(const char *method, const char *path, const char *body,
		const char *merge_arg, struct http_response *resp)
{
	struct timespec t0, t1;
	char msg[200];
	int res;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	res = sched_request(method, path, body, merge_arg, json_whole_object,
			    resp);
	if (resp->status == 403 && key_refused(&resp->key_change))
		log_debug("%s %s: HTTP 403, and the key is refused", method,
			  path);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* the body tells listings apart; it holds no secret */
	log_debug("%s %s%s%.*s%s: status %ld, %zu bytes, %ld ms, %u attempts",
		  method, path, body ? " " : "", LOG_BODY_MAX, body ? body : "",
		  body && strlen(body) > LOG_BODY_MAX ? "..." : "",
		  resp->status, resp->body.len,
		  (t1.tv_sec - t0.tv_sec) * 1000 +
			  (t1.tv_nsec - t0.tv_nsec) / 1000000,
		  resp->attempts);
	if (resp->key_change < 0)
		log_info("the API accepts the key again");
	if (!res || res == -EINTR) /* -EINTR: nobody waits, not sent */
		return res;
	json_error_message(buf_str(&resp->body), resp->body.len, msg,
			   sizeof(msg));
	if (resp->key_change > 0) /* once, not once per request */
		log_err("the API rejected the key (%s%s%s): every fetch fails "
			"with EACCES, and the key is tried again at most once "
			"per ttl",
			resp->error, msg[0] ? ": " : "", msg);
	if (res == -ENOENT || res == -EACCES)
		log_debug("%s %s: %s", method, path, resp->error);
	else /* the same failure, again and again (an outage): once a ttl */
		log_once(LOG_ERR, "%s %s: %s%s%s", method, path, resp->error,
			 msg[0] ? ": " : "", msg);
	return res;
}

int api_fetch_page(const char *body, unsigned limit, long offset,
		   const char *cursor, bool total, struct page *pg)
{
	struct buf path = BUF_INIT(65536);
	struct http_response resp;
	int res;

	memset(pg, 0, sizeof(*pg));
	pg->total = -1;
	res = api_list_path(limit, offset, cursor, total, &path);
	if (res)
		return res;
	res = api_request("POST", buf_str(&path), body, NULL, &resp);
	if (!res) {
		res = json_parse_page(buf_str(&resp.body), resp.body.len, pg);
		if (res == -EIO)
			log_err("POST %s: HTTP %ld: body is not a task list",
				buf_str(&path), resp.status);
		else if (!res && pg->skipped)
			log_warn("POST %s: skipped %zu malformed tasks (no "
				 "task_id, a NUL in it, or a key given twice)",
				 buf_str(&path), pg->skipped);
	}
	http_response_release(&resp);
	buf_release(&path);
	return res;
}

struct window {
	pthread_mutex_t lock;
	struct sched_ctx ctx; /* the spawner's, for the workers' requests */
	const char *const *bodies; /* one per page */
	const long *offsets;
	struct page *pages;
	int *errs;
	size_t n;
	enum window_total total; /* which pages ask for the total */
	size_t next;		 /* protected by lock */
	int failed;		 /* protected by lock */
};

static void *window_worker(void *arg)
{
	struct window *w = arg;

	*sched_ctx() = w->ctx;
	for (;;) {
		size_t i;

		pthread_mutex_lock(&w->lock);
		i = w->failed ? w->n : w->next++;
		pthread_mutex_unlock(&w->lock);
		if (i >= w->n)
			return NULL;
		w->errs[i] =
			api_fetch_page(w->bodies[i], api_page_size,
				       w->offsets[i], NULL,
				       w->total == WINDOW_TOTAL_ALL ||
					       (w->total == WINDOW_TOTAL_LAST &&
						i + 1 == w->n),
				       &w->pages[i]);
		if (w->errs[i]) {
			pthread_mutex_lock(&w->lock);
			w->failed = 1;
			pthread_mutex_unlock(&w->lock);
		}
	}
}

int api_fetch_window(const char *const *bodies, const long *offsets, size_t n,
		     enum window_total total, struct page *pages)
{
	struct window w = { .ctx = *sched_ctx(),
			    .bodies = bodies,
			    .offsets = offsets,
			    .pages = pages,
			    .n = n,
			    .total = total };
	pthread_t tids[64];
	size_t i, nthreads = n < api_max_conns ? n : api_max_conns;
	int res = 0;

	if (nthreads > 64)
		nthreads = 64;
	w.errs = calloc(n, sizeof(*w.errs));
	if (!w.errs)
		return -ENOMEM;
	pthread_mutex_init(&w.lock, NULL);
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&tids[i], NULL, window_worker, &w))
			break;
	if (i == 0)
		window_worker(&w); /* no thread: do it here */
	nthreads = i;
	for (i = 0; i < nthreads; i++)
		pthread_join(tids[i], NULL);
	for (i = 0; i < n && !res; i++)
		res = w.errs[i];
	pthread_mutex_destroy(&w.lock);
	free(w.errs);
	return res;
}

/* ---- guards ---- */

void guard_init(struct guard *g, long total)
{
	memset(g, 0, sizeof(*g));
	/* a tenth more than the total said, or a page: tasks that joined */
	g->max_tasks = total < 0 ? -1 :
				   total +
			(total / 10 > (long)api_page_size ?
				 total / 10 :
				 (long)api_page_size);
}

void guard_release(struct guard *g)
{
	free(g->cursors);
	memset(g, 0, sizeof(*g));
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 0x100000001b3u;
	return h;
}

int guard_cursor(struct guard *g, const char *cursor)
{
	uint64_t h = fnv1a(cursor), *v;
	size_t i;

	for (i = 0; i < g->n; i++)
		if (g->cursors[i] == h) {
			log_err("POST /v1/tasks/list: a cursor came back after "
				"%zu pages: the listing would never end; "
				"stopping",
				g->n);
			return -EIO;
		}
	if (g->n == g->cap) {
		v = realloc(g->cursors,
			    (g->cap ? 2 * g->cap : 64) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		g->cursors = v;
		g->cap = g->cap ? 2 * g->cap : 64;
	}
	g->cursors[g->n++] = h;
	return 0;
}

int guard_count(const struct guard *g, long count)
{
	if (g->max_tasks < 0 || count <= g->max_tasks)
		return 0;
	log_err("POST /v1/tasks/list: more tasks than the listing's total "
		"said (%ld, a tenth more allowed); stopping",
		g->max_tasks);
	return -EIO;
}
