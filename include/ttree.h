/* SPDX-License-Identifier: MIT */
/*
 * ttree: a task record's parsed tree, shared. Reading one file costs a
 * lookup, a getattr and a read, each of which needs the task's tree; a
 * small cache of the trees built last makes that one parse, not three.
 * Thread-safe; never blocks on HTTP (the record is already here).
 */
#ifndef MIXPEEKFS_TTREE_H
#define MIXPEEKFS_TTREE_H

#include "task.h"
#include "tree.h"

struct ttree {
	unsigned refs;	   /* atomic */
	struct task *task; /* the record it was built from */
	struct tnode *root;
};

/* The tree of t, from the cache or built now, with a reference. */
int ttree_get(struct task *t, struct ttree **out);
void ttree_unref(struct ttree *tt);

/* Drop the cache (at exit). */
void ttree_cleanup(void);

#endif
