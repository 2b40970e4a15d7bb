// SPDX-License-Identifier: MIT
/*
 * scheduler: the queue in front of the API. A request waits on its own
 * thread, in the queue, until the budget (budget.c) and the cap on
 * requests in flight let it go and nothing more urgent waits; then that
 * thread sends it (http_attempt), and after a refusal or an error puts it
 * back in the queue. Threads that wait sleep on one condition variable,
 * woken whenever something changes (a request granted or answered, a
 * cancel) and, when a token or a Retry-After is due, at that time.
 *
 * Lock order: sched's lock is taken alone (budget.c has none); the merger
 * (api.c) and http are called without it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget.h"
#include "json.h"
#include "log.h"
#include "scheduler.h"
#include "stats.h"

#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 5000
/* How long without a wait for budget before pacing is said to stop. */
#define PACING_QUIET 10.0
#define WATCH_MAX 8
#define SLEEP_MAX 5.0

enum qstate {
	Q_WAIT,	   /* in the queue */
	Q_GRANTED, /* its thread sends it */
	Q_MERGED,  /* carried by another's request (leader) */
	Q_DONE,	   /* a merged one, answered */
};

struct sreq {
	struct sreq *prev, *next; /* the queue, while Q_WAIT */
	enum qstate state;
	unsigned refs; /* its thread, and a leader carrying it */
	uint64_t seq;  /* first come, first served */
	enum sched_class floor;
	struct sched_job *job;
	struct cancel *cancel;
	double not_before; /* a backoff, or a 429's Retry-After */
	unsigned beside;   /* others in flight when it was sent */
	unsigned refusals; /* 429s so far, and ends for growing big */
	char *merge_arg;   /* NULL: never merged */
	struct sreq **members;
	size_t nmembers;
	int res; /* a merged one's answer */
	struct http_response resp;
};

static _Thread_local struct sched_ctx ctx_tls;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	struct sched_config cfg;
	struct budget b;
	struct sreq *head, *tail; /* the queue */
	unsigned in_flight;
	uint64_t seq;
	bool aborting;
	bool ready;
	struct sched_merger merger;
	bool merge_refused; /* the API refused merged requests: no more */
	unsigned merge_failures;
	double next_wake; /* when a waiter should look again (0: none) */
	bool pacing;
	double paced_at;
	unsigned long refused[4]; /* by enum budget_verdict */
	unsigned long merged;	  /* requests carried by another's */
	struct {
		pthread_mutex_t *m;
		pthread_cond_t *c;
	} watch[WATCH_MAX];
	int nwatch;
} sc = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct sched_ctx *sched_ctx(void)
{
	return &ctx_tls;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int sched_init(const struct sched_config *cfg)
{
	pthread_condattr_t ca;

	sc.cfg = *cfg;
	budget_init(&sc.b, cfg->max_conns, cfg->max_rate);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sc.cond, &ca);
	pthread_condattr_destroy(&ca);
	sc.ready = true;
	return 0;
}

void sched_cleanup(void)
{
	if (sc.ready)
		pthread_cond_destroy(&sc.cond);
	sc.ready = false;
}

void sched_set_merger(const struct sched_merger *m)
{
	pthread_mutex_lock(&sc.lock);
	if (m)
		sc.merger = *m;
	else
		memset(&sc.merger, 0, sizeof(sc.merger));
	pthread_mutex_unlock(&sc.lock);
}

void sched_watch(pthread_mutex_t *m, pthread_cond_t *c)
{
	pthread_mutex_lock(&sc.lock);
	if (sc.nwatch < WATCH_MAX) {
		sc.watch[sc.nwatch].m = m;
		sc.watch[sc.nwatch++].c = c;
	}
	pthread_mutex_unlock(&sc.lock);
}

void sched_cancel(struct cancel *c)
{
	int i, n;

	__atomic_store_n(&c->set, true, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&sc.lock);
	pthread_cond_broadcast(&sc.cond);
	n = sc.nwatch;
	pthread_mutex_unlock(&sc.lock);
	/* each waiter looks at its flag under its mutex: no wake is lost */
	for (i = 0; i < n; i++) {
		pthread_mutex_lock(sc.watch[i].m);
		pthread_cond_broadcast(sc.watch[i].c);
		pthread_mutex_unlock(sc.watch[i].m);
	}
}

static bool fired(const struct cancel *c)
{
	return c && __atomic_load_n(&c->set, __ATOMIC_SEQ_CST);
}

bool sched_cancelled(void)
{
	return fired(ctx_tls.cancel);
}

bool sched_pacing(void)
{
	bool pacing;

	pthread_mutex_lock(&sc.lock);
	pacing = (sc.pacing && mono() - sc.paced_at < PACING_QUIET) ||
		sc.b.paused_until > mono();
	pthread_mutex_unlock(&sc.lock);
	return pacing;
}

void sched_wake(void)
{
	pthread_mutex_lock(&sc.lock);
	pthread_cond_broadcast(&sc.cond);
	pthread_mutex_unlock(&sc.lock);
}

void sched_abort(void)
{
	pthread_mutex_lock(&sc.lock);
	sc.aborting = true;
	pthread_cond_broadcast(&sc.cond);
	pthread_mutex_unlock(&sc.lock);
	http_abort_all();
}

/* ---- the queue ---- */

static void enqueue_locked(struct sreq *r)
{
	struct sreq *at = sc.tail;

	/* by seq: one put back after a refusal keeps its place */
	while (at && at->seq > r->seq)
		at = at->prev;
	r->prev = at;
	r->next = at ? at->next : sc.head;
	if (r->next)
		r->next->prev = r;
	else
		sc.tail = r;
	if (at)
		at->next = r;
	else
		sc.head = r;
	r->state = Q_WAIT;
}

static void dequeue_locked(struct sreq *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		sc.head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		sc.tail = r->prev;
	r->prev = r->next = NULL;
}

static enum sched_class class_of(const struct sreq *r)
{
	int prio;

	if (!r->job)
		return r->floor;
	prio = __atomic_load_n(&r->job->prio, __ATOMIC_RELAXED);
	return prio > (int)r->floor ? (enum sched_class)prio : r->floor;
}

/* Nobody wants r any more: its reader gave up, or its fetch's did. */
static bool unwanted(const struct sreq *r)
{
	if (fired(r->cancel))
		return true;
	return r->job && !r->job->background &&
		__atomic_load_n(&r->job->waiters, __ATOMIC_RELAXED) == 0;
}

static void sreq_unref_locked(struct sreq *r)
{
	size_t i;

	if (--r->refs)
		return;
	for (i = 0; i < r->nmembers; i++)
		sreq_unref_locked(r->members[i]);
	free(r->members);
	http_response_release(&r->resp);
	free(r->merge_arg);
	free(r);
}

/* Carry the other mergeable requests waiting now in r's request. */
static void merge_locked(struct sreq *r, double now)
{
	struct sreq *o, *next;

	if (!r->merge_arg || sc.merge_refused || sc.merger.max < 2)
		return;
	for (o = sc.head; o && r->nmembers + 1 < sc.merger.max; o = next) {
		next = o->next;
		if (!o->merge_arg || o->not_before > now || unwanted(o))
			continue;
		if (!r->members &&
		    !(r->members = calloc(sc.merger.max, sizeof(*r->members))))
			return;
		dequeue_locked(o);
		o->state = Q_MERGED;
		o->refs++;
		r->members[r->nmembers++] = o;
		sc.merged++;
	}
}

static const char *source_name(void)
{
	switch (sc.b.source) {
	case BUDGET_HEADERS: return "from X-RateLimit-Limit";
	case BUDGET_REFUSALS: return "guessed from 429 and Retry-After";
	default: return "max_rate";
	}
}

/* Say once when requests start waiting for budget, and when they stop. */
static void pacing_locked(bool waits, double now)
{
	double rate = budget_per_minute(&sc.b), user = sc.b.user.rate * 60;

	if (waits) {
		sc.paced_at = now;
		if (sc.pacing)
			return;
		sc.pacing = true;
		if (rate > 0 && (!user || rate <= user))
			log_info("pacing requests to the API's limit: %.0f a "
				 "minute (%s)",
				 rate, source_name());
		else if (user)
			log_info("pacing requests to max_rate: %.0f a minute",
				 user);
		else
			log_info("pacing requests: the API asked to wait "
				 "(Retry-After)");
	} else if (sc.pacing && now - sc.paced_at > PACING_QUIET) {
		sc.pacing = false;
		log_info("no longer pacing requests");
	}
}

/*
 * Grant as many waiting requests as the cap and the budget allow, most
 * urgent first; when the most urgent must wait for a token, nothing less
 * urgent goes before it. Sets next_wake.
 */
static void dispatch_locked(double now)
{
	double before = sc.next_wake;
	bool granted = false;

	sc.next_wake = 0;
	for (;;) {
		struct sreq *r, *best = NULL;
		double ready;

		for (r = sc.head; r; r = r->next) {
			if (unwanted(r))
				continue; /* its thread takes it out */
			if (r->not_before > now) {
				if (!sc.next_wake ||
				    r->not_before < sc.next_wake)
					sc.next_wake = r->not_before;
				continue;
			}
			if (!best || class_of(r) < class_of(best))
				best = r;
		}
		if (!best || sc.in_flight >= sc.b.cap)
			break;
		ready = budget_ready(&sc.b, now);
		pacing_locked(ready > now, now);
		if (ready > now) {
			if (!sc.next_wake || ready < sc.next_wake)
				sc.next_wake = ready;
			break;
		}
		budget_take(&sc.b, now);
		dequeue_locked(best);
		best->state = Q_GRANTED;
		best->beside = sc.in_flight++;
		merge_locked(best, now);
		granted = true;
	}
	if (!sc.head)
		pacing_locked(false, now);
	/*
	 * The sleepers wake at the next_wake they saw: when it comes sooner
	 * now (a request ended, a token is due), they must look again.
	 */
	if (granted ||
	    (sc.next_wake && (!before || sc.next_wake < before - 1e-6)))
		pthread_cond_broadcast(&sc.cond);
}

/*
 * Sleep until woken or next_wake; SLEEP_MAX at most, should a wake be
 * missed after all (a slow queue is better than a stuck one).
 */
static void wait_locked(void)
{
	struct timespec ts;
	double until = sc.next_wake, cap = mono() + SLEEP_MAX;

	if (!until || until > cap)
		until = cap;
	ts.tv_sec = (time_t)until;
	ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
	pthread_cond_timedwait(&sc.cond, &sc.lock, &ts);
}

/*
 * Wait until r is granted (0), answered as a merged one (1), or given up:
 * -EINTR when unwanted, -EIO when shutting down.
 */
static int wait_turn_locked(struct sreq *r)
{
	for (;;) {
		if (sc.aborting) {
			if (r->state == Q_WAIT)
				dequeue_locked(r);
			else if (r->state == Q_GRANTED) {
				sc.in_flight--; /* it will not be sent */
			}
			return -EIO;
		}
		if (r->state == Q_GRANTED)
			return 0;
		if (r->state == Q_DONE)
			return 1;
		if (unwanted(r)) {
			if (r->state == Q_WAIT)
				dequeue_locked(r);
			/* a merged one: the leader still holds it */
			return -EINTR;
		}
		dispatch_locked(mono());
		if (r->state != Q_WAIT && r->state != Q_MERGED)
			continue;
		wait_locked();
	}
}

/* ---- sending ---- */

/* Exponential backoff with full jitter after an error. */
static long backoff_ms(unsigned attempt)
{
	unsigned seed = (unsigned)(mono() * 1e6) ^ attempt;
	long cap = BACKOFF_BASE_MS << (attempt < 6 ? attempt : 6);

	if (cap > BACKOFF_CAP_MS)
		cap = BACKOFF_CAP_MS;
	return cap / 2 + rand_r(&seed) % (cap / 2 + 1);
}

/*
 * What a 429's body says it refused for: Mixpeek's envelope has details
 * {limit, window: "1m", retry_after} for the rate; a refusal for
 * concurrency says so in its message or window.
 */
static enum budget_hint hint_of(const struct http_response *resp)
{
	char msg[200], window[64];

	if (resp->status != 429)
		return BUDGET_HINT_NONE;
	json_error_message(buf_str(&resp->body), resp->body.len, msg,
			   sizeof(msg));
	json_error_detail(buf_str(&resp->body), resp->body.len, "window",
			  window, sizeof(window));
	if (strcasestr(msg, "concurren") || strcasestr(window, "concurren"))
		return BUDGET_HINT_CONC;
	return window[0] ? BUDGET_HINT_RATE : BUDGET_HINT_NONE;
}

/* What the budget learns from an answer. Lock held. */
static enum budget_verdict learn_locked(const struct sreq *r,
					const struct http_response *resp,
					double now)
{
	struct budget_answer a = {
		.status = resp->status,
		.headers = resp->lim.headers,
		.limit = resp->lim.limit,
		.remaining = resp->lim.remaining,
		.window = resp->lim.window,
		.reset = resp->lim.reset,
		.retry_after = resp->lim.retry_after,
		.hint = hint_of(resp),
		.sent_beside = r->beside,
		.in_flight = sc.in_flight,
	};
	enum budget_verdict v = budget_learn(&sc.b, now, wall(), &a);

	sc.refused[v]++;
	return v;
}

/* The members' args and r's, for the merger. */
static char **merge_args(const struct sreq *r)
{
	char **args = calloc(r->nmembers + 2, sizeof(*args));
	size_t i;

	if (!args)
		return NULL;
	args[0] = r->merge_arg;
	for (i = 0; i < r->nmembers; i++)
		args[i + 1] = r->members[i]->merge_arg;
	return args;
}

/* Put r's members back in the queue, or answer them. Lock held. */
static void members_back_locked(struct sreq *r)
{
	size_t i;

	for (i = 0; i < r->nmembers; i++) {
		struct sreq *m = r->members[i];

		if (m->state == Q_MERGED && m->refs > 1)
			enqueue_locked(m);
		sreq_unref_locked(m);
	}
	free(r->members);
	r->members = NULL;
	r->nmembers = 0;
}

/*
 * Answer each merged request (and r) from split's outs (r's is the first).
 * One that is not in it goes back to the queue on its own. Returns r's
 * own answer: 0, or -EAGAIN (r asks on its own).
 */
static int split_locked(struct sreq *r, struct http_response *resp,
			struct buf *outs, const int *got)
{
	size_t i;
	int res = 0;

	for (i = 0; i <= r->nmembers; i++) {
		struct sreq *m = i ? r->members[i - 1] : r;

		if (m != r && (m->state != Q_MERGED || m->refs < 2))
			continue; /* its thread gave up */
		if (got[i]) {
			free(m->merge_arg);
			m->merge_arg = NULL; /* on its own, next time */
			if (m == r)
				res = -EAGAIN;
			else
				enqueue_locked(m);
			continue;
		}
		if (m == r) {
			buf_release(&resp->body);
			resp->body = outs[i];
		} else {
			http_response_init(&m->resp);
			buf_release(&m->resp.body);
			m->resp.body = outs[i];
			m->resp.status = resp->status;
			m->resp.attempts = resp->attempts;
			m->res = 0;
			m->state = Q_DONE;
		}
		memset(&outs[i], 0, sizeof(outs[i]));
	}
	for (i = 0; i < r->nmembers; i++)
		sreq_unref_locked(r->members[i]);
	free(r->members);
	r->members = NULL;
	r->nmembers = 0;
	pthread_cond_broadcast(&sc.cond);
	return res;
}

/* Split a merged answer, without the lock: its parts, or -errno. */
static int split_answer(const struct sreq *r, const struct http_response *resp,
			struct buf **outs, int **got)
{
	size_t n = r->nmembers + 1, i;
	char **args = merge_args(r);
	int res = -ENOMEM;

	*outs = calloc(n, sizeof(**outs));
	*got = calloc(n, sizeof(**got));
	if (args && *outs && *got) {
		for (i = 0; i < n; i++)
			buf_init(&(*outs)[i], resp->body.max);
		res = sc.merger.split(buf_str(&resp->body), resp->body.len,
				      args, n, *outs, *got);
	}
	free(args);
	return res;
}

static void outs_free(struct buf *outs, int *got, size_t n)
{
	size_t i;

	for (i = 0; outs && i < n; i++)
		buf_release(&outs[i]);
	free(outs);
	free(got);
}

/* Give every member r's failure. Lock held. */
static void members_fail_locked(struct sreq *r, int res,
				const struct http_response *resp)
{
	size_t i;

	for (i = 0; i < r->nmembers; i++) {
		struct sreq *m = r->members[i];

		http_response_init(&m->resp);
		m->resp.status = resp->status;
		snprintf(m->resp.error, sizeof(m->resp.error), "%s",
			 resp->error);
		m->res = res;
		m->state = Q_DONE;
		sreq_unref_locked(m);
	}
	free(r->members);
	r->members = NULL;
	r->nmembers = 0;
	pthread_cond_broadcast(&sc.cond);
}

int sched_request(const char *method, const char *path, const char *body,
		  const char *merge_arg, http_usable usable,
		  struct http_response *resp)
{
	struct sched_ctx *ctx = &ctx_tls;
	struct buf mpath = BUF_INIT(1 << 20), mbody = BUF_INIT(64 << 20);
	long spent = 0;
	unsigned attempt = 0;
	struct buf *outs = NULL;
	int *got = NULL, res;
	size_t nouts = 0;
	struct sreq *r;

	http_response_init(resp);
	if (!http_key_gate(resp))
		return sc.aborting ? -EIO : -EACCES;
	r = calloc(1, sizeof(*r));
	if (!r || (merge_arg && !(r->merge_arg = strdup(merge_arg)))) {
		free(r);
		return -ENOMEM;
	}
	r->refs = 1;
	r->floor = ctx->cls;
	r->job = ctx->job;
	r->cancel = ctx->cancel;
	http_response_init(&r->resp);
	pthread_mutex_lock(&sc.lock);
	r->seq = ++sc.seq;
	enqueue_locked(r);
	for (;;) {
		const char *p = path, *b = body;
		double t0;
		char **args;
		enum budget_verdict v;

		res = wait_turn_locked(r);
		if (res)
			break;
		/* granted: send it, without the lock */
		pthread_mutex_unlock(&sc.lock);
		buf_release(&mpath);
		buf_release(&mbody);
		if (r->nmembers) {
			args = merge_args(r);
			res = args ? sc.merger.build(args, r->nmembers + 1,
						     &mpath, &mbody) :
				     -ENOMEM;
			free(args);
			p = buf_str(&mpath);
			b = buf_str(&mbody);
		}
		t0 = mono();
		http_response_release(resp);
		if (!res && spent >= sc.cfg.timeout_ms)
			res = -ETIMEDOUT;
		if (!res) {
			res = http_attempt(r->nmembers ? "POST" : method, p, b,
					   sc.cfg.timeout_ms - spent, usable,
					   resp);
		} else {
			http_response_init(resp);
			snprintf(resp->error, sizeof(resp->error), "%s",
				 res == -ETIMEDOUT ? "gave up: timeout" :
						     "out of memory");
			res = res == -ETIMEDOUT ? -EIO : res;
		}
		resp->attempts = ++attempt;
		spent += (long)((mono() - t0) * 1000);
		outs_free(outs, got, nouts);
		outs = NULL;
		got = NULL;
		if (r->nmembers && !res && resp->status != 429) {
			nouts = r->nmembers + 1;
			res = split_answer(r, resp, &outs, &got);
		}
		pthread_mutex_lock(&sc.lock);
		sc.in_flight--;
		v = learn_locked(r, resp, mono());
		if (resp->grew && ++r->refusals <= SCHED_REFUSALS_MAX) {
			/* waited too long for the big slot: send it again */
			attempt--;
			members_back_locked(r);
			enqueue_locked(r);
			pthread_cond_broadcast(&sc.cond);
			continue;
		}
		if (v != BUDGET_OK && ++r->refusals <= SCHED_REFUSALS_MAX) {
			/* refused for the budget: not an error, wait again */
			double ra = resp->lim.retry_after;

			log_debug("%s %s: HTTP 429, waiting for its turn again",
				  method, path);
			if (v == BUDGET_REFUSED_CONC)
				r->not_before = mono() +
					(ra > 0 ? fmin(ra, BUDGET_PAUSE_MAX) :
						  1);
			members_back_locked(r);
			enqueue_locked(r);
			pthread_cond_broadcast(&sc.cond);
			continue;
		}
		if (r->nmembers && !res) {
			res = split_locked(r, resp, outs, got);
			outs_free(outs, got, nouts);
			outs = NULL;
			got = NULL;
			if (res != -EAGAIN)
				break;
			http_response_release(resp);
			r->seq = ++sc.seq; /* split the same: go alone */
			enqueue_locked(r);
			continue;
		}
		if (r->nmembers && (res == -EINVAL || res == -ENOENT)) {
			/* the API will not take the merged request */
			log_warn("the API refused a merged request (%s); "
				 "asking for each task on its own",
				 resp->error);
			sc.merge_refused = ++sc.merge_failures >= 3;
			free(r->merge_arg);
			r->merge_arg = NULL;
			members_back_locked(r);
			enqueue_locked(r);
			pthread_cond_broadcast(&sc.cond);
			continue;
		}
		if (res && resp->retry && attempt <= sc.cfg.retries &&
		    spent < sc.cfg.timeout_ms && !sc.aborting) {
			long wait = backoff_ms(attempt - 1);

			if (spent + wait < sc.cfg.timeout_ms) {
				log_debug("%s %s: %s, retry %u in %ld ms",
					  method, path, resp->error, attempt,
					  wait);
				stats_add(STATS_RETRIES, 1);
				spent += wait;
				r->not_before = mono() + wait / 1000.0;
				members_back_locked(r);
				enqueue_locked(r);
				pthread_cond_broadcast(&sc.cond);
				continue;
			}
		}
		if (v != BUDGET_OK)
			snprintf(resp->error, sizeof(resp->error),
				 "HTTP 429 %u times: the API kept refusing "
				 "for its limits",
				 r->refusals);
		if (r->nmembers)
			members_fail_locked(r, res, resp);
		break;
	}
	if (res == 1) {
		/* answered as part of another's request */
		http_response_release(resp);
		*resp = r->resp;
		http_response_init(&r->resp);
		res = r->res;
	}
	dispatch_locked(mono());
	sreq_unref_locked(r);
	pthread_mutex_unlock(&sc.lock);
	outs_free(outs, got, nouts);
	buf_release(&mpath);
	buf_release(&mbody);
	if (res == -EINTR)
		snprintf(resp->error, sizeof(resp->error),
			 "not sent: nobody waits for it any more");
	else if (res == -EIO && sc.aborting && !resp->status)
		snprintf(resp->error, sizeof(resp->error), "shutting down");
	return res;
}

/* ---- .mixpeekfs/stats ---- */

int sched_stats(struct buf *out)
{
	static const char *const sources[] = { "none", "headers", "refusals" };
	unsigned long waiting[SCHED_CLASSES] = { 0 };
	double now = mono();
	struct sreq *r;
	int res;

	pthread_mutex_lock(&sc.lock);
	for (r = sc.head; r; r = r->next)
		waiting[class_of(r)]++;
	res = buf_printf(
		out,
		"limits.source %s\nlimits.rate_per_minute %.0f\n"
		"limits.burst %.0f\nlimits.tokens %.1f\n"
		"limits.header.limit %ld\nlimits.header.remaining %ld\n"
		"limits.header.window %ld\nlimits.header.reset %.0f\n"
		"limits.max_rate %u\nlimits.in_flight %u\n"
		"limits.in_flight_cap %u\nlimits.pacing %d\n"
		"limits.paused_for %.1f\n"
		"waiting.person %lu\nwaiting.listing %lu\n"
		"waiting.background %lu\n"
		"refused.rate %lu\nrefused.concurrency %lu\n"
		"refused.unknown %lu\nmerged %lu\n",
		sources[sc.b.source], budget_per_minute(&sc.b),
		sc.b.server.burst,
		sc.b.source ? budget_tokens(&sc.b, now) : 0.0, sc.b.h_limit,
		sc.b.h_remaining, sc.b.h_window, sc.b.h_reset, sc.cfg.max_rate,
		sc.in_flight, sc.b.cap, sc.pacing,
		sc.b.paused_until > now ? sc.b.paused_until - now : 0.0,
		waiting[SCHED_PERSON], waiting[SCHED_LISTING],
		waiting[SCHED_BACKGROUND], sc.refused[BUDGET_REFUSED_RATE],
		sc.refused[BUDGET_REFUSED_CONC],
		sc.refused[BUDGET_REFUSED_BOTH], sc.merged);
	pthread_mutex_unlock(&sc.lock);
	return res;
}
