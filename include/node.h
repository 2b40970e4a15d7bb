/* SPDX-License-Identifier: MIT */
/*
 * node: the inode table. A node is one path the kernel knows: its number,
 * its parent, its name, what kind of thing it is, and the kernel's lookup
 * count. A node lives while the kernel refers to it or it has children.
 * No FUSE here; fs_ops.c gives the numbers to the kernel.
 */
#ifndef MIXPEEKFS_NODE_H
#define MIXPEEKFS_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define NODE_ROOT_INO 1

enum nkind {
	NK_ROOT,
	NK_README,
	NK_GROUP,   /* by-status/, by-type/ */
	NK_LISTING, /* tasks/, by-status/S/, by-type/T/ */
	NK_TASK,    /* <listing>/<task_id>/ */
	NK_FIELD,   /* a file or folder inside a task */
	NK_TASKJSON,
	NK_META,     /* .mixpeekfs/ */
	NK_METAFILE, /* .mixpeekfs/stats, config, version */
	NK_REFRESH,  /* <folder>/.refresh: looking it up refreshes */
	NK_JSONL,    /* <listing>/.jsonl: its tasks, one JSON a line */
	NK_TSV,	     /* <listing>/.tsv: its tasks, a table */
	NK_WAIT,     /* <task>/.wait: reading it waits for the task to end */
};

/*
 * One per path the kernel knows, so kept small: a task listed with
 * readdirplus is one node, about 110 bytes with its name.
 */
struct node {
	uint64_t nlookup; /* protected by table->lock */
	struct node *parent;
	struct node *hnext; /* protected by table->lock: the hash chain */
	void *cache;	    /* protected by table->lock; see node_swap */
	uint32_t hash;	    /* of parent and name */
	uint32_t lidx;	    /* NK_LISTING: its place in table->lnodes */
	unsigned nkids;	    /* protected by table->lock */
	/*
	 * One byte for these, and the name right after it (not at sizeof,
	 * which pads): a table holds two nodes or more a task, and a
	 * task.json node fits malloc's 64-byte block so.
	 */
	enum nkind kind : 4;
	unsigned group : 3;	/* NK_GROUP, NK_LISTING: enum store_values */
	unsigned has_value : 1; /* a raw value follows the name */
	/* as shown, escaped; then the raw status, type or task id it stands
	 * for, if that differs (node_value) */
	char name[];
};

/* An NK_LISTING node, and the bytes of the nodes it is the nearest
 * listing above of, itself included. */
struct node_lentry {
	struct node *n;
	size_t sub;
};

struct node_table {
	pthread_mutex_t lock;
	struct node **buckets; /* protected by lock: all but the root, by
				* parent and name; nbuckets a power of 2 */
	size_t nbuckets;
	size_t count;		    /* protected by lock */
	size_t bytes;		    /* written under lock; read atomically */
	struct node_lentry *lnodes; /* protected by lock: the NK_LISTING nodes */
	size_t nlnodes, lcap;	    /* protected by lock */
	size_t mark;		 /* protected by lock: bytes at the last grew */
	void (*grew)(void *arg); /* protected by lock */
	void *grew_arg;
	void (*cache_free)(void *);
	struct node *root;
};

/* How far the nodes' bytes grow between two calls of grew. */
#define NODE_GROW_STEP ((size_t)1 << 20)

/* Set up with a root node; cache_free releases node->cache values. */
int node_table_init(struct node_table *t, void (*cache_free)(void *));
void node_table_release(struct node_table *t);

/*
 * A node's number is its address (the root's is NODE_ROOT_INO), as in
 * libfuse's passthrough_ll: the kernel only names nodes it holds a lookup
 * on, and those stay allocated.
 */
struct node *node_get(struct node_table *t, uint64_t ino);
uint64_t node_ino(const struct node_table *t, const struct node *n);

/* The raw value (status, type or task id) a node stands for. */
const char *node_value(const struct node *n);

/*
 * The child of parent called name, created with kind, group and value
 * (copied, unless equal to name) if new; its lookup count goes up by one.
 * NULL on ENOMEM.
 */
struct node *node_child(struct node_table *t, struct node *parent,
			const char *name, enum nkind kind, int group,
			const char *value);

/* How many nodes there are. */
size_t node_count(struct node_table *t);

/*
 * What the nodes take in memory (their blocks, names, values and their
 * share of the hash table), in bytes. Never blocks: an atomic read.
 */
size_t node_bytes(struct node_table *t);

/*
 * fn(arg) runs, without the table's lock held, each time the nodes'
 * bytes grow by another NODE_GROW_STEP since the last time (NULL: none).
 * It may take locks that come before the table's in the lock order.
 */
void node_on_grow(struct node_table *t, void (*fn)(void *arg), void *arg);

/*
 * Every NK_LISTING node, each with a reference (node_hold), in a malloc'd
 * array in *out, and in *subs (malloc'd) their sub bytes at the time.
 * The count, or -ENOMEM.
 */
long node_listings(struct node_table *t, struct node ***out, size_t **subs);

/* NK_LISTING n's sub bytes (struct node_lentry). */
size_t node_sub(struct node_table *t, const struct node *n);

/* One more reference on n, dropped again with node_forget(t, n, 1). */
void node_hold(struct node_table *t, struct node *n);

/*
 * Every node for which match(n, arg) holds, each with a reference
 * (node_hold): a malloc'd array in *out, its length returned, or -ENOMEM.
 * match runs under the table's lock.
 */
long node_collect(struct node_table *t,
		  bool (*match)(const struct node *n, void *arg), void *arg,
		  struct node ***out);

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
