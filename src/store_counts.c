// SPDX-License-Identifier: MIT
/*
 * The counts of folders asked for by user.mixpeek.count whose listing is
 * not cached (store.c: store_count): one list request of one task with
 * its total, kept for the ttl. At most COUNTS_MAX keys; when full, all
 * go. Its own lock, taken alone; never blocks.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>

#include "store_i.h"

struct counted {
	UT_hash_handle hh;
	time_t at;
	long n;
	char key[]; /* store_key's */
};

static struct {
	pthread_mutex_t lock;
	struct counted *by_key;
	size_t n;
} cs = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void clear_locked(void)
{
	struct counted *c, *tmp;

	HASH_ITER(hh, cs.by_key, c, tmp)
	{
		HASH_DEL(cs.by_key, c);
		free(c);
	}
	cs.n = 0;
}

bool counts_get(const char *key, unsigned ttl, long *n)
{
	struct counted *c;
	bool fresh;

	pthread_mutex_lock(&cs.lock);
	HASH_FIND_STR(cs.by_key, key, c);
	fresh = c && time(NULL) - c->at < (time_t)ttl;
	if (fresh)
		*n = c->n;
	pthread_mutex_unlock(&cs.lock);
	return fresh;
}

void counts_put(const char *key, long n)
{
	size_t len = strlen(key);
	struct counted *c;

	pthread_mutex_lock(&cs.lock);
	HASH_FIND_STR(cs.by_key, key, c);
	if (!c) {
		if (cs.n >= COUNTS_MAX)
			clear_locked();
		c = malloc(sizeof(*c) + len + 1);
		if (!c) {
			pthread_mutex_unlock(&cs.lock);
			return;
		}
		memcpy(c->key, key, len + 1);
		HASH_ADD_STR(cs.by_key, key, c);
		cs.n++;
	}
	c->at = time(NULL);
	c->n = n;
	pthread_mutex_unlock(&cs.lock);
}

void counts_clear(void)
{
	pthread_mutex_lock(&cs.lock);
	clear_locked();
	pthread_mutex_unlock(&cs.lock);
}
