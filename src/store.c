// SPDX-License-Identifier: MIT
/*
 * store: the task records, in least recently used order, and the
 * listings by request body (uthash), with their ttls, single-flight
 * fetches and the memory cap. store_ids.c keeps the records by id and
 * the ids the API answered 404 for; store_values.c the statuses and
 * types seen. One mutex guards all of it; none is held across a fetch.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>
#include <utlist.h>

#include "api.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "scheduler.h"
#include "stats.h"
#include "store_i.h"

/* ---- tables ---- */

struct lentry {
	char *key;	     /* request body + limit */
	struct listing *cur; /* last good snapshot, or NULL */
	bool loading;	     /* a load thread fetches it (see load_main) */
	unsigned gen;	     /* bumped when a load ends */
	unsigned fetches;    /* loads that succeeded */
	int err;	     /* result of the last load */
	/* the load's: who waits for it (store_trim leaves le alone
	 * meanwhile), the most urgent of them, whether it is a refresh
	 * nobody waits for */
	struct sched_job job;
	/* when the last WALK_GETS tasks under the stale listing were
	 * fetched on their own (GET); 0: not yet */
	time_t gets[WALK_GETS];
	unsigned getpos;
	size_t bytes; /* counted in st.lbytes: entry, key and cur */
	struct lentry *prev, *next; /* st.lru_listings */
	UT_hash_handle hh;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t loaded;
	struct store_source src;
	unsigned ttl;
	unsigned ttl_terminal;
	void (*on_change)(const char *id, void *arg);
	void *on_change_arg;
	struct taskmap tasks; /* protected by lock */
	struct task *lru;     /* protected by lock: every task */
	size_t bytes;	      /* protected by lock: of all tasks */
	size_t cap;
	struct lentry *listings;     /* protected by lock */
	struct lentry *lru_listings; /* protected by lock: oldest first */
	size_t lbytes;		     /* protected by lock: of listings */
	unsigned loads;		     /* protected by lock: load threads */
	struct store_mem_hooks mem;  /* protected by lock */
	struct missing_set missing;  /* protected by lock */
	/*
	 * Listed tasks whose GET said 404 while the list still had them
	 * (gone from the API's fast tier): asked for by list at once from
	 * then on. The same kind of bounded set; protected by lock.
	 */
	struct missing_set by_list;
} st = { .lock = PTHREAD_MUTEX_INITIALIZER,
	 .loaded = PTHREAD_COND_INITIALIZER };

static void drop_locked(struct task *t);
static void lentry_free_locked(struct lentry *le);

int store_init(unsigned ttl, unsigned ttl_terminal, size_t cache_size,
	       const struct store_source *src)
{
	static const struct store_source api = { api_list, api_get_task,
						 api_get_tasks, api_count };

	st.src = src ? *src : api;
	/* a wait for a load ends when its reader gives up (sched_cancel) */
	sched_watch(&st.lock, &st.loaded);
	st.ttl = ttl;
	st.ttl_terminal = ttl_terminal;
	st.cap = cache_size;
	return values_init();
}

void store_cleanup(void)
{
	struct task *t, *ttmp;
	struct lentry *le, *ltmp;

	/* the load threads end (sched_abort makes that quick) */
	pthread_mutex_lock(&st.lock);
	while (st.loads)
		pthread_cond_wait(&st.loaded, &st.lock);
	pthread_mutex_unlock(&st.lock);

	DL_FOREACH_SAFE(st.lru, t, ttmp)
	drop_locked(t);
	taskmap_release(&st.tasks);
	missing_clear(&st.missing);
	missing_clear(&st.by_list);
	HASH_ITER(hh, st.listings, le, ltmp)
	lentry_free_locked(le);
	memset(&st.mem, 0, sizeof(st.mem));
	task_cleanup();
	values_cleanup();
}

/*
 * After a refresh fails for a reason a retry could cure (EIO: timeouts,
 * 5xx, garbage), stale data is trusted for one more ttl, so an outage
 * costs one failed request per ttl instead of one per access.
 */
static time_t backoff_until; /* atomic */

static void note_failure(int err)
{
	if (err == -EIO)
		__atomic_store_n(&backoff_until, time(NULL) + (time_t)st.ttl,
				 __ATOMIC_RELAXED);
}

/*
 * Whether a failed refresh may fall back on the last good data: not when
 * the API refused the key (it may have been revoked for a reason).
 */
static bool serve_stale(int err)
{
	return err != -EACCES;
}

/* A refresh asked for by hand tries now: outage or rejected key. */
static void asked_by_hand(void)
{
	__atomic_store_n(&backoff_until, 0, __ATOMIC_RELAXED);
	http_retry_key();
}

static bool backing_off(time_t now)
{
	return now < __atomic_load_n(&backoff_until, __ATOMIC_RELAXED);
}

static bool fresh_for(time_t fetched, unsigned ttl)
{
	time_t now = time(NULL);

	return now - fetched < (time_t)ttl || backing_off(now);
}

bool listing_fresh(const struct listing *l)
{
	if (__atomic_load_n(&l->expired, __ATOMIC_RELAXED))
		return backing_off(time(NULL));
	return fresh_for(l->fetched, st.ttl);
}

/* A task in a terminal status does not change: it is trusted longer. */
static bool task_fresh_locked(const struct task *t)
{
	return fresh_for(t->fetched,
			 task_status_terminal(t->status) ? st.ttl_terminal :
							   st.ttl);
}

/*
 * What is left of ttl for data fetched in second fetched: it goes stale
 * when time(NULL) reaches fetched + ttl (fresh_for), so count to that
 * second from the exact time now. Counting from time(NULL) would let the
 * kernel trust the data up to a second past that.
 */
static double left_of(time_t fetched, unsigned ttl)
{
	struct timespec now;
	double left;

	clock_gettime(CLOCK_REALTIME, &now);
	left = (double)(fetched + (time_t)ttl - now.tv_sec) -
		(double)now.tv_nsec / 1e9;
	return left > 0 ? left : 0;
}

double store_task_left(const struct task *t)
{
	return left_of(__atomic_load_n(&t->fetched, __ATOMIC_RELAXED),
		       task_status_terminal(t->status) ? st.ttl_terminal :
							 st.ttl);
}

double store_listing_left(const struct listing *l)
{
	if (__atomic_load_n(&l->expired, __ATOMIC_RELAXED))
		return 0;
	return left_of(l->fetched, st.ttl);
}

void store_on_change(void (*fn)(const char *id, void *arg), void *arg)
{
	pthread_mutex_lock(&st.lock);
	st.on_change = fn;
	st.on_change_arg = arg;
	pthread_mutex_unlock(&st.lock);
}

static void changed_locked(const char *id)
{
	if (st.on_change)
		st.on_change(id, st.on_change_arg);
}

static size_t task_bytes(const struct task *t)
{
	/* the block up to its id, the id, the packed JSON, malloc's word
	 * and the hash table's bucket share */
	return offsetof(struct task, id) + strlen(t->id) + 1 + t->packed_len +
		2 * sizeof(size_t);
}

static void drop_locked(struct task *t)
{
	DL_DELETE(st.lru, t);
	taskmap_del(&st.tasks, t);
	st.bytes -= task_bytes(t);
	task_unref(t);
}

/* Mark t as just used. Lock held. */
static void touch_locked(struct task *t)
{
	DL_DELETE(st.lru, t);
	DL_APPEND(st.lru, t);
}

/* Drop the least recently used tasks beyond the cap, keeping keep. */
static void evict_locked(const struct task *keep)
{
	while (st.bytes + st.lbytes > st.cap && st.lru && st.lru != keep) {
		/* refetched later, it could not be compared: drop the
		 * kernel's copies now */
		changed_locked(st.lru->id);
		drop_locked(st.lru);
	}
}

/* Put t in the store, replacing an older record. Lock held. */
static int ingest_locked(struct task *t)
{
	struct task *old;
	int res = 0;

	old = taskmap_find(&st.tasks, t->id);
	if (old == t) {
		touch_locked(t);
		return 0;
	}
	missing_drop(&st.missing, t->id);
	if (old) {
		if (task_same_json(old, t)) {
			t->changed = old->changed;
		} else {
			if (!(t->flags & TASK_UPDATED_AT))
				t->changed = t->fetched;
			changed_locked(t->id);
		}
		drop_locked(old);
	}
	res = taskmap_add(&st.tasks, t);
	if (res)
		return res;
	task_ref(t);
	DL_APPEND(st.lru, t);
	st.bytes += task_bytes(t);
	evict_locked(t);
	if (*t->status)
		res = values_add(STORE_STATUSES, t->status);
	if (!res && *t->type)
		res = values_add(STORE_TYPES, t->type);
	return res;
}

/* ---- listings ---- */

static size_t extra_locked(void)
{
	return st.mem.extra ? st.mem.extra(st.mem.arg) : 0;
}

/* Count le's bytes again (its snapshot changed); mark it just used. */
static void lentry_touch_locked(struct lentry *le)
{
	st.lbytes -= le->bytes;
	le->bytes = sizeof(*le) + strlen(le->key) + 1 + 4 * sizeof(size_t) +
		(le->cur ? le->cur->bytes : 0);
	st.lbytes += le->bytes;
	if (le->prev) /* in the list: a new entry is not yet */
		DL_DELETE(st.lru_listings, le);
	DL_APPEND(st.lru_listings, le);
}

static void lentry_free_locked(struct lentry *le)
{
	HASH_DEL(st.listings, le);
	DL_DELETE(st.lru_listings, le);
	st.lbytes -= le->bytes;
	if (le->cur)
		listing_unref(le->cur);
	free(le->key);
	free(le);
}

/* A listing grew the store: over the cap, the layer above trims. */
static void grew_locked(void)
{
	if (st.mem.full && st.bytes + st.lbytes + extra_locked() > st.cap)
		st.mem.full(st.mem.arg);
}

/* Collects ids while a listing is fetched. */
struct builder {
	struct buf blob; /* ids, NUL-separated */
	size_t n;
	size_t skipped_dups;
};

static int builder_sink(void *ctx, struct task *t)
{
	struct builder *b = ctx;
	int res;

	pthread_mutex_lock(&st.lock);
	res = ingest_locked(t);
	pthread_mutex_unlock(&st.lock);
	if (res)
		return res;
	res = buf_add(&b->blob, t->id, strlen(t->id) + 1);
	if (!res)
		b->n++;
	return res;
}

/*
 * A task that was in old and is not in new has changed (a status folder
 * lost it) or gone: its record, even a terminal one, is fetched again on
 * its next use, and the kernel's caches of it go.
 */
static void recheck_leavers_locked(const struct listing *old,
				   const struct listing *new)
{
	struct task *t;
	size_t i;

	for (i = 0; i < old->n; i++) {
		if (listing_has(new, old->ids[i]))
			continue;
		t = taskmap_find(&st.tasks, old->ids[i]);
		if (t) {
			__atomic_store_n(&t->fetched, 0, __ATOMIC_RELAXED);
			changed_locked(t->id);
		}
	}
}

int store_key(const struct list_body *q, long limit, struct buf *key)
{
	int res = json_list_body(q, key);

	return res ? res : buf_printf(key, "#%ld", limit);
}

static int fetch_listing(const struct list_body *q, long limit,
			 struct listing **out)
{
	size_t ids_max = st.cap / LISTING_IDS_SHARE > LISTING_IDS_MIN ?
		st.cap / LISTING_IDS_SHARE :
		LISTING_IDS_MIN;
	struct builder b = { BUF_INIT(ids_max), 0, 0 };
	time_t start = time(NULL);
	int res, tries = 0;

	/* -ESTALE: the folder moved while it was paged; list it again */
	while ((res = st.src.list(q, limit, builder_sink, &b)) == -ESTALE &&
	       ++tries < LISTING_TRIES) {
		buf_release(&b.blob);
		b = (struct builder){ BUF_INIT(ids_max), 0, 0 };
		start = time(NULL);
	}
	if (res == -ESTALE) {
		/* the last one, all of it, is what there is */
		log_warn("a listing kept moving while it was paged (%d tries): "
			 "a task may be missing or shown once more until the "
			 "next refresh",
			 LISTING_TRIES);
		res = 0;
	}

	if (res == -EFBIG) {
		log_err("a listing of more than %zu tasks (%zu bytes of ids, "
			"an "
			"eighth of cache_size) was stopped: it would not fit",
			b.n, ids_max);
		res = -EIO;
	}
	if (res) {
		buf_release(&b.blob);
		return res;
	}
	res = listing_new(&b.blob, b.n, out, &b.skipped_dups);
	/* as old as its first page: its tasks go stale no sooner than it */
	if (!res)
		(*out)->fetched = start;
	/* parsing pages leaves the worker threads' heaps full of holes */
	mem_trim();
	if (!res && b.skipped_dups)
		log_warn("a listing repeated %zu task ids; shown once",
			 b.skipped_dups);
	return res;
}

/* What a load thread needs: it outlives the thread that asked. */
struct load {
	struct lentry *le; /* stays: store_trim leaves a loading one alone */
	struct list_body *q;
	long limit;
	char *where; /* the asker's log context, or NULL */
};

/* A load ended: the snapshot it brought, or its error. Lock held. */
static void load_done_locked(struct lentry *le, int res, struct listing *l)
{
	le->loading = false;
	le->gen++;
	le->err = res;
	if (!res) {
		l->changed = l->fetched;
		l->gen = ++le->fetches;
		memset(le->gets, 0, sizeof(le->gets));
		if (le->cur) {
			if (listing_same(le->cur, l))
				l->changed = le->cur->changed;
			else
				recheck_leavers_locked(le->cur, l);
			listing_unref(le->cur);
		}
		le->cur = l;
		lentry_touch_locked(le);
		grew_locked();
	} else if (res != -EINTR && le->cur && serve_stale(res)) {
		/* -EINTR: nobody wanted it any more; nothing failed */
		note_failure(res);
		__atomic_add_fetch(&le->cur->failures, 1, __ATOMIC_RELAXED);
		log_once(LOG_WARNING,
			 "serving the last good listing (%zu tasks) after a "
			 "failed refresh",
			 le->cur->n);
	}
	pthread_cond_broadcast(&st.loaded);
}

/*
 * A load thread: fetches one listing for whoever waits for it, in the
 * context of its sched_job (its requests are as urgent as the most
 * urgent waiter, and given up when nobody waits and it is not a
 * background refresh).
 */
static void *load_main(void *arg)
{
	struct load *ld = arg;
	struct lentry *le = ld->le;
	struct listing *l = NULL;
	int res;

	*sched_ctx() = (struct sched_ctx){ .cls = SCHED_PERSON,
					   .job = &le->job };
	log_set_context(ld->where);
	stats_add(STATS_LISTING_MISSES, 1);
	res = fetch_listing(ld->q, ld->limit, &l);
	log_set_context(NULL);
	pthread_mutex_lock(&st.lock);
	load_done_locked(le, res, l);
	st.loads--;
	pthread_mutex_unlock(&st.lock);
	list_body_free(ld->q);
	free(ld->where);
	free(ld);
	return NULL;
}

/* Start a load of le's listing (q, limit) on a thread of its own. */
static int load_start_locked(struct lentry *le, const struct list_body *q,
			     long limit)
{
	struct load *ld = calloc(1, sizeof(*ld));
	const char *where = log_context();
	pthread_attr_t attr;
	pthread_t tid;
	int res = -ENOMEM;

	if (!ld || !(ld->q = list_body_dup(q)) ||
	    (where && !(ld->where = strdup(where))))
		goto fail;
	ld->le = le;
	ld->limit = limit;
	le->loading = true;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	res = -pthread_create(&tid, &attr, load_main, ld);
	pthread_attr_destroy(&attr);
	if (!res) {
		st.loads++;
		return 0;
	}
	le->loading = false;
fail:
	if (ld) {
		list_body_free(ld->q);
		free(ld->where);
	}
	free(ld);
	return res;
}

/*
 * When the budget is short, a stale listing is served as it is while its
 * refresh waits for the budget in the background; not one asked for by
 * hand (.refresh), nor after the key was refused.
 */
static bool stale_while_refreshing(const struct lentry *le)
{
	return le->cur &&
		!__atomic_load_n(&le->cur->expired, __ATOMIC_RELAXED) &&
		sched_pacing();
}

static int listing_get(const struct list_body *q, long limit,
		       struct listing **out, bool fetch)
{
	struct sched_ctx *ctx = sched_ctx();
	struct buf key = BUF_INIT(1 << 20);
	struct lentry *le;
	unsigned gen;
	int res;

	res = store_key(q, limit, &key);
	if (res)
		return res;
	pthread_mutex_lock(&st.lock);
	HASH_FIND_STR(st.listings, buf_str(&key), le);
	if (!le) {
		if (!fetch) {
			res = -ENOENT;
			goto out;
		}
		le = calloc(1, sizeof(*le));
		if (!le || !(le->key = buf_detach(&key, NULL))) {
			free(le);
			res = -ENOMEM;
			goto out;
		}
		HASH_ADD_KEYPTR(hh, st.listings, le->key, strlen(le->key), le);
		lentry_touch_locked(le);
	}
	for (;;) {
		if (le->cur && listing_fresh(le->cur)) {
			if (fetch)
				lentry_touch_locked(le);
			*out = listing_ref(le->cur);
			stats_add(STATS_LISTING_HITS, fetch);
			res = 0;
			goto out;
		}
		if (!fetch) {
			res = le->cur ? 0 : -ENOENT;
			if (le->cur)
				*out = listing_ref(le->cur);
			goto out;
		}
		if (stale_while_refreshing(le)) {
			if (!le->loading) {
				le->job = (struct sched_job){
					.prio = SCHED_BACKGROUND,
					.background = true,
				};
				load_start_locked(le, q, limit);
			}
			lentry_touch_locked(le);
			*out = listing_ref(le->cur);
			res = 0;
			goto out;
		}
		if (ctx->nofetch) {
			res = -EINPROGRESS; /* a thread that may wait will ask */
			goto out;
		}
		if (!le->loading)
			le->job = (struct sched_job){ .prio = (int)ctx->cls };
		else if ((int)ctx->cls < le->job.prio)
			__atomic_store_n(&le->job.prio, (int)ctx->cls,
					 __ATOMIC_RELAXED);
		/* a waiter before the load starts: its requests are wanted */
		__atomic_add_fetch(&le->job.waiters, 1, __ATOMIC_RELAXED);
		if (!le->loading) {
			res = load_start_locked(le, q, limit);
			if (res) {
				__atomic_sub_fetch(&le->job.waiters, 1,
						   __ATOMIC_RELAXED);
				goto out;
			}
		}
		/* single-flight: wait for the load in progress */
		gen = le->gen;
		while (le->loading && le->gen == gen && !sched_cancelled())
			pthread_cond_wait(&st.loaded, &st.lock);
		__atomic_sub_fetch(&le->job.waiters, 1, __ATOMIC_RELAXED);
		if (le->gen == gen) {
			/* the reader gave up; the load goes on for others */
			res = -EINTR;
			pthread_mutex_unlock(&st.lock);
			sched_wake(); /* its requests may be unwanted now */
			buf_release(&key);
			return res;
		}
		if (le->err) {
			res = le->err;
			if (le->cur && serve_stale(res) && res != -EINTR) {
				*out = listing_ref(le->cur);
				res = 0;
			} else if (res == -EINTR) {
				continue; /* abandoned before us: load again */
			}
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&st.lock);
	buf_release(&key);
	return res;
}

int store_listing(const struct list_body *q, long limit, struct listing **out)
{
	return listing_get(q, limit, out, true);
}

int store_listing_peek(const struct list_body *q, long limit,
		       struct listing **out)
{
	return listing_get(q, limit, out, false);
}

int store_count(const struct list_body *q, long limit, long *n)
{
	struct buf key = BUF_INIT(1 << 20);
	struct listing *l;
	bool fresh;
	int res;

	if (!store_listing_peek(q, limit, &l)) {
		fresh = listing_fresh(l);
		if (fresh)
			*n = (long)l->n;
		listing_unref(l);
		if (fresh)
			return 0;
	}
	res = store_key(q, limit, &key);
	if (res || counts_get(buf_str(&key), st.ttl, n))
		goto out;
	if (sched_ctx()->nofetch)
		res = -EINPROGRESS; /* a thread that may wait will ask */
	else
		res = st.src.count ? st.src.count(q, n) : -ENODATA;
	if (!res) {
		if (limit > 0 && *n > limit)
			*n = limit;
		counts_put(buf_str(&key), *n);
	}
out:
	buf_release(&key);
	return res;
}

/* The one task the list request for id finds (no ingest), or -ENOENT. */
struct one {
	const char *id;
	struct task *t;
};

static int one_sink(void *ctx, struct task *t)
{
	struct one *o = ctx;

	if (!o->t && !strcmp(t->id, o->id))
		o->t = task_ref(t); /* borrowed: its own reference */
	return 0;
}

static int task_by_list(const char *id, struct task **out)
{
	char *ids[1] = { (char *)id };
	struct one o = { id, NULL };
	int res;

	if (!st.src.get_tasks)
		return -ENOENT;
	res = st.src.get_tasks(ids, 1, one_sink, &o);
	if (!res && !o.t)
		res = -ENOENT;
	if (res) {
		task_unref(o.t);
		return res;
	}
	*out = o.t;
	return 0;
}
/* ---- single tasks ---- */

static int task_get(const char *id, bool force, bool by_hand, struct task **out)
{
	struct task *stale = NULL, *t;
	bool by_list;
	int res;

	if (by_hand)
		asked_by_hand();
	pthread_mutex_lock(&st.lock);
	t = taskmap_find(&st.tasks, id);
	if (t && !force && task_fresh_locked(t)) {
		touch_locked(t);
		*out = task_ref(t);
		pthread_mutex_unlock(&st.lock);
		stats_add(STATS_TASK_HITS, 1);
		return 0;
	}
	if (t)
		stale = task_ref(t);
	if (!t && !force && missing_has(&st.missing, id, st.ttl)) {
		pthread_mutex_unlock(&st.lock);
		stats_add(STATS_TASK_HITS, 1);
		return -ENOENT; /* the API said so within the ttl */
	}
	pthread_mutex_unlock(&st.lock);
	if (sched_ctx()->nofetch) {
		task_unref(stale);
		return -EINPROGRESS; /* a thread that may wait will ask */
	}
	stats_add(STATS_TASK_MISSES, 1);

	pthread_mutex_lock(&st.lock);
	by_list = missing_has(&st.by_list, id, UINT_MAX);
	pthread_mutex_unlock(&st.lock);
	res = by_list ? -ENOENT : st.src.get_task(id, &t);
	if (res == -ENOENT && (stale || by_list)) {
		/*
		 * A task listed before may be gone from the API's fast tier
		 * (Mixpeek: after about 24 h): GET says 404 while the list
		 * still has it. Ask the list before calling it gone.
		 */
		res = task_by_list(id, &t);
		if (!res && !by_list) {
			pthread_mutex_lock(&st.lock);
			missing_add(&st.by_list, id);
			pthread_mutex_unlock(&st.lock);
			log_debug("task %s: GET says 404, the list has it: "
				  "asked for by list from now on",
				  id);
		}
	}
	if (!res) {
		pthread_mutex_lock(&st.lock);
		res = ingest_locked(t);
		pthread_mutex_unlock(&st.lock);
		if (res)
			task_unref(t);
		else
			*out = t;
	} else if (res == -ENOENT) {
		pthread_mutex_lock(&st.lock);
		t = taskmap_find(&st.tasks, id);
		if (t) {
			drop_locked(t);
			changed_locked(id);
		}
		missing_add(&st.missing, id);
		pthread_mutex_unlock(&st.lock);
	} else if (stale && !force && serve_stale(res)) {
		note_failure(res);
		*out = task_ref(stale);
		res = 0;
	}
	/* a forced refresh that failed says so; the record stays */
	task_unref(stale);
	return res;
}

int store_task(const char *id, struct task **out)
{
	return task_get(id, false, false, out);
}

int store_task_cached(const char *id, struct task **out)
{
	struct task *t;
	int res = -ENOENT;

	pthread_mutex_lock(&st.lock);
	t = taskmap_find(&st.tasks, id);
	if (t && task_fresh_locked(t)) {
		touch_locked(t);
		*out = task_ref(t);
		res = 0;
	}
	pthread_mutex_unlock(&st.lock);
	if (!res)
		stats_add(STATS_TASK_HITS, 1);
	return res;
}

/*
 * Whether a fetch of task id under the listing of key is part of a walk:
 * the stale listing holds id (a walk visits what the folder listed; a
 * name it does not hold is one a person typed, or a probe), and
 * WALK_GETS of its tasks were fetched on their own within a ttl. If not,
 * this fetch is noted as one of them.
 */
static bool walking_locked(const char *key, const char *id)
{
	time_t now = time(NULL), oldest;
	struct lentry *le;

	HASH_FIND_STR(st.listings, key, le);
	if (!le || !le->cur || listing_fresh(le->cur) ||
	    !listing_has(le->cur, id))
		return false;
	oldest = le->gets[le->getpos];
	if (oldest && now - oldest < (time_t)st.ttl)
		return true;
	le->gets[le->getpos] = now;
	le->getpos = (le->getpos + 1) % WALK_GETS;
	return false;
}

int store_task_in(const char *id, const struct list_body *q, long limit,
		  struct task **out)
{
	struct buf key = BUF_INIT(1 << 20);
	struct listing *l;
	bool walk = false;

	if (!store_task_cached(id, out))
		return 0;
	if (sched_ctx()->nofetch)
		return -EINPROGRESS; /* before it counts as a walk's GET */
	if (!store_key(q, limit, &key)) {
		pthread_mutex_lock(&st.lock);
		walk = walking_locked(buf_str(&key), id);
		pthread_mutex_unlock(&st.lock);
	}
	buf_release(&key);
	if (walk && !store_listing(q, limit, &l)) {
		listing_unref(l);
		if (!store_task_cached(id, out))
			return 0;
	}
	/* not in the listing (any more), or it failed: on its own */
	return store_task(id, out);
}

int store_task_refresh(const char *id, struct task **out)
{
	return task_get(id, true, true, out);
}

int store_task_poll(const char *id, struct task **out)
{
	return task_get(id, true, false, out);
}

/* Which of a poll's ids came back. */
struct polled {
	char *const *ids;
	size_t *order; /* indexes of ids, sorted by id */
	size_t n;
	bool *found;
};

static int polled_sink(void *ctx, struct task *t)
{
	struct polled *p = ctx;
	size_t lo = 0, hi = p->n;
	int res;

	pthread_mutex_lock(&st.lock);
	res = ingest_locked(t);
	pthread_mutex_unlock(&st.lock);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(p->ids[p->order[mid]], t->id);

		if (!c) {
			p->found[p->order[mid]] = true;
			break;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return res;
}

static int by_id_index(const void *a, const void *b, void *ids)
{
	return strcmp(((char *const *)ids)[*(const size_t *)a],
		      ((char *const *)ids)[*(const size_t *)b]);
}

int store_poll(char *const *ids, size_t n, int *res)
{
	struct polled p = { ids, calloc(n + 1, sizeof(size_t)), n,
			    calloc(n + 1, sizeof(bool)) };
	struct task *t;
	size_t i;
	int err = -ENOMEM;

	if (!p.order || !p.found)
		goto out;
	for (i = 0; i < n; i++)
		p.order[i] = i;
	qsort_r(p.order, n, sizeof(*p.order), by_id_index, (void *)ids);
	stats_add(STATS_TASK_MISSES, n);
	err = st.src.get_tasks ? st.src.get_tasks(ids, n, polled_sink, &p) : 0;
	for (i = 0; i < n; i++) {
		if (err)
			res[i] = err;
		else if (p.found[i])
			res[i] = 0;
		else if (!(res[i] = task_get(ids[i], true, false, &t)))
			task_unref(t); /* not listed: what GET says */
	}
out:
	if (err == -ENOMEM)
		for (i = 0; i < n; i++)
			res[i] = err;
	free(p.order);
	free(p.found);
	return err;
}

void store_expire(const struct list_body *q, long limit)
{
	struct buf key = BUF_INIT(1 << 20);
	struct lentry *le;

	if (store_key(q, limit, &key))
		return;
	pthread_mutex_lock(&st.lock);
	HASH_FIND_STR(st.listings, buf_str(&key), le);
	if (le && le->cur)
		__atomic_store_n(&le->cur->expired, true, __ATOMIC_RELAXED);
	asked_by_hand();
	pthread_mutex_unlock(&st.lock);
	buf_release(&key);
}

void store_expire_all(void)
{
	struct lentry *le, *ltmp;
	struct task *t, *ttmp;

	pthread_mutex_lock(&st.lock);
	HASH_ITER(hh, st.listings, le, ltmp)
	if (le->cur)
		__atomic_store_n(&le->cur->expired, true, __ATOMIC_RELAXED);
	DL_FOREACH_SAFE(st.lru, t, ttmp)
	__atomic_store_n(&t->fetched, 0, __ATOMIC_RELAXED);
	missing_clear(&st.missing);
	counts_clear();
	asked_by_hand();
	pthread_mutex_unlock(&st.lock);
}

void store_on_memory(const struct store_mem_hooks *h)
{
	pthread_mutex_lock(&st.lock);
	if (h)
		st.mem = *h;
	else
		memset(&st.mem, 0, sizeof(st.mem));
	pthread_mutex_unlock(&st.lock);
}

bool store_over(size_t extra)
{
	bool over;

	pthread_mutex_lock(&st.lock);
	over = st.bytes + st.lbytes + extra > st.cap;
	pthread_mutex_unlock(&st.lock);
	return over;
}

/*
 * Which listing goes next: of those nobody waits for, one past its ttl
 * (or that never loaded) and in no one's hands, then one in no one's
 * hands, then any; the least recently used of each kind.
 */
static struct lentry *victim_locked(void)
{
	struct lentry *le, *unused = NULL, *any = NULL;

	DL_FOREACH(st.lru_listings, le)
	{
		bool idle;

		if (le->loading ||
		    __atomic_load_n(&le->job.waiters, __ATOMIC_RELAXED))
			continue;
		idle = !le->cur ||
			__atomic_load_n(&le->cur->refs, __ATOMIC_RELAXED) == 1;
		if (idle && (!le->cur || !listing_fresh(le->cur)))
			return le;
		if (idle && !unused)
			unused = le;
		if (!any)
			any = le;
	}
	return unused ? unused : any;
}

size_t store_trim(size_t extra, size_t (*charge)(const char *key, void *arg),
		  void (*dropped)(const char *key, void *arg), void *arg)
{
	size_t low, n = 0;
	struct lentry *le;

	pthread_mutex_lock(&st.lock);
	low = st.cap - st.cap / 8;
	while (st.bytes + st.lbytes + extra > low && (le = victim_locked())) {
		size_t c = charge ? charge(le->key, arg) : 0;

		extra -= c < extra ? c : extra;
		if (dropped)
			dropped(le->key, arg);
		lentry_free_locked(le);
		n++;
	}
	pthread_mutex_unlock(&st.lock);
	return n;
}

void store_usage(struct store_usage *u)
{
	struct lentry *le, *ltmp;

	memset(u, 0, sizeof(*u));
	pthread_mutex_lock(&st.lock);
	u->tasks = st.tasks.n;
	u->task_bytes = st.bytes;
	u->task_cap = st.cap;
	u->listing_bytes = st.lbytes;
	u->extra_bytes = extra_locked();
	HASH_ITER(hh, st.listings, le, ltmp)
	if (le->cur) {
		u->listings++;
		u->listed += le->cur->n;
	}
	pthread_mutex_unlock(&st.lock);
}

bool store_task_fresh(const char *id)
{
	struct task *t;
	bool fresh;

	pthread_mutex_lock(&st.lock);
	t = taskmap_find(&st.tasks, id);
	fresh = t && task_fresh_locked(t);
	pthread_mutex_unlock(&st.lock);
	return fresh;
}

struct task *store_task_peek(const char *id)
{
	struct task *t;

	pthread_mutex_lock(&st.lock);
	t = taskmap_find(&st.tasks, id);
	if (t)
		task_ref(t);
	pthread_mutex_unlock(&st.lock);
	return t;
}
