// SPDX-License-Identifier: MIT
/*
 * wait: <task>/.wait, a file whose read is the wait for the task to end.
 *
 * A READ of .wait for a task in a terminal status is answered at once
 * from the store ("COMPLETED\n"). Otherwise the request is kept (a
 * struct waiter) and the handler returns: no FUSE worker thread waits.
 * Two threads answer the kept requests later:
 *
 * - the poller fetches every waited-for task together, one list request
 *   with a task_id `in` filter per page of ids (store_poll, through the
 *   store, so kcache and every folder see the change; background work
 *   for the scheduler), however many readers wait on them: after 1 s,
 *   then twice as long after each poll that shows no change, up to 30 s,
 *   and back to 1 s when a status changes or a new wait begins. It is
 *   the only one here that blocks on HTTP.
 * - the replier never blocks: it answers what the store's change hook
 *   (wait_changed) reports terminal, e.g. from a listing refresh, and
 *   the reads that reach wait_max (ETIMEDOUT).
 *
 * A read ends with the status and a newline; ENOENT when the API says the
 * task is gone (404); EACCES when it rejects the key; EIO when polls fail
 * for longer than timeout; ETIMEDOUT after wait_max; EINTR at once when
 * the reader is interrupted (fuse_req_interrupt_func: the callback answers
 * from the thread that read the INTERRUPT); EIO for every read still kept
 * at SIGTERM (wait_shutdown, while the loop still runs) or unmount
 * (wait_stop). The kernel sends a READ that failed once more at once: that
 * second try gets the same error (struct retry).
 *
 * Only terminal answers ever reach the kernel's page cache, and they are
 * final. The attributes stay the same while the task runs (see
 * WAIT_SIZE): a change would make the kernel drop the file's pages while
 * a READ holds one locked, blocking the process that looked.
 *
 * Lock order: the store's lock, then waits.lock (the change hook takes it
 * under the store's). Nothing here calls the store, or replies, with
 * waits.lock held. A kept request is answered exactly once: whoever takes
 * its waiter out of the tables (under the lock) answers it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "fs_i.h"
#include "log.h"

#define WAIT_POLL_MIN 1.0    /* seconds between polls, first */
#define WAIT_POLL_MAX 30.0   /* ... and at most */
#define WAIT_KEPT_MAX 100000 /* reads kept at once; more get EAGAIN */
/* Quarters of the kernel's request timeout a read of .wait may take. */
#define WAIT_KERNEL_SHARE 3
/*
 * A READ that fails makes the kernel send it once more at once (the page
 * cache's readahead failed: it reads the page itself): that one gets the
 * same error, if it comes from the same thread within WAIT_RETRY_WINDOW.
 */
#define WAIT_RETRIES 256
#define WAIT_RETRY_WINDOW 2.0
/* How long SIGTERM waits for those READs before the loop ends. */
#define WAIT_SHUTDOWN_GRACE 1.0

struct wtask;

/* One kept READ. */
struct waiter {
	uint64_t serial; /* the interrupt callback's handle */
	fuse_req_t req;
	uint64_t ino; /* of the file read, and by which thread */
	pid_t pid;
	size_t size; /* of the READ */
	off_t off;
	double deadline; /* wait_max, monotonic */
	bool armed;	 /* in its task's list: others may answer it */
	bool interrupted;
	struct wtask *wt;
	struct waiter *prev, *next; /* in wt's list; next: in a done list */
	int err;		    /* the answer: -errno, or 0 and text */
	char text[WAIT_TEXT_MAX];
	UT_hash_handle hh; /* waits.by_serial */
};

/* A task someone waits for. */
struct wtask {
	struct waiter *head; /* armed waiters */
	size_t count;
	double down_since; /* the start of the first failed poll, or 0 */
	double changed_at; /* when the status last changed */
	char *status;	   /* the last one seen, malloc'd, or NULL */
	bool seen;	   /* the store reported a change */
	UT_hash_handle hh; /* waits.tasks */
	char id[];
};

/* An error answered, for the kernel's second try of the same READ. */
struct retry {
	uint64_t ino;
	pid_t pid;
	int err;
	bool at_shutdown;
	double until; /* monotonic; 0: a free slot */
};

struct waits {
	pthread_mutex_t lock;
	/* CLOCK_MONOTONIC; retried: a second try came */
	pthread_cond_t poll_wake, reply_wake, retried;
	struct retry retries[WAIT_RETRIES];
	size_t retry_pos;
	size_t shutdown_left; /* second tries still to come at shutdown */
	struct wtask *tasks;
	struct waiter *by_serial; /* every waiter, armed or not */
	size_t kept;
	uint64_t serial;
	double due;	 /* the next poll of them all, monotonic; 0: none */
	double interval; /* since the last change */
	unsigned batch;	 /* ids per poll request (page_size) */
	double timeout, wait_max;
	bool stop;
	bool poller_up, replier_up;
	pthread_t poller, replier;
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* fs->waits: set once the threads run (the sigwait thread may look). */
static struct waits *waits_of(struct fs *fs)
{
	return __atomic_load_n(&fs->waits, __ATOMIC_ACQUIRE);
}

/* The interval after one that showed no change. */
static double longer(double interval)
{
	return interval * 2 < WAIT_POLL_MAX ? interval * 2 : WAIT_POLL_MAX;
}

/* Wait on c until the monotonic time until (INFINITY: no bound). */
static void cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, double until)
{
	struct timespec ts;

	if (isinf(until)) {
		pthread_cond_wait(c, m);
		return;
	}
	ts.tv_sec = (time_t)until;
	ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
	pthread_cond_timedwait(c, m, &ts);
}

int wait_text(const char *id, char *text, size_t cap, time_t *when)
{
	struct task *t = store_task_peek(id);
	int len = 0;

	if (t && task_status_terminal(t->status)) {
		len = snprintf(text, cap, "%s\n", t->status);
		if (when)
			*when = t->changed;
	}
	task_unref(t);
	return len > 0 && (size_t)len < cap ? len : 0;
}

static void reply_text(fuse_req_t req, const char *text, size_t len,
		       size_t size, off_t off)
{
	if (off < 0 || (size_t)off >= len)
		size = 0;
	else if (size > len - (size_t)off)
		size = len - (size_t)off;
	fuse_reply_buf(req, size ? text + off : NULL, size);
}

/* Answer and free the waiters of a done list (waits.lock not held). */
static void reply_done(struct waiter *done)
{
	struct waiter *w;

	while ((w = done)) {
		done = w->next;
		if (w->err)
			fuse_reply_err(w->req, -w->err);
		else
			reply_text(w->req, w->text, strlen(w->text), w->size,
				   w->off);
		free(w);
	}
}

static void task_free_locked(struct waits *ws, struct wtask *wt)
{
	HASH_DEL(ws->tasks, wt);
	free(wt->status);
	free(wt);
}

/* Take w out of every table onto *done, to be answered err. */
static void take_locked(struct waits *ws, struct waiter *w, int err,
			struct waiter **done)
{
	struct wtask *wt = w->wt;

	HASH_DEL(ws->by_serial, w);
	ws->kept--;
	if (w->armed) {
		if (w->prev)
			w->prev->next = w->next;
		else
			wt->head = w->next;
		if (w->next)
			w->next->prev = w->prev;
		if (!--wt->count)
			task_free_locked(ws, wt);
	}
	w->err = err;
	w->next = *done;
	*done = w;
	if (err) {
		struct retry *r = &ws->retries[ws->retry_pos];

		ws->retry_pos = (ws->retry_pos + 1) % WAIT_RETRIES;
		if (r->until && r->at_shutdown)
			ws->shutdown_left--;
		r->ino = w->ino;
		r->pid = w->pid;
		r->err = err;
		r->at_shutdown = ws->stop;
		r->until = mono() + WAIT_RETRY_WINDOW;
		ws->shutdown_left += r->at_shutdown;
	}
}

/* The error answered to this thread's last READ of ino, if it was just
 * now: the kernel's second try. 0 if none. */
static int retry_locked(struct waits *ws, uint64_t ino, pid_t pid)
{
	double now = mono();
	size_t i;

	for (i = 0; i < WAIT_RETRIES; i++) {
		struct retry *r = &ws->retries[i];

		if (r->until > now && r->ino == ino && r->pid == pid) {
			if (r->at_shutdown && !--ws->shutdown_left)
				pthread_cond_broadcast(&ws->retried);
			r->until = 0;
			return r->err;
		}
	}
	return 0;
}

/* End every wait on wt: with status (terminal) or with err. */
static void finish_locked(struct waits *ws, struct wtask *wt, int err,
			  const char *status, struct waiter **done)
{
	size_t n = wt->count;

	while (n--) {
		struct waiter *w = wt->head;

		if (status)
			snprintf(w->text, sizeof(w->text), "%s\n", status);
		take_locked(ws, w, err, done); /* frees wt with the last */
	}
}

static struct wtask *find_locked(struct waits *ws, const char *id)
{
	struct wtask *wt;

	HASH_FIND_STR(ws->tasks, id, wt);
	return wt;
}

enum seen { SEEN_END, SEEN_SAME, SEEN_NEW };

/* A status seen for wt (a poll or the store): a terminal one ends it. */
static enum seen saw_locked(struct waits *ws, struct wtask *wt,
			    const char *status, struct waiter **done)
{
	char *copy;

	if (task_status_terminal(status)) {
		finish_locked(ws, wt, 0, status, done);
		return SEEN_END;
	}
	if (wt->status && !strcmp(wt->status, status))
		return SEEN_SAME;
	copy = strdup(status);
	if (copy) {
		free(wt->status);
		wt->status = copy;
	}
	ws->interval = WAIT_POLL_MIN; /* it moves: look again soon */
	wt->changed_at = mono();
	return SEEN_NEW;
}

/*
 * What one poll of id found (res, t), the poll having started at start.
 * Whether it showed a change (the next poll comes soon then).
 */
static bool polled_locked(struct waits *ws, const char *id, int res,
			  const struct task *t, double start,
			  struct waiter **done)
{
	struct wtask *wt = find_locked(ws, id);
	double now = mono();

	if (!wt)
		return false; /* nobody waits any more */
	if (!res) {
		wt->down_since = 0;
		switch (saw_locked(ws, wt, t->status, done)) {
		case SEEN_END: return true;
		case SEEN_SAME:
			/* not if the store's hook saw this poll's change */
			return wt->changed_at >= start;
		case SEEN_NEW: return true;
		}
	} else if (res == -ENOENT || res == -EACCES || res == -EPERM) {
		finish_locked(ws, wt, res, NULL, done);
		return true;
	}
	/* an outage: how long since the first poll that failed */
	if (!wt->down_since)
		wt->down_since = start;
	if (now - wt->down_since >= ws->timeout)
		finish_locked(ws, wt, -EIO, NULL, done);
	return false;
}

/* The ids of every task waited for, malloc'd; *n of them. */
static char **waited_locked(struct waits *ws, size_t *n)
{
	struct wtask *wt, *tmp;
	char **ids = calloc(HASH_COUNT(ws->tasks) + 1, sizeof(*ids));

	*n = 0;
	if (!ids)
		return NULL;
	HASH_ITER(hh, ws->tasks, wt, tmp)
	if ((ids[*n] = strdup(wt->id)))
		++*n;
	return ids;
}

/* Poll ids[0..n), a page at a time; answer what ended. Lock not held. */
static bool poll_all(struct waits *ws, char **ids, size_t n, double start)
{
	int *res = calloc(n + 1, sizeof(*res));
	bool moved = false;
	size_t i, k;

	for (i = 0; res && i < n; i += k) {
		k = n - i < ws->batch ? n - i : ws->batch;
		store_poll(ids + i, k, res + i);
	}
	for (i = 0; res && i < n; i++) {
		struct task *t = store_task_peek(ids[i]);
		struct waiter *done = NULL;

		if (!res[i] && !t)
			res[i] = -EIO; /* evicted at once: as a failed poll */
		pthread_mutex_lock(&ws->lock);
		moved |= polled_locked(ws, ids[i], res[i], t, start, &done);
		pthread_mutex_unlock(&ws->lock);
		reply_done(done);
		task_unref(t);
	}
	free(res);
	return moved;
}

static void *poller_main(void *arg)
{
	struct waits *ws = arg;

	/* polls are background work for the scheduler */
	sched_ctx()->cls = SCHED_BACKGROUND;
	pthread_mutex_lock(&ws->lock);
	while (!ws->stop) {
		double start = mono(), set;
		char **ids;
		size_t n, i;
		bool moved;

		if (!ws->tasks)
			ws->due = 0;
		if (!ws->due || ws->due > start) {
			cond_wait_until(&ws->poll_wake, &ws->lock,
					ws->due ? ws->due : INFINITY);
			continue;
		}
		ids = waited_locked(ws, &n);
		/* a new wait or a change meanwhile may bring it forward */
		ws->due = set = start + ws->interval;
		pthread_mutex_unlock(&ws->lock);
		moved = ids ? poll_all(ws, ids, n, start) : false;
		for (i = 0; ids && i < n; i++)
			free(ids[i]);
		free(ids);
		pthread_mutex_lock(&ws->lock);
		if (ws->due == set) {
			if (!moved)
				ws->interval = longer(ws->interval);
			ws->due = mono() + ws->interval;
		}
	}
	pthread_mutex_unlock(&ws->lock);
	return NULL;
}

/* Have the next poll come within after seconds. */
static void poll_soon_locked(struct waits *ws, double after)
{
	double at = mono() + after;

	if (!ws->due || at < ws->due) {
		ws->due = at;
		pthread_cond_signal(&ws->poll_wake);
	}
}

/* The tasks the store reported changed: what it holds for them now. */
static void check_seen(struct waits *ws, char **ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct task *t = store_task_peek(ids[i]);
		struct waiter *done = NULL;
		struct wtask *wt;

		pthread_mutex_lock(&ws->lock);
		wt = find_locked(ws, ids[i]);
		/* gone or evicted: the next poll asks the API now */
		if (wt &&
		    (!t || saw_locked(ws, wt, t->status, &done) == SEEN_NEW))
			poll_soon_locked(ws, t ? ws->interval : 0);
		pthread_mutex_unlock(&ws->lock);
		reply_done(done);
		task_unref(t);
		free(ids[i]);
	}
}

/* The ids of the tasks marked seen (unmarked), malloc'd; n = 0 if none. */
static char **seen_locked(struct waits *ws, size_t *n)
{
	struct wtask *wt, *tmp;
	char **ids = NULL;
	size_t cap = 0;

	*n = 0;
	HASH_ITER(hh, ws->tasks, wt, tmp)
	{
		if (!wt->seen)
			continue;
		if (*n == cap) {
			char **v = realloc(ids,
					   (cap = cap ? 2 * cap : 16) *
						   sizeof(*ids));

			if (!v)
				break; /* stays seen: next time */
			ids = v;
		}
		if (!(ids[*n] = strdup(wt->id)))
			break;
		wt->seen = false;
		++*n;
	}
	return ids;
}

static void *replier_main(void *arg)
{
	struct waits *ws = arg;

	pthread_mutex_lock(&ws->lock);
	while (!ws->stop) {
		struct waiter *w, *tmp, *done = NULL;
		double now = mono(), next = INFINITY;
		size_t n;
		char **ids;

		HASH_ITER(hh, ws->by_serial, w, tmp)
		{
			if (!w->armed)
				continue;
			if (w->deadline <= now)
				take_locked(ws, w, -ETIMEDOUT, &done);
			else if (w->deadline < next)
				next = w->deadline;
		}
		ids = seen_locked(ws, &n);
		if (!done && !n) {
			free(ids);
			cond_wait_until(&ws->reply_wake, &ws->lock, next);
			continue;
		}
		pthread_mutex_unlock(&ws->lock);
		reply_done(done);
		check_seen(ws, ids, n);
		free(ids);
		pthread_mutex_lock(&ws->lock);
	}
	pthread_mutex_unlock(&ws->lock);
	return NULL;
}

int wait_stats(struct fs *fs, struct buf *out)
{
	struct waits *ws = waits_of(fs);
	size_t kept = 0, tasks = 0;

	if (ws) {
		pthread_mutex_lock(&ws->lock);
		kept = ws->kept;
		tasks = HASH_COUNT(ws->tasks);
		pthread_mutex_unlock(&ws->lock);
	}
	return buf_printf(out, "waits %zu\nwaited_tasks %zu\n", kept, tasks);
}

/* The store's change hook, through kcache's (under the store's lock). */
void wait_changed(struct fs *fs, const char *id)
{
	struct waits *ws = waits_of(fs);
	struct wtask *wt;

	if (!ws)
		return;
	pthread_mutex_lock(&ws->lock);
	if ((wt = find_locked(ws, id))) {
		wt->seen = true;
		pthread_cond_signal(&ws->reply_wake);
	}
	pthread_mutex_unlock(&ws->lock);
}

/*
 * FUSE_INTERRUPT for a kept READ. libfuse calls this with the request's
 * own lock held: from the thread that read the INTERRUPT (answering here
 * is safe: that thread holds a reference on the request), or from
 * fuse_req_interrupt_func in wait_read (not armed yet: wait_read answers).
 */
static void interrupted(fuse_req_t req, void *data)
{
	struct waits *ws = waits_of(fuse_req_userdata(req));
	uint64_t serial = (uint64_t)(uintptr_t)data;
	struct waiter *w, *done = NULL;

	if (!ws)
		return;
	pthread_mutex_lock(&ws->lock);
	HASH_FIND(hh, ws->by_serial, &serial, sizeof(serial), w);
	if (w && w->armed)
		take_locked(ws, w, -EINTR, &done);
	else if (w)
		w->interrupted = true;
	pthread_mutex_unlock(&ws->lock);
	reply_done(done);
}

/* Arm w on the task id: from now on any thread may answer it. */
static int arm_locked(struct waits *ws, struct waiter *w, const char *id,
		      bool fresh, const char *status)
{
	struct wtask *wt = find_locked(ws, id);
	size_t len = strlen(id);

	if (!wt) {
		if (!(wt = calloc(1, sizeof(*wt) + len + 1)))
			return -ENOMEM;
		memcpy(wt->id, id, len + 1);
		wt->status = status ? strdup(status) : NULL;
		HASH_ADD(hh, ws->tasks, id[0], len, wt);
		/* a record within its ttl was just fetched: poll in 1 s,
		 * with the others that begin meanwhile */
		ws->interval = WAIT_POLL_MIN;
		poll_soon_locked(ws, fresh ? WAIT_POLL_MIN : 0);
	}
	w->wt = wt;
	w->armed = true;
	w->next = wt->head;
	if (wt->head)
		wt->head->prev = w;
	wt->head = w;
	wt->count++;
	pthread_cond_signal(&ws->reply_wake); /* a new deadline */
	return 0;
}

void wait_read(struct fs *fs, fuse_req_t req, struct node *n, size_t size,
	       off_t off)
{
	struct waits *ws = waits_of(fs);
	const char *id = node_value(node_task(n));
	uint64_t ino = node_ino(&fs->nodes, n);
	pid_t pid = fuse_req_ctx(req)->pid;
	struct waiter *w, *done = NULL;
	char text[WAIT_TEXT_MAX];
	struct task *t;
	char *status;
	bool fresh;
	int len, res = 0;

	if (ws) {
		pthread_mutex_lock(&ws->lock);
		res = retry_locked(ws, ino, pid);
		pthread_mutex_unlock(&ws->lock);
	}
	if (res) {
		fuse_reply_err(req, -res);
		return;
	}
	len = wait_text(id, text, sizeof(text), NULL);
	if (len) {
		reply_text(req, text, (size_t)len, size, off);
		return; /* terminal already: no request */
	}
	t = store_task_peek(id);
	fresh = t && store_task_left(t) > 0;
	status = t ? strdup(t->status) : NULL;
	task_unref(t);
	w = calloc(1, sizeof(*w));
	if (!ws || !w) {
		free(status);
		free(w);
		fuse_reply_err(req, ws ? ENOMEM : EIO);
		return;
	}
	w->req = req;
	w->ino = ino;
	w->pid = pid;
	w->size = size;
	w->off = off;
	pthread_mutex_lock(&ws->lock);
	w->deadline = mono() + ws->wait_max;
	w->serial = ++ws->serial;
	res = ws->stop ? -EIO : ws->kept >= WAIT_KEPT_MAX ? -EAGAIN : 0;
	if (!res) {
		HASH_ADD(hh, ws->by_serial, serial, sizeof(w->serial), w);
		ws->kept++;
	}
	pthread_mutex_unlock(&ws->lock);
	if (res) {
		free(status);
		free(w);
		fuse_reply_err(req, -res);
		return;
	}
	/* may call interrupted() now, which finds w not armed */
	fuse_req_interrupt_func(req, interrupted, (void *)(uintptr_t)w->serial);
	pthread_mutex_lock(&ws->lock);
	if (w->interrupted || ws->stop)
		res = w->interrupted ? -EINTR : -EIO;
	else
		res = arm_locked(ws, w, id, fresh, status);
	if (res)
		take_locked(ws, w, res, &done);
	pthread_mutex_unlock(&ws->lock);
	free(status);
	reply_done(done); /* w is not ours once armed */
}

/*
 * The kernel's limit on a FUSE request's answer (Linux 6.14 and later:
 * fs.fuse.default_request_timeout for mounts that set none, capped by
 * fs.fuse.max_request_timeout), in seconds; 0: none. A READ of .wait kept
 * past it would make the kernel abort the whole mount.
 */
static long kernel_request_timeout(void)
{
	static const char *const files[] = {
		"/proc/sys/fs/fuse/default_request_timeout",
		"/proc/sys/fs/fuse/max_request_timeout",
	};
	long limit = 0, v;
	size_t i;
	FILE *f;

	for (i = 0; i < sizeof(files) / sizeof(*files); i++) {
		f = fopen(files[i], "re");
		if (!f)
			continue;
		if (fscanf(f, "%ld", &v) == 1 && v > 0 && (!limit || v < limit))
			limit = v;
		fclose(f);
	}
	return limit;
}

int wait_start(struct fs *fs)
{
	struct waits *ws = calloc(1, sizeof(*ws));
	pthread_condattr_t ca;
	long kernel;

	if (!ws)
		return -ENOMEM;
	ws->timeout = fs->opts->timeout;
	ws->wait_max = fs->opts->wait_max;
	kernel = kernel_request_timeout();
	if (kernel && kernel * WAIT_KERNEL_SHARE / 4 < ws->wait_max) {
		/* answered before the kernel gives up on the mount */
		ws->wait_max = kernel * WAIT_KERNEL_SHARE / 4 > 1 ?
			kernel * WAIT_KERNEL_SHARE / 4 :
			1;
		log_info("the kernel aborts a FUSE request unanswered for %ld "
			 "s: a read of .wait ends with ETIMEDOUT after %.0f s "
			 "(read it again to wait on)",
			 kernel, ws->wait_max);
	}
	ws->interval = WAIT_POLL_MIN;
	ws->batch = fs->opts->page_size ? fs->opts->page_size : 100;
	pthread_mutex_init(&ws->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ws->poll_wake, &ca);
	pthread_cond_init(&ws->reply_wake, &ca);
	pthread_cond_init(&ws->retried, &ca);
	pthread_condattr_destroy(&ca);
	ws->poller_up = !pthread_create(&ws->poller, NULL, poller_main, ws);
	ws->replier_up = !pthread_create(&ws->replier, NULL, replier_main, ws);
	__atomic_store_n(&fs->waits, ws, __ATOMIC_RELEASE);
	if (ws->poller_up && ws->replier_up)
		return 0;
	log_warn("no threads for .wait: reading it fails with EIO");
	wait_stop(fs);
	return -EAGAIN;
}

/*
 * Have both threads leave their loops, and answer every armed read EIO.
 * From then on a READ of .wait is answered at once (EIO unless the task
 * has ended).
 */
static void end_all(struct waits *ws)
{
	struct waiter *w, *tmp, *done = NULL;

	pthread_mutex_lock(&ws->lock);
	ws->stop = true;
	pthread_cond_signal(&ws->poll_wake);
	pthread_cond_signal(&ws->reply_wake);
	HASH_ITER(hh, ws->by_serial, w, tmp)
	if (w->armed)
		take_locked(ws, w, -EIO, &done);
	pthread_mutex_unlock(&ws->lock);
	reply_done(done);
}

void wait_shutdown(struct fs *fs)
{
	struct waits *ws = waits_of(fs);
	double until = mono() + WAIT_SHUTDOWN_GRACE;

	if (!ws)
		return;
	end_all(ws);
	pthread_mutex_lock(&ws->lock);
	while (ws->shutdown_left && mono() < until)
		cond_wait_until(&ws->retried, &ws->lock, until);
	pthread_mutex_unlock(&ws->lock);
}

/*
 * Unmount or SIGTERM, after the request loop has ended and the store's
 * change hook is gone: stop both threads and answer every kept read EIO.
 */
void wait_stop(struct fs *fs)
{
	struct waits *ws = waits_of(fs);

	if (!ws)
		return;
	end_all(ws); /* no READ comes any more: none is armed after this */
	if (ws->poller_up)
		pthread_join(ws->poller, NULL);
	if (ws->replier_up)
		pthread_join(ws->replier, NULL);
	__atomic_store_n(&fs->waits, NULL, __ATOMIC_RELEASE);
	pthread_cond_destroy(&ws->poll_wake);
	pthread_cond_destroy(&ws->reply_wake);
	pthread_cond_destroy(&ws->retried);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}
