// SPDX-License-Identifier: MIT
/*
 * store_ids: the store's two tables of ids, the task records by id and
 * the ids the API answered 404 for. No lock: store.c holds its own.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "store_i.h"

static uint32_t id_hash(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h;
}

struct task *taskmap_find(const struct taskmap *m, const char *id)
{
	uint32_t h = id_hash(id);
	struct task *t;

	if (!m->nb)
		return NULL;
	for (t = m->b[h & (m->nb - 1)]; t; t = t->hnext)
		if (t->hash == h && !strcmp(t->id, id))
			return t;
	return NULL;
}

static void grow(struct taskmap *m)
{
	size_t nb = m->nb ? m->nb * 2 : 1024, i;
	struct task **b = calloc(nb, sizeof(*b)), *t;

	if (!b)
		return; /* longer chains, still right */
	for (i = 0; i < m->nb; i++) {
		while ((t = m->b[i])) {
			m->b[i] = t->hnext;
			t->hnext = b[t->hash & (nb - 1)];
			b[t->hash & (nb - 1)] = t;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

int taskmap_add(struct taskmap *m, struct task *t)
{
	struct task **b;

	if (m->n >= m->nb)
		grow(m);
	if (!m->nb)
		return -ENOMEM;
	t->hash = id_hash(t->id);
	b = &m->b[t->hash & (m->nb - 1)];
	t->hnext = *b;
	*b = t;
	m->n++;
	return 0;
}

void taskmap_del(struct taskmap *m, struct task *t)
{
	struct task **pp = &m->b[t->hash & (m->nb - 1)];

	while (*pp != t)
		pp = &(*pp)->hnext;
	*pp = t->hnext;
	m->n--;
}

void taskmap_release(struct taskmap *m)
{
	free(m->b);
	memset(m, 0, sizeof(*m));
}

struct missing {
	UT_hash_handle hh;
	time_t when;
	char id[];
};

void missing_drop(struct missing_set *s, const char *id)
{
	struct missing *m;
	unsigned i;

	if (!s->by_id)
		return;
	HASH_FIND_STR(s->by_id, id, m);
	if (!m)
		return;
	HASH_DEL(s->by_id, m);
	for (i = 0; i < MISSING_MAX; i++)
		if (s->ring[i] == m)
			s->ring[i] = NULL;
	free(m);
}

void missing_add(struct missing_set *s, const char *id)
{
	size_t len = strlen(id);
	struct missing *m, **slot = &s->ring[s->pos];

	missing_drop(s, id);
	if (*slot)
		missing_drop(s, (*slot)->id);
	m = malloc(sizeof(*m) + len + 1);
	if (!m)
		return;
	memcpy(m->id, id, len + 1);
	m->when = time(NULL);
	HASH_ADD_KEYPTR(hh, s->by_id, m->id, len, m);
	*slot = m;
	s->pos = (s->pos + 1) % MISSING_MAX;
}

bool missing_has(const struct missing_set *s, const char *id, unsigned ttl)
{
	struct missing *m;

	HASH_FIND_STR(s->by_id, id, m);
	return m && time(NULL) - m->when < (time_t)ttl;
}

void missing_clear(struct missing_set *s)
{
	struct missing *m, *tmp;

	HASH_ITER(hh, s->by_id, m, tmp)
	{
		HASH_DEL(s->by_id, m);
		free(m);
	}
	memset(s->ring, 0, sizeof(s->ring));
}
