// SPDX-License-Identifier: MIT
/*
 * kcache: one helper thread talks to the kernel outside request handlers
 * (the only user of fuse_lowlevel_notify_*):
 *
 * - Files found by LOOKUP are about to be read (stat and open look up by
 *   name; ls uses readdirplus). It renders them and stores the bytes in
 *   the kernel's page cache, which saves the READ round trip. That cannot
 *   be done in the LOOKUP handler: the kernel makes the inode only after
 *   the reply, so a store sent with it finds none (ENOENT).
 * - When the store sees a task change, it drops the kernel's attributes
 *   and pages for every path into that task, the task's entries in
 *   by-status/ folders (it may have moved) and the names the kernel was
 *   told do not exist inside it.
 * - On SIGHUP it refreshes everything.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_i.h"
#include "log.h"
#include "mem.h"
#include "stats.h"

static void push_one(struct fs *fs, struct node *n, bool *again)
{
	struct buf b = BUF_INIT(PUSH_MAX);
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);
	time_t when;
	int res = -ESTALE;

	*again = false;
	/* never a fetch from here: that would hold up invalidations */
	if (store_task_fresh(node_value(node_task(n))))
		res = node_render(fs, n, &b, &when);
	if (!res && b.len) {
		bv.buf[0].mem = b.data;
		bv.buf[0].size = b.len;
		res = fuse_lowlevel_notify_store(fs->se,
						 node_ino(&fs->nodes, n), 0,
						 &bv, 0);
	}
	buf_release(&b);
	*again = res == -ENOENT;
}

static void push_all(struct fs *fs, struct node **batch, size_t n)
{
	struct node *retry[PUSH_QUEUE];
	size_t i, nr = 0;
	bool again;

	for (i = 0; i < n; i++) {
		push_one(fs, batch[i], &again);
		if (again)
			retry[nr++] = batch[i];
		else
			node_forget(&fs->nodes, batch[i], 1);
	}
	/* the inode appears when the lookup's caller runs again */
	if (nr)
		usleep(1000);
	for (i = 0; i < nr; i++) {
		push_one(fs, retry[i], &again);
		node_forget(&fs->nodes, retry[i], 1);
	}
}

/* Remember that name was not found in parent (for a later refresh). */
void neg_add(struct fs *fs, struct node *parent, const char *name)
{
	struct notifier *nt = &fs->note;
	struct neg *ng;
	char *copy = strdup(name);

	if (!copy)
		return;
	pthread_mutex_lock(&nt->lock);
	ng = &nt->negs[nt->negpos];
	if (!nt->running || nt->stop || ng->due) {
		pthread_mutex_unlock(&nt->lock);
		free(copy);
		return;
	}
	nt->negpos = (nt->negpos + 1) % NEG_MAX;
	if (ng->parent)
		node_forget(&fs->nodes, ng->parent, 1);
	free(ng->name);
	node_hold(&fs->nodes, parent);
	ng->parent = parent;
	ng->name = copy;
	pthread_mutex_unlock(&nt->lock);
}

static bool same_node(const struct node *n, const void *arg)
{
	return !arg || n == arg;
}

/* The same for the names not found in the folders where match holds. */
static void neg_due_if(struct fs *fs,
		       bool (*match)(const struct node *, const void *),
		       const void *arg)
{
	struct notifier *nt = &fs->note;
	size_t i;

	pthread_mutex_lock(&nt->lock);
	for (i = 0; i < NEG_MAX; i++) {
		struct neg *ng = &nt->negs[i];

		if (ng->parent && !ng->due && match(ng->parent, arg)) {
			ng->due = true;
			nt->ndue++;
		}
	}
	if (nt->ndue) {
		nt->queued++;
		pthread_cond_signal(&nt->wake);
	}
	pthread_mutex_unlock(&nt->lock);
}

/* Have the helper drop the names not found in parent (NULL: anywhere). */
void neg_due(struct fs *fs, const struct node *parent)
{
	neg_due_if(fs, same_node, parent);
}

/*
 * The kernel kept a name absent that it was told to forget: Linux 6.19 to
 * 7.1 at least fail so for a cached absent name (LKML, 2026-05-30). From
 * now on, absent names are kept briefly instead of for the ttl.
 */
static void neg_refused(struct fs *fs)
{
	if (__atomic_exchange_n(&fs->neg_broken, true, __ATOMIC_RELAXED))
		return;
	log_warn("the kernel did not forget a name it caches as absent "
		 "(Linux 6.19 and later): absent names are kept for %.0f s "
		 "from now on, not for the ttl",
		 NEG_KEEP_BROKEN);
}

double neg_keep(struct fs *fs, double keep)
{
	return __atomic_load_n(&fs->neg_broken, __ATOMIC_RELAXED) &&
			keep > NEG_KEEP_BROKEN ?
		NEG_KEEP_BROKEN :
		keep;
}

/* Drop the kernel's entries for the names marked due. Lock held. */
static void neg_drop_locked(struct fs *fs)
{
	struct notifier *nt = &fs->note;
	size_t i;

	for (i = 0; i < NEG_MAX && nt->ndue; i++) {
		struct neg ng = nt->negs[i];

		if (!ng.due)
			continue;
		memset(&nt->negs[i], 0, sizeof(nt->negs[i]));
		nt->ndue--;
		pthread_mutex_unlock(&nt->lock);
		if (fuse_lowlevel_notify_inval_entry(fs->se,
						     node_ino(&fs->nodes,
							      ng.parent),
						     ng.name,
						     strlen(ng.name)) ==
		    -ENOENT)
			neg_refused(fs);
		node_forget(&fs->nodes, ng.parent, 1);
		free(ng.name);
		pthread_mutex_lock(&nt->lock);
	}
}

/*
 * Wait until the helper has done the work queued so far (bounded: it
 * may be stuck behind a folder a hanging request holds).
 */
void notifier_flush(struct fs *fs)
{
	struct notifier *nt = &fs->note;
	unsigned long target;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&nt->lock);
	target = nt->queued;
	while (nt->running && !nt->helper_done && nt->done < target &&
	       pthread_cond_timedwait(&nt->idle, &nt->lock, &until) == 0)
		;
	pthread_mutex_unlock(&nt->lock);
}

/*
 * Queue a file the kernel just looked up, with the reference the caller
 * took for it; a full queue drops it.
 */
void push_add(struct fs *fs, struct node *n)
{
	struct notifier *nt = &fs->note;
	bool queued = false;

	pthread_mutex_lock(&nt->lock);
	if (nt->running && !nt->stop && nt->npush < PUSH_QUEUE) {
		nt->push[nt->npush++] = n;
		pthread_cond_signal(&nt->wake);
		queued = true;
	}
	pthread_mutex_unlock(&nt->lock);
	if (!queued)
		node_forget(&fs->nodes, n, 1);
}

/* The store's hook (under its lock): note the id for the helper. */
static void task_changed(const char *id, void *arg)
{
	struct notifier *nt = &((struct fs *)arg)->note;
	char **v;

	/* every .jsonl and .tsv made before is made again */
	__atomic_add_fetch(&((struct fs *)arg)->changes, 1, __ATOMIC_RELEASE);
	wait_changed(arg, id); /* a read of .wait may end */
	pthread_mutex_lock(&nt->lock);
	if (!nt->running || nt->stop)
		goto out;
	if (nt->nchanged == nt->cap) {
		size_t cap = nt->cap ? nt->cap * 2 : 64;

		v = cap <= (1u << 20) ? realloc(nt->changed, cap * sizeof(*v)) :
					NULL;
		if (!v) {
			nt->inval_all = true;
			goto signal;
		}
		nt->changed = v;
		nt->cap = cap;
	}
	if (!(nt->changed[nt->nchanged] = strdup(id)))
		nt->inval_all = true;
	else
		nt->nchanged++;
signal:
	nt->queued++;
	pthread_cond_signal(&nt->wake);
out:
	pthread_mutex_unlock(&nt->lock);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct idset {
	char **ids; /* sorted */
	size_t n;
};

/* A node inside one of the tasks of set (arg). */
static bool in_task_of(const struct node *n, const void *arg)
{
	const struct idset *set = arg;
	const struct node *t = node_task(n);
	const char *id;

	if (!t)
		return false;
	id = node_value(t);
	return bsearch(&id, set->ids, set->n, sizeof(*set->ids), cmp_str);
}

static bool in_idset(const struct node *n, void *arg)
{
	if (n->kind == NK_REFRESH || n->kind == NK_WAIT)
		return false; /* its READ may be waiting (for us) */
	if (n->kind == NK_LISTING && n->parent->kind == NK_GROUP &&
	    n->group == STORE_STATUSES)
		return true; /* status folders: a task may have moved */
	if (is_view(n))
		return true; /* any listing's .jsonl and .tsv may show it */
	return in_task_of(n, arg);
}

static bool any_node(const struct node *n, void *arg)
{
	(void)arg;
	/* its READ may be waiting (for us) */
	return n->kind != NK_REFRESH && n->kind != NK_WAIT;
}

/* A task folder in a by-status/ folder: its entry may have to go. */
static bool in_status_folder(const struct node *n)
{
	const struct node *l = n->parent;

	return n->kind == NK_TASK && l->kind == NK_LISTING &&
		l->parent->kind == NK_GROUP && l->group == STORE_STATUSES;
}

/*
 * Drop the kernel's attributes and pages of the nodes that match (all
 * with set NULL), and the entries of matching tasks in status folders.
 * Not from a request handler: dropping an entry locks its folder.
 */
static void invalidate(struct fs *fs, struct idset *set, bool entries)
{
	struct node **v;
	long n, i;

	n = node_collect(&fs->nodes, set ? in_idset : any_node, set, &v);
	if (n < 0) {
		log_warn("cannot drop the kernel's caches: out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		if (!fuse_lowlevel_notify_inval_inode(fs->se,
						      node_ino(&fs->nodes,
							       v[i]),
						      0, 0))
			stats_add(STATS_INVALIDATIONS, 1);
	for (i = 0; entries && i < n; i++)
		if (in_status_folder(v[i]) &&
		    !fuse_lowlevel_notify_inval_entry(fs->se,
						      node_ino(&fs->nodes,
							       v[i]->parent),
						      v[i]->name,
						      strlen(v[i]->name)))
			stats_add(STATS_INVALIDATIONS, 1);
	for (i = 0; i < n; i++)
		node_forget(&fs->nodes, v[i], 1);
	free(v);
}

/*
 * Drop the kernel's caches of tasks ids[0..n), also the names it was
 * told do not exist inside them (a field may have appeared), and free
 * the ids.
 */
void invalidate_changed(struct fs *fs, char **ids, size_t n, bool entries)
{
	struct idset set = { ids, n };
	size_t i;

	qsort(ids, n, sizeof(*ids), cmp_str);
	invalidate(fs, &set, entries);
	neg_due_if(fs, in_task_of, &set);
	for (i = 0; i < n; i++)
		free(ids[i]);
}

/* Everything stale, in the store and in the kernel. */
void refresh_all(struct fs *fs)
{
	store_expire_all();
	vfile_refreshed_now(fs);
	invalidate(fs, NULL, false);
	neg_due(fs, NULL);
}

/* ---- memory: listings beyond cache_size go, and their nodes ---- */

/* How long nodes the kernel was told to forget count as on their way. */
#define PENDING_SECS 2

/* The nodes' bytes, less what is on its way out. nt->lock held. */
static size_t extra_locked(struct fs *fs)
{
	struct notifier *nt = &fs->note;
	size_t now = node_bytes(&fs->nodes), freed, left;

	if (!nt->pending || time(NULL) - nt->pending_at > PENDING_SECS)
		return now;
	freed = nt->pending_base > now ? nt->pending_base - now : 0;
	left = nt->pending > freed ? nt->pending - freed : 0;
	return now > left ? now - left : 0;
}

/* The store's extra hook (under its lock). */
static size_t mem_extra(void *arg)
{
	struct fs *fs = arg;
	size_t extra;

	pthread_mutex_lock(&fs->note.lock);
	extra = extra_locked(fs);
	pthread_mutex_unlock(&fs->note.lock);
	return extra + views_bytes(); /* the views' texts kept */
}

/* Over the cap (the store's hook, or the nodes grew): trim soon. */
static void mem_full(void *arg)
{
	struct notifier *nt = &((struct fs *)arg)->note;

	pthread_mutex_lock(&nt->lock);
	if (nt->running && !nt->stop && !nt->trim) {
		nt->trim = true;
		pthread_cond_signal(&nt->wake);
	}
	pthread_mutex_unlock(&nt->lock);
}

/* The listing folders the kernel knows, with their store keys. */
struct trimset {
	struct node **nodes;
	size_t *subs;
	char **keys; /* NULL: not a listing the store could hold */
	bool *drop;
	long n;
};

static size_t trim_charge(const char *key, void *arg)
{
	struct trimset *ts = arg;
	size_t c = 0;
	long i;

	for (i = 0; i < ts->n; i++)
		if (ts->keys[i] && !ts->drop[i] && !strcmp(ts->keys[i], key))
			c += ts->subs[i];
	return c;
}

static void trim_dropped(const char *key, void *arg)
{
	struct trimset *ts = arg;
	long i;

	for (i = 0; i < ts->n; i++)
		if (ts->keys[i] && !strcmp(ts->keys[i], key))
			ts->drop[i] = true;
}

static int trimset_keys(struct trimset *ts)
{
	long i;

	ts->keys = calloc((size_t)ts->n + 1, sizeof(*ts->keys));
	ts->drop = calloc((size_t)ts->n + 1, sizeof(*ts->drop));
	if (!ts->keys || !ts->drop)
		return -ENOMEM;
	for (i = 0; i < ts->n; i++) {
		struct buf key = BUF_INIT(1 << 20);
		struct lquery lq;

		if (lquery_get(ts->nodes[i], &lq))
			continue;
		if (!store_key(&lq.b, lq.q.limit, &key))
			ts->keys[i] = buf_detach(&key, NULL);
		buf_release(&key);
		lquery_release(&lq);
	}
	return 0;
}

/*
 * Nodes on their way out count as gone for PENDING_SECS: once they count
 * no more, the helper checks the total again, in case the kernel kept
 * some of them.
 */
static void recheck_later(struct fs *fs)
{
	struct notifier *nt = &fs->note;

	pthread_mutex_lock(&nt->lock);
	if (nt->pending && time(NULL) - nt->pending_at <= PENDING_SECS)
		nt->recheck_at = nt->pending_at + PENDING_SECS + 1;
	pthread_mutex_unlock(&nt->lock);
}

/*
 * The store and the nodes are over cache_size: drop the least recently
 * used listings, and have the kernel forget their folders' entries
 * (dropping a folder's entry drops every unused entry below it), so that
 * their nodes go on FORGET. Not from a request handler: dropping an
 * entry locks its folder.
 */
static void trim(struct fs *fs)
{
	struct notifier *nt = &fs->note;
	struct trimset ts = { 0 };
	size_t extra, freed = 0, dropped;
	long i;

	extra = mem_extra(fs);
	if (!store_over(extra)) {
		recheck_later(fs);
		return;
	}
	/* nodes freed on FORGET since leave holes: give back whole pages */
	mem_trim();
	ts.n = node_listings(&fs->nodes, &ts.nodes, &ts.subs);
	if (ts.n < 0) {
		log_warn("cannot trim the caches: out of memory");
		return;
	}
	dropped = trimset_keys(&ts) ?
		0 :
		store_trim(extra, trim_charge, trim_dropped, &ts);
	for (i = 0; dropped && i < ts.n; i++) {
		struct node *n = ts.nodes[i];

		if (!ts.drop[i] ||
		    fuse_lowlevel_notify_inval_entry(fs->se,
						     node_ino(&fs->nodes,
							      n->parent),
						     n->name, strlen(n->name)))
			continue;
		freed += ts.subs[i];
		stats_add(STATS_INVALIDATIONS, 1);
	}
	pthread_mutex_lock(&nt->lock);
	nt->pending = node_bytes(&fs->nodes) - extra_locked(fs) + freed;
	nt->pending_base = node_bytes(&fs->nodes);
	nt->pending_at = time(NULL);
	pthread_mutex_unlock(&nt->lock);
	if (dropped)
		recheck_later(fs);
	log_debug("cache_size: %zu listings dropped, %zu bytes of nodes to go",
		  dropped, freed);
	for (i = 0; i < ts.n; i++) {
		node_forget(&fs->nodes, ts.nodes[i], 1);
		free(ts.keys ? ts.keys[i] : NULL);
	}
	free(ts.nodes);
	free(ts.subs);
	free(ts.keys);
	free(ts.drop);
}

static void *notifier_main(void *arg)
{
	struct fs *fs = arg;
	struct notifier *nt = &fs->note;
	struct node *batch[PUSH_QUEUE];
	size_t npush, nchanged;
	bool all, inval_all, trim_due;
	char **changed;

	unsigned long target;

	/* never a fetch from here: it would hold up the kernel's news */
	sched_ctx()->nofetch = true;
	pthread_mutex_lock(&nt->lock);
	while (!nt->stop) {
		if (!nt->npush && !nt->nchanged && !nt->refresh_all &&
		    !nt->inval_all && !nt->ndue && !nt->trim) {
			nt->done = nt->queued;
			pthread_cond_broadcast(&nt->idle);
			if (!nt->recheck_at) {
				pthread_cond_wait(&nt->wake, &nt->lock);
				continue;
			}
			struct timespec at = { nt->recheck_at, 0 };

			if (pthread_cond_timedwait(&nt->wake, &nt->lock, &at) ==
			    ETIMEDOUT) {
				nt->recheck_at = 0;
				nt->trim = true;
			}
			continue;
		}
		target = nt->queued;
		npush = nt->npush;
		memcpy(batch, nt->push, npush * sizeof(*batch));
		changed = nt->changed;
		nchanged = nt->nchanged;
		all = nt->refresh_all;
		inval_all = nt->inval_all;
		trim_due = nt->trim;
		nt->trim = false;
		nt->npush = nt->nchanged = nt->cap = 0;
		nt->changed = NULL;
		nt->refresh_all = nt->inval_all = false;
		pthread_mutex_unlock(&nt->lock);
		if (all) {
			log_info("SIGHUP: refreshing everything");
			refresh_all(fs);
		} else if (inval_all) {
			invalidate(fs, NULL, false);
		}
		if (nchanged)
			invalidate_changed(fs, changed, nchanged, true);
		free(changed);
		if (trim_due)
			trim(fs);
		pthread_mutex_lock(&nt->lock);
		neg_drop_locked(fs);
		nt->done = target;
		pthread_cond_broadcast(&nt->idle);
		pthread_mutex_unlock(&nt->lock);
		push_all(fs, batch, npush);
		pthread_mutex_lock(&nt->lock);
	}
	for (size_t i = 0; i < NEG_MAX; i++) {
		if (nt->negs[i].parent)
			node_forget(&fs->nodes, nt->negs[i].parent, 1);
		free(nt->negs[i].name);
		memset(&nt->negs[i], 0, sizeof(nt->negs[i]));
	}
	nt->done = nt->queued;
	nt->helper_done = true;
	pthread_cond_broadcast(&nt->idle);
	while (nt->npush)
		node_forget(&fs->nodes, nt->push[--nt->npush], 1);
	while (nt->nchanged)
		free(nt->changed[--nt->nchanged]);
	free(nt->changed);
	nt->changed = NULL;
	pthread_mutex_unlock(&nt->lock);
	return NULL;
}

static bool view_in(const struct node *n, void *dir)
{
	return is_view(n) && n->parent == dir;
}

/* Drop the kernel's attributes and pages of folder dir's views. */
static void inval_views(struct fs *fs, struct node *dir)
{
	struct node **v;
	long n = node_collect(&fs->nodes, view_in, dir, &v), i;

	if (n < 0)
		return; /* out of memory: the views follow their ttl */
	for (i = 0; i < n; i++) {
		kcache_inval_node(fs, v[i]);
		node_forget(&fs->nodes, v[i], 1);
	}
	free(v);
}

/*
 * A lookup of <folder>/.refresh: fetch the folder's listing (or task) now
 * and drop what the kernel kept of it; at the root, everything. Within a
 * request only attributes and pages are dropped, never entries (that
 * would lock the folder the lookup holds).
 */
int kcache_refresh(struct fs *fs, struct node *n)
{
	struct listing *l = NULL;
	struct task *t = NULL;
	struct lquery lq;
	char *id;
	int res;

	if (n->kind == NK_ROOT) {
		log_info("refreshing everything (.refresh)");
		refresh_all(fs);
		return 0;
	}
	if (n->kind == NK_TASK) {
		res = store_task_refresh(node_value(n), &t);
		task_unref(t);
		if (res)
			return res;
		if (!(id = strdup(node_value(n))))
			return -ENOMEM;
		invalidate_changed(fs, &id, 1, false);
	} else {
		res = lquery_get(n, &lq);
		if (res)
			return res;
		store_expire(&lq.b, lq.q.limit);
		res = fetch_listing(n, NULL, &lq, &l);
		lquery_release(&lq);
		if (res)
			return res;
		/* the last good listing, served because the fetch failed */
		res = __atomic_load_n(&l->expired, __ATOMIC_RELAXED) ? -EIO : 0;
		listing_unref(l);
		if (res)
			return res;
		kcache_inval_node(fs, n);
		inval_views(fs, n);
	}
	neg_due(fs, n);
	vfile_refreshed_now(fs);
	return 0;
}

void kcache_start(struct fs *fs)
{
	struct notifier *nt = &fs->note;

	pthread_mutex_lock(&nt->lock);
	nt->running = !pthread_create(&nt->thread, NULL, notifier_main, fs);
	pthread_mutex_unlock(&nt->lock);
	if (!nt->running)
		log_warn("no helper thread: caches are dropped only by ttl");
	store_on_change(task_changed, fs);
	store_on_memory(&(struct store_mem_hooks){ mem_extra, mem_full, fs });
	node_on_grow(&fs->nodes, mem_full, fs);
}

void kcache_stop(struct fs *fs)
{
	struct notifier *nt = &fs->note;
	bool running;

	store_on_change(NULL, NULL);
	store_on_memory(NULL);
	node_on_grow(&fs->nodes, NULL, NULL);
	pthread_mutex_lock(&nt->lock);
	running = nt->running;
	nt->stop = true;
	pthread_cond_signal(&nt->wake);
	pthread_mutex_unlock(&nt->lock);
	if (running)
		pthread_join(nt->thread, NULL);
	pthread_mutex_lock(&nt->lock);
	nt->running = false;
	pthread_mutex_unlock(&nt->lock);
}

void kcache_hup(struct fs *fs)
{
	struct notifier *nt = &fs->note;

	pthread_mutex_lock(&nt->lock);
	if (!nt->stop) {
		nt->refresh_all = true;
		nt->queued++;
		pthread_cond_signal(&nt->wake);
	}
	pthread_mutex_unlock(&nt->lock);
}

/*
 * Shutdown: the helper may be inside the kernel (notify_inval_entry)
 * behind a request the loop must still answer, so stop it and wait for
 * it while the loop runs; only then may the loop end.
 */
bool kcache_quiesce(struct fs *fs)
{
	struct notifier *nt = &fs->note;
	bool first;

	pthread_mutex_lock(&nt->lock);
	first = !nt->stop;
	nt->stop = true;
	pthread_cond_signal(&nt->wake);
	while (nt->running && !nt->helper_done)
		pthread_cond_wait(&nt->idle, &nt->lock);
	pthread_mutex_unlock(&nt->lock);
	return first;
}

void kcache_inval_node(struct fs *fs, struct node *n)
{
	fuse_lowlevel_notify_inval_inode(fs->se, node_ino(&fs->nodes, n), 0, 0);
}
