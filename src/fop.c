// SPDX-License-Identifier: MIT
/*
 * fop: FUSE requests that must wait for the API, kept off the FUSE
 * worker threads.
 *
 * Every request that may need the API is first tried on the FUSE worker
 * with the scheduler context's nofetch set: whatever is in memory answers
 * at once. When an answer would need a fetch, the store says -EINPROGRESS
 * instead of fetching, and the handler returns that without replying;
 * fop_run then keeps the request (a copy of its arguments, a hold on its
 * node) and returns, and the FUSE worker is free. A runner thread of
 * ours takes it, runs the same handler again in a context that may wait
 * (a person's class, the request's own cancel), and replies.
 *
 * A kept request can always be given up: its FUSE_INTERRUPT is answered
 * EINTR at once (fop_interrupted), and its cancel is fired, so that the
 * runner's waits (for a token, for a listing) end and nothing more is
 * sent for it; a fetch others wait for goes on. Exactly one reply is
 * sent per request: the runner and the interrupt each claim the request
 * (an atomic state), and only the one that wins replies.
 *
 * Lock order: fops.lock is taken alone, or under libfuse's request lock
 * (the interrupt callback); sched_cancel is called under it (it takes
 * the scheduler's lock, then the store's). Replies sent with it held:
 * the interrupt's EINTR (as libfuse allows, see wait.c) and fop_stop's
 * EIO, so that a runner cannot free the request meanwhile.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "fs_i.h"
#include "log.h"
#include "scheduler.h"

/* Runner threads at most; more kept requests wait for one, holding none. */
#define RUNNERS_MAX 64

enum { FOP_PENDING, FOP_REPLIED };

struct fops {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct fop *head, *tail; /* waiting for a runner */
	struct fop *by_serial;	 /* every kept one */
	uint64_t serial;
	unsigned runners, idle, queued;
	bool stop;
	pthread_cond_t stopped;
};

static struct fops *fops_of(struct fs *fs)
{
	return __atomic_load_n(&fs->fops, __ATOMIC_ACQUIRE);
}

/* Win the right to reply: the runner or the interrupt, never both. */
static bool claim(struct fop *f)
{
	int want = FOP_PENDING;

	if (!f->kept)
		return true;
	return __atomic_compare_exchange_n(&f->state, &want, FOP_REPLIED, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

int fop_reply_err(struct fop *f, int err)
{
	return claim(f) ? fuse_reply_err(f->req, err) : -EINTR;
}

int fop_reply_entry(struct fop *f, const struct fuse_entry_param *e)
{
	return claim(f) ? fuse_reply_entry(f->req, e) : -EINTR;
}

int fop_reply_attr(struct fop *f, const struct stat *st, double timeout)
{
	return claim(f) ? fuse_reply_attr(f->req, st, timeout) : -EINTR;
}

int fop_reply_buf(struct fop *f, const char *buf, size_t size)
{
	return claim(f) ? fuse_reply_buf(f->req, buf, size) : -EINTR;
}

int fop_reply_xattr(struct fop *f, size_t size)
{
	return claim(f) ? fuse_reply_xattr(f->req, size) : -EINTR;
}

static void fop_free(struct fs *fs, struct fop *f)
{
	if (f->held)
		node_forget(&fs->nodes, f->held, 1);
	free(f->name);
	free(f);
}

static void unqueue_locked(struct fops *o, struct fop *f)
{
	struct fop **p;

	for (p = &o->head; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			if (o->tail == f) {
				struct fop *t = o->head;

				while (t && t->next)
					t = t->next;
				o->tail = t;
			}
			o->queued--;
			return;
		}
}

/*
 * FUSE_INTERRUPT for a kept request, from libfuse with the request's
 * lock held: answered EINTR at once, and the runner's waits end. While
 * defer registers this callback, it only takes note: defer answers.
 */
static void fop_interrupted(fuse_req_t req, void *data)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fops *o = fops_of(fs);
	uint64_t serial = (uint64_t)(uintptr_t)data;
	struct fop *f, *gone = NULL;

	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	HASH_FIND(hh, o->by_serial, &serial, sizeof(serial), f);
	if (f && f->phase == FOP_REGISTERING) {
		f->interrupted = true;
		f = NULL;
	} else if (f && f->phase == FOP_QUEUED) {
		/* no runner has it: it ends here */
		unqueue_locked(o, f);
		HASH_DEL(o->by_serial, f);
		gone = f;
	}
	/* under the lock: a runner done with f frees it only after that */
	if (f && claim(f))
		fuse_reply_err(req, EINTR);
	if (f && !gone)
		sched_cancel(&f->cancel);
	pthread_mutex_unlock(&o->lock);
	if (gone)
		fop_free(fs, gone);
}

static void *runner_main(void *arg)
{
	struct fs *fs = arg;
	struct fops *o = fops_of(fs);

	pthread_mutex_lock(&o->lock);
	for (;;) {
		struct fop *f = o->head;

		if (o->stop)
			break;
		if (!f) {
			o->idle++;
			pthread_cond_wait(&o->wake, &o->lock);
			o->idle--;
			continue;
		}
		o->head = f->next;
		if (!o->head)
			o->tail = NULL;
		o->queued--;
		f->phase = FOP_RUNNING;
		pthread_mutex_unlock(&o->lock);
		*sched_ctx() = (struct sched_ctx){ .cls = SCHED_PERSON,
						   .cancel = &f->cancel };
		if (f->fn(f) == -EINPROGRESS) {
			log_err("a request was deferred twice; answering EIO");
			fop_reply_err(f, EIO);
		}
		*sched_ctx() = (struct sched_ctx){ 0 };
		pthread_mutex_lock(&o->lock);
		HASH_DEL(o->by_serial, f);
		pthread_mutex_unlock(&o->lock);
		fop_free(fs, f);
		pthread_mutex_lock(&o->lock);
	}
	o->runners--;
	pthread_cond_broadcast(&o->stopped);
	pthread_mutex_unlock(&o->lock);
	return NULL;
}

/* Start a runner if every one is busy. Lock held. */
static void spawn_locked(struct fs *fs, struct fops *o)
{
	pthread_attr_t attr;
	pthread_t tid;

	if (o->idle >= o->queued || o->runners >= RUNNERS_MAX)
		return;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (!pthread_create(&tid, &attr, runner_main, fs))
		o->runners++;
	else if (!o->runners)
		log_warn("no thread for a request that waits for the API");
	pthread_attr_destroy(&attr);
}

/* Keep a copy of tmp for a runner; replies EIO or ENOMEM if it cannot. */
static void defer(struct fop *tmp)
{
	struct fs *fs = tmp->fs;
	struct fops *o = fops_of(fs);
	struct fop *f = calloc(1, sizeof(*f));
	struct node *n = node_get(&fs->nodes, tmp->ino);
	bool interrupted;

	if (!o || !f || !n) {
		free(f);
		fuse_reply_err(tmp->req, !o ? EIO : n ? ENOMEM : ESTALE);
		return;
	}
	*f = *tmp;
	f->name = NULL;
	if (tmp->name && !(f->name = strdup(tmp->name))) {
		free(f);
		fuse_reply_err(tmp->req, ENOMEM);
		return;
	}
	f->kept = true;
	f->state = FOP_PENDING;
	f->phase = FOP_REGISTERING;
	node_hold(&fs->nodes, n);
	f->held = n;
	pthread_mutex_lock(&o->lock);
	if (o->stop) {
		pthread_mutex_unlock(&o->lock);
		fop_reply_err(f, EIO);
		fop_free(fs, f);
		return;
	}
	f->serial = ++o->serial;
	HASH_ADD(hh, o->by_serial, serial, sizeof(f->serial), f);
	pthread_mutex_unlock(&o->lock);
	/* an INTERRUPT that came already calls it now: it takes note */
	fuse_req_interrupt_func(f->req, fop_interrupted,
				(void *)(uintptr_t)f->serial);
	pthread_mutex_lock(&o->lock);
	interrupted = f->interrupted || o->stop;
	if (interrupted) {
		HASH_DEL(o->by_serial, f);
	} else {
		f->phase = FOP_QUEUED;
		if (o->tail)
			o->tail->next = f;
		else
			o->head = f;
		o->tail = f;
		o->queued++;
		spawn_locked(fs, o);
		pthread_cond_signal(&o->wake);
	}
	pthread_mutex_unlock(&o->lock);
	if (interrupted) {
		fop_reply_err(f, f->interrupted ? EINTR : EIO);
		fop_free(fs, f);
	}
}

void fop_run(struct fop *f, int (*fn)(struct fop *))
{
	struct sched_ctx *ctx = sched_ctx(), saved = *ctx;
	int res;

	f->fn = fn;
	f->kept = false;
	ctx->nofetch = true; /* memory only: see store.h */
	res = fn(f);
	*ctx = saved;
	if (res == -EINPROGRESS)
		defer(f);
}

int fop_start(struct fs *fs)
{
	struct fops *o = calloc(1, sizeof(*o));

	if (!o)
		return -ENOMEM;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->wake, NULL);
	pthread_cond_init(&o->stopped, NULL);
	__atomic_store_n(&fs->fops, o, __ATOMIC_RELEASE);
	return 0;
}

/*
 * The loop has ended: no request comes, and none can be answered. End
 * the kept ones: their waits are cancelled (sched_abort has ended the
 * requests), and the runners leave once their handler returns.
 */
void fop_stop(struct fs *fs)
{
	struct fops *o = fops_of(fs);
	struct fop *f, *tmp;

	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	o->stop = true;
	HASH_ITER(hh, o->by_serial, f, tmp)
	{
		/* answered (and so freed by libfuse) whoever would have */
		if (claim(f))
			fuse_reply_err(f->req, EIO);
		if (f->phase == FOP_RUNNING) {
			sched_cancel(&f->cancel);
			continue;
		}
		unqueue_locked(o, f);
		HASH_DEL(o->by_serial, f);
		fop_free(fs, f);
	}
	pthread_cond_broadcast(&o->wake);
	while (o->runners)
		pthread_cond_wait(&o->stopped, &o->lock);
	pthread_mutex_unlock(&o->lock);
	__atomic_store_n(&fs->fops, NULL, __ATOMIC_RELEASE);
	pthread_cond_destroy(&o->wake);
	pthread_cond_destroy(&o->stopped);
	pthread_mutex_destroy(&o->lock);
	free(o);
}

int fop_stats(struct fs *fs, struct buf *out)
{
	struct fops *o = fops_of(fs);
	unsigned queued = 0, kept = 0, runners = 0;

	if (o) {
		pthread_mutex_lock(&o->lock);
		queued = o->queued;
		kept = HASH_COUNT(o->by_serial);
		runners = o->runners;
		pthread_mutex_unlock(&o->lock);
	}
	return buf_printf(out,
			  "requests_waiting %u\nrequests_queued %u\n"
			  "runners %u\n",
			  kept, queued, runners);
}
