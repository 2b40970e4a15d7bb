/* SPDX-License-Identifier: MIT */
/*
 * task: one task as the store keeps it: its id, status and type, and the
 * task's JSON in compact form (packed). Refcounted; any thread may hold
 * and read a record. What may change after task_new:
 *   - id, status, type and the JSON: never. An update is a new record
 *     that replaces this one in the store; readers keep the one they hold.
 *   - changed and flags: set only before the record is shared (json.c
 *     while parsing, store.c under its lock as it takes the record in);
 *     read freely after that.
 *   - fetched: rewritten while shared: the store sets it to 0 to make the
 *     next use fetch the task again. Written only under the store's lock,
 *     with __atomic stores; read under that lock, or with __atomic_load_n
 *     without it (store_task_left).
 *   - refs: atomic.
 * The store's links (prev, next, hnext, hash) belong to the store and its lock.
 * Nothing here blocks but on the intern table's mutex.
 */
#ifndef MIXPEEKFS_TASK_H
#define MIXPEEKFS_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "buf.h"

struct task {
	const char *status; /* interned: shared by every task */
	const char *type;   /* interned */
	/* the store's links, protected by its lock */
	struct task *prev; /* least recently used first */
	struct task *next;
	struct task *hnext;  /* the store's hash chain */
	uint32_t hash;	     /* of the id, for the store */
	uint32_t packed_len; /* the packed JSON follows the id */
	uint32_t json_len;
	uint32_t fetched; /* when the API last returned it (time_t);
				 * 0: fetch again. See above. */
	/*
	 * The task's time: its updated_at; without one, its created_at (or
	 * when first seen) until mixpeekfs sees the JSON change, then when
	 * it saw that. Files and folders show it as mtime and ctime.
	 */
	uint32_t changed;
	unsigned refs;	/* atomic */
	uint32_t flags; /* TASK_* */
	/* in the same block, no pointer to it: 20 bytes a record less */
	char id[];
};

#define TASK_UPDATED_AT 1u /* changed came from updated_at */

/*
 * The longest JSON a record holds: json_len and packed_len are uint32_t,
 * and half of that leaves room for the packed form, which can be a little
 * larger than its input. A task came in one response, so max_response
 * (at most 1G) is the bound in practice.
 */
#define TASK_JSON_MAX (UINT32_MAX / 2)

/* The packed JSON of t. */
#define TASK_PACKED(t) ((const unsigned char *)(t)->id + strlen((t)->id) + 1)

/*
 * One allocation holding the record and copies of the strings; refs = 1.
 * NULL on allocation failure.
 */
struct task *task_new(const char *id, const char *status, const char *type,
		      const char *json, size_t json_len);
struct task *task_ref(struct task *t);
void task_unref(struct task *t);

/* Whether a and b hold the same JSON. */
bool task_same_json(const struct task *a, const struct task *b);

/* Append the task's compact JSON to out. 0 or -errno. */
int task_json(const struct task *t, struct buf *out);

/* True for COMPLETED, COMPLETED_WITH_ERRORS, FAILED and CANCELED. */
int task_status_terminal(const char *status);

/* Free the interned strings, at exit, once no record is left. */
void task_cleanup(void);

#endif
