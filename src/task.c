// SPDX-License-Identifier: MIT
/*
 * task: task records. One allocation per record (the struct, the id and
 * the packed JSON); status and type strings interned in one table.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "pack.h"
#include "task.h"

/* Status and type strings, kept once for all tasks. */
struct interned {
	UT_hash_handle hh;
	char s[];
};

static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static struct interned *interned; /* protected by intern_lock */

static const char *intern(const char *s)
{
	size_t len = strlen(s);
	struct interned *i;

	pthread_mutex_lock(&intern_lock);
	HASH_FIND(hh, interned, s, len, i);
	if (!i && (i = malloc(sizeof(*i) + len + 1))) {
		memcpy(i->s, s, len + 1);
		HASH_ADD_KEYPTR(hh, interned, i->s, len, i);
	}
	pthread_mutex_unlock(&intern_lock);
	return i ? i->s : NULL;
}

void task_cleanup(void)
{
	struct interned *i, *tmp;

	pthread_mutex_lock(&intern_lock);
	HASH_ITER(hh, interned, i, tmp)
	{
		HASH_DEL(interned, i);
		free(i);
	}
	pthread_mutex_unlock(&intern_lock);
}

struct task *task_new(const char *id, const char *status, const char *type,
		      const char *json, size_t json_len)
{
	size_t li = strlen(id) + 1, plen;
	unsigned char stack[8192], *tmp = stack;
	struct task *t = NULL;

	if (json_len > TASK_JSON_MAX)
		return NULL;
	if (pack_bound(json_len) > sizeof(stack) &&
	    !(tmp = malloc(pack_bound(json_len))))
		return NULL;
	if (pack(json, json_len, tmp, &plen))
		goto out;
	t = malloc(offsetof(struct task, id) + li + plen);
	if (!t)
		goto out;
	memcpy(t->id, id, li);
	memcpy(t->id + li, tmp, plen);
	t->status = intern(status);
	t->type = intern(type);
	t->packed_len = (uint32_t)plen;
	t->json_len = (uint32_t)json_len;
	t->fetched = t->changed = (uint32_t)time(NULL);
	t->refs = 1;
	t->flags = 0;
	if (!t->status || !t->type) {
		free(t);
		t = NULL;
	}
out:
	if (tmp != stack)
		free(tmp);
	return t;
}

bool task_same_json(const struct task *a, const struct task *b)
{
	return a->json_len == b->json_len &&
		pack_same(TASK_PACKED(a), a->packed_len, TASK_PACKED(b),
			  b->packed_len, a->json_len);
}

int task_json(const struct task *t, struct buf *out)
{
	return unpack(TASK_PACKED(t), t->packed_len, t->json_len, out);
}

struct task *task_ref(struct task *t)
{
	__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void task_unref(struct task *t)
{
	if (t && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(t);
}

int task_status_terminal(const char *s)
{
	return !strcmp(s, "COMPLETED") || !strcmp(s, "COMPLETED_WITH_ERRORS") ||
		!strcmp(s, "FAILED") || !strcmp(s, "CANCELED");
}
