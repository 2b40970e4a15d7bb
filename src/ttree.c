// SPDX-License-Identifier: MIT
/*
 * ttree: the last few trees built, keyed by the task record they came
 * from. A record is immutable, so a tree never goes stale: a changed task
 * is a new record, and the old tree simply ages out.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "buf.h"
#include "json.h"
#include "mem.h"
#include "ttree.h"

#define SLOTS 32
#define TRIM_EVERY 4096

static unsigned long built; /* atomic */

static struct {
	pthread_mutex_t lock;
	struct ttree *slot[SLOTS]; /* protected by lock */
	unsigned next;		   /* protected by lock */
} cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct ttree *ttree_ref(struct ttree *tt)
{
	__atomic_add_fetch(&tt->refs, 1, __ATOMIC_RELAXED);
	return tt;
}

void ttree_unref(struct ttree *tt)
{
	if (!tt || __atomic_sub_fetch(&tt->refs, 1, __ATOMIC_ACQ_REL))
		return;
	tnode_free(tt->root);
	task_unref(tt->task);
	free(tt);
}

static struct ttree *lookup(const struct task *t)
{
	struct ttree *tt = NULL;
	unsigned i;

	pthread_mutex_lock(&cache.lock);
	for (i = 0; i < SLOTS && !tt; i++)
		if (cache.slot[i] && cache.slot[i]->task == t)
			tt = ttree_ref(cache.slot[i]);
	pthread_mutex_unlock(&cache.lock);
	return tt;
}

static void insert(struct ttree *tt)
{
	struct ttree *old;

	pthread_mutex_lock(&cache.lock);
	old = cache.slot[cache.next];
	cache.slot[cache.next] = ttree_ref(tt);
	cache.next = (cache.next + 1) % SLOTS;
	pthread_mutex_unlock(&cache.lock);
	ttree_unref(old);
}

int ttree_get(struct task *t, struct ttree **out)
{
	struct buf json = BUF_INIT(TASK_JSON_MAX);
	struct ttree *tt = lookup(t);
	int res;

	if (tt) {
		*out = tt;
		return 0;
	}
	tt = calloc(1, sizeof(*tt));
	if (!tt)
		return -ENOMEM;
	res = task_json(t, &json);
	if (!res)
		res = json_to_tree(buf_str(&json), json.len, &tt->root);
	buf_release(&json);
	if (res) {
		free(tt);
		return res;
	}
	tt->refs = 1;
	tt->task = task_ref(t);
	insert(tt);
	/* building trees leaves the heap full of holes: return them now and then */
	if (__atomic_add_fetch(&built, 1, __ATOMIC_RELAXED) % TRIM_EVERY == 0)
		mem_trim();
	*out = tt;
	return 0;
}

void ttree_cleanup(void)
{
	unsigned i;

	pthread_mutex_lock(&cache.lock);
	for (i = 0; i < SLOTS; i++) {
		ttree_unref(cache.slot[i]);
		cache.slot[i] = NULL;
	}
	pthread_mutex_unlock(&cache.lock);
}
