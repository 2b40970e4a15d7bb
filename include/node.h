/* SPDX-License-Identifier: MIT */
/*
 * node: the inode table. A node is one path the kernel knows: its number,
 * its parent, its name, what kind of thing it is, and the kernel's lookup
 * count. A node lives while the kernel refers to it or it has children.
 * No FUSE here; fs.c gives the numbers to the kernel.
 */
#ifndef MIXPEEKFS_NODE_H
#define MIXPEEKFS_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#include "buf.h"

#define NODE_ROOT_INO 1

enum nkind {
	NK_ROOT,
	NK_README,
	NK_GROUP,	/* by-status/, by-type/ */
	NK_LISTING,	/* tasks/, by-status/S/, by-type/T/ */
	NK_TASK,	/* <listing>/<task_id>/ */
	NK_FIELD,	/* a file or folder inside a task */
	NK_TASKJSON,
};

struct node {
	uint64_t ino;
	uint64_t nlookup;	/* protected by table->lock */
	unsigned nkids;		/* protected by table->lock */
	struct node *parent;
	struct node *kids;	/* protected by table->lock */
	void *cache;		/* protected by table->lock; see node_swap */
	enum nkind kind;
	int group;		/* NK_GROUP, NK_LISTING: enum store_values */
	char *value;		/* NK_LISTING: status or type; NK_TASK: id */
	UT_hash_handle hh;	/* table->by_ino */
	UT_hash_handle hk;	/* parent->kids */
	char name[];		/* as shown, escaped */
};

struct node_table {
	pthread_mutex_t lock;
	struct node *by_ino;	/* protected by lock */
	uint64_t next_ino;	/* protected by lock */
	size_t count;		/* protected by lock */
	void (*cache_free)(void *);
	struct node *root;
};

/* Set up with a root node; cache_free releases node->cache values. */
int node_table_init(struct node_table *t, void (*cache_free)(void *));
void node_table_release(struct node_table *t);

/* The node numbered ino, or NULL. Valid while the kernel refers to it. */
struct node *node_get(struct node_table *t, uint64_t ino);

/*
 * The child of parent called name, created with kind, group and value
 * (copied) if new; its lookup count goes up by one. NULL on ENOMEM.
 */
struct node *node_child(struct node_table *t, struct node *parent,
			const char *name, enum nkind kind, int group,
			const char *value);

/* Drop count lookups; nodes left unreferenced are freed. */
void node_forget(struct node_table *t, struct node *n, uint64_t count);

/* The NK_TASK node at or above n, or NULL. */
const struct node *node_task(const struct node *n);

/* The names from below the task node down to n, joined by '/'. */
int node_relpath(const struct node *n, struct buf *out);

/*
 * Replace n's cache with c and return the old one (the caller frees it),
 * or with get set, return a reference taken by ref() under the lock.
 */
void *node_swap_cache(struct node_table *t, struct node *n, void *c);
void *node_get_cache(struct node_table *t, struct node *n,
		     void *(*ref)(void *));

#endif
