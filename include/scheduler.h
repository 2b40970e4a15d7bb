/* SPDX-License-Identifier: MIT */
/*
 * scheduler (sched_*): the one way to the API. Every request goes through
 * sched_request, which owns the budget (budget.h: the server's limits as
 * learned from its answers, the user's max_rate, the cap on requests in
 * flight), the order (a person's requests before the further pages of a
 * listing, those before background work; first come, first served within
 * a class), the retries, and the merging of waiting GETs into one list
 * request. Nothing else calls http_attempt.
 *
 * A request waits for its turn on the calling thread, in the queue, not
 * on the wire: timeout bounds only its time on the wire and the backoff
 * after errors, never the wait for budget. A wait ends early, with
 * -EINTR and nothing sent, when the thread's cancel is fired (a reader
 * interrupted) or when nobody wants the shared fetch it is part of any
 * more (struct sched_job).
 *
 * Thread-safe after sched_init. sched_request blocks (for its turn, then
 * for the answer); everything else here never blocks on HTTP.
 */
#ifndef MIXPEEKFS_SCHEDULER_H
#define MIXPEEKFS_SCHEDULER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "http.h"

/* Who waits for a request, most urgent first. */
enum sched_class {
	SCHED_PERSON,	  /* a lookup, a read, the first page of a listing */
	SCHED_LISTING,	  /* the further pages of a listing someone reads */
	SCHED_BACKGROUND, /* .wait polls, refreshes nobody waits for */
	SCHED_CLASSES
};

/* Set to stop a wait; see sched_cancel. */
struct cancel {
	bool set; /* atomic */
};

/*
 * What the requests of one shared fetch (a listing and its pages, sent
 * from several threads) have in common, kept by whoever owns the fetch.
 */
struct sched_job {
	int prio;	 /* atomic: enum sched_class of the most urgent asker */
	int waiters;	 /* atomic: threads waiting for the fetch */
	bool background; /* wanted even when nobody waits */
};

/*
 * The calling thread's context (thread-local; zero: a person's request,
 * not cancellable, not part of a shared fetch, allowed to fetch).
 */
struct sched_ctx {
	enum sched_class cls;  /* of its requests; with job, the least */
	struct sched_job *job; /* the shared fetch its requests are for */
	struct cancel *cancel; /* fired: its waits end with -EINTR */
	bool nofetch;	       /* memory only: see store.h */
};
struct sched_ctx *sched_ctx(void);

/* The most a request waits for its turn after 429s before it fails. */
#define SCHED_REFUSALS_MAX 16

struct sched_config {
	unsigned max_conns; /* requests in flight at most (the daemon's) */
	unsigned max_rate;  /* requests a minute the user allows, 0: any */
	long timeout_ms;    /* on the wire, retries and their backoff */
	unsigned retries;   /* after a 5xx, 408 or network error */
};

/* Once, after http_global_init and before any thread starts. */
int sched_init(const struct sched_config *cfg);
void sched_cleanup(void);

/*
 * Merging: GETs waiting for their turn at once become one list request
 * when one of them gets its turn (one token, one transfer). api.c says
 * how: build makes the request for the n args (task ids) into path and
 * body; split takes each arg's answer out of the combined body into
 * outs[i] with got[i] 0, or -EAGAIN when it is not there (args[i] is
 * then asked for on its own); split's own -errno fails them all. Both
 * are called without sched's lock.
 */
struct sched_merger {
	size_t max;
	int (*build)(char *const *args, size_t n, struct buf *path,
		     struct buf *body);
	int (*split)(const char *body, size_t len, char *const *args, size_t n,
		     struct buf *outs, int *got);
};
void sched_set_merger(const struct sched_merger *m);

/*
 * One request, in the calling thread's context: waits for its turn,
 * sends it, retries it. merge_arg (or NULL) marks a GET that may be
 * merged (see sched_merger). Returns as http_attempt: 0 for a 2xx, else
 * -errno; resp is filled either way (release it). -EINTR: cancelled
 * before it was sent. May block.
 */
int sched_request(const char *method, const char *path, const char *body,
		  const char *merge_arg, http_usable usable,
		  struct http_response *resp);

/*
 * Fire c: the waits of the thread it belongs to end (sched's, and the
 * ones registered with sched_watch). Safe from any thread; never blocks
 * but on those mutexes.
 */
void sched_cancel(struct cancel *c);
/* Whether the calling thread's cancel was fired. */
bool sched_cancelled(void);
/* Have the waiting requests look again (a job lost its last waiter). */
void sched_wake(void);
/* Whether requests wait for the budget (lately) or for a Retry-After:
 * the budget is short. Never blocks. */
bool sched_pacing(void);
/* A condition variable a cancellable wait sleeps on (with its mutex),
 * woken by sched_cancel. Before threads start; at most 8. */
void sched_watch(pthread_mutex_t *m, pthread_cond_t *c);

/* Shutdown: every request waiting or to come fails with -EIO. Safe
 * from any thread. */
void sched_abort(void);

/* "key value" lines for .mixpeekfs/stats: the limits as learned, what
 * is left, the requests waiting by class, the 429s by kind. */
int sched_stats(struct buf *out);

#endif
