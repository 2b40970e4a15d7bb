// SPDX-License-Identifier: MIT
/*
 * node: inode numbers, parent links and lookup counts. One mutex guards
 * the table; a node's name, kind and parent never change.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "store.h"

_Static_assert(NK_WAIT < 16, "enum nkind fits struct node's kind");
_Static_assert(STORE_TYPES < 8, "enum store_values fits struct node's group");

static struct node *node_new(const char *name, enum nkind kind, int group,
			     const char *value)
{
	size_t len = strlen(name) + 1, vlen = 0;
	struct node *n;

	if (value && strcmp(value, name))
		vlen = strlen(value) + 1;
	n = calloc(1, offsetof(struct node, name) + len + vlen);
	if (!n)
		return NULL;
	memcpy(n->name, name, len);
	if (vlen) {
		memcpy(n->name + len, value, vlen);
		n->has_value = 1;
	}
	n->kind = kind;
	n->group = (unsigned)group;
	return n;
}

/* What n takes: its block and malloc's word (the buckets are counted as
 * they grow). */
static size_t node_cost(const struct node *n)
{
	size_t len = strlen(n->name) + 1;

	if (n->has_value)
		len += strlen(n->name + len) + 1;
	return (offsetof(struct node, name) + len + sizeof(size_t) + 15) &
		~(size_t)15;
}

/* FNV-1a of the parent's address and the name. */
static uint32_t key_hash(const struct node *parent, const char *name)
{
	uint64_t h = 0xcbf29ce484222325u, p = (uint64_t)(uintptr_t)parent;
	int i;

	for (i = 0; i < 8; i++, p >>= 8)
		h = (h ^ (p & 0xff)) * 0x100000001b3u;
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3u;
	return (uint32_t)(h ^ (h >> 32));
}

static struct node **bucket_of(struct node_table *t, uint32_t hash)
{
	return &t->buckets[hash & (t->nbuckets - 1)];
}

/*
 * Twice the buckets once there are more than two nodes a bucket: chains
 * of two on average, and half the buckets' memory of one node a bucket.
 */
static void grow_locked(struct node_table *t)
{
	size_t nb = t->nbuckets ? t->nbuckets * 2 : 1024, i;
	struct node **b = calloc(nb, sizeof(*b)), *n;

	if (!b)
		return; /* longer chains, still right */
	for (i = 0; i < t->nbuckets; i++) {
		while ((n = t->buckets[i])) {
			t->buckets[i] = n->hnext;
			n->hnext = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(t->buckets);
	/* the bucket array is the table's too */
	__atomic_store_n(&t->bytes, t->bytes + (nb - t->nbuckets) * sizeof(*b),
			 __ATOMIC_RELAXED);
	t->buckets = b;
	t->nbuckets = nb;
}

static void unlink_locked(struct node_table *t, struct node *n)
{
	struct node **pp = bucket_of(t, n->hash);

	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
}

/* Count n's bytes in or out (sign): the table's, its listing's. */
static void account_locked(struct node_table *t, struct node *n, int sign)
{
	size_t c = node_cost(n);
	struct node *l = n;

	while (l && l->kind != NK_LISTING)
		l = l->parent;
	if (sign > 0) {
		__atomic_store_n(&t->bytes, t->bytes + c, __ATOMIC_RELAXED);
		if (l)
			t->lnodes[l->lidx].sub += c;
	} else {
		__atomic_store_n(&t->bytes, t->bytes - c, __ATOMIC_RELAXED);
		if (l && l != n)
			t->lnodes[l->lidx].sub -= c;
	}
}

/* Add n to the listing nodes, or take it out. 0 or -ENOMEM. */
static int lnodes_add_locked(struct node_table *t, struct node *n)
{
	if (t->nlnodes == t->lcap) {
		size_t cap = t->lcap ? t->lcap * 2 : 64;
		struct node_lentry *v = realloc(t->lnodes, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->lnodes = v;
		t->lcap = cap;
	}
	n->lidx = (uint32_t)t->nlnodes;
	t->lnodes[t->nlnodes++] = (struct node_lentry){ n, 0 };
	return 0;
}

static void lnodes_del_locked(struct node_table *t, struct node *n)
{
	struct node_lentry last = t->lnodes[--t->nlnodes];

	t->lnodes[n->lidx] = last;
	last.n->lidx = n->lidx;
}

static void node_free(struct node_table *t, struct node *n)
{
	if (n->cache && t->cache_free)
		t->cache_free(n->cache);
	free(n);
}

int node_table_init(struct node_table *t, void (*cache_free)(void *))
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->cache_free = cache_free;
	t->root = node_new("/", NK_ROOT, 0, NULL);
	if (!t->root)
		return -ENOMEM;
	t->root->nlookup = 1;
	t->count = 1;
	grow_locked(t);
	return t->buckets ? 0 : -ENOMEM;
}

void node_table_release(struct node_table *t)
{
	struct node *n;
	size_t i;

	for (i = 0; i < t->nbuckets; i++) {
		while ((n = t->buckets[i])) {
			t->buckets[i] = n->hnext;
			node_free(t, n);
		}
	}
	free(t->buckets);
	t->buckets = NULL;
	t->nbuckets = 0;
	if (t->root)
		node_free(t, t->root);
	free(t->lnodes);
	t->lnodes = NULL;
	t->nlnodes = t->lcap = 0;
	pthread_mutex_destroy(&t->lock);
	t->root = NULL;
}

struct node *node_get(struct node_table *t, uint64_t ino)
{
	return ino == NODE_ROOT_INO ? t->root : (struct node *)(uintptr_t)ino;
}

uint64_t node_ino(const struct node_table *t, const struct node *n)
{
	return n == t->root ? NODE_ROOT_INO : (uint64_t)(uintptr_t)n;
}

const char *node_value(const struct node *n)
{
	return n->has_value ? n->name + strlen(n->name) + 1 : n->name;
}

struct node *node_child(struct node_table *t, struct node *parent,
			const char *name, enum nkind kind, int group,
			const char *value)
{
	uint32_t hash = key_hash(parent, name);
	void (*grew)(void *) = NULL;
	void *grew_arg = NULL;
	struct node *n;

	pthread_mutex_lock(&t->lock);
	for (n = *bucket_of(t, hash); n; n = n->hnext)
		if (n->hash == hash && n->parent == parent &&
		    !strcmp(n->name, name))
			break;
	if (!n) {
		n = node_new(name, kind, group, value);
		if (!n)
			goto out;
		n->parent = parent;
		if (kind == NK_LISTING && lnodes_add_locked(t, n)) {
			node_free(t, n);
			n = NULL;
			goto out;
		}
		n->hash = hash;
		if (t->count > 2 * t->nbuckets)
			grow_locked(t);
		n->hnext = *bucket_of(t, hash);
		*bucket_of(t, hash) = n;
		parent->nkids++;
		t->count++;
		account_locked(t, n, 1);
		if (t->bytes >= t->mark + NODE_GROW_STEP) {
			t->mark = t->bytes;
			grew = t->grew;
			grew_arg = t->grew_arg;
		}
	}
	n->nlookup++;
out:
	pthread_mutex_unlock(&t->lock);
	if (grew)
		grew(grew_arg);
	return n;
}

size_t node_count(struct node_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}

size_t node_sub(struct node_table *t, const struct node *n)
{
	size_t sub;

	pthread_mutex_lock(&t->lock);
	sub = t->lnodes[n->lidx].sub;
	pthread_mutex_unlock(&t->lock);
	return sub;
}

void node_hold(struct node_table *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	n->nlookup++;
	pthread_mutex_unlock(&t->lock);
}

long node_collect(struct node_table *t,
		  bool (*match)(const struct node *n, void *arg), void *arg,
		  struct node ***out)
{
	struct node *n, **v;
	long count = 0;
	size_t b;

	pthread_mutex_lock(&t->lock);
	v = malloc((t->count + 1) * sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	if (match(t->root, arg))
		v[count++] = t->root;
	for (b = 0; b < t->nbuckets; b++)
		for (n = t->buckets[b]; n; n = n->hnext)
			if (match(n, arg))
				v[count++] = n;
	for (long i = 0; i < count; i++)
		v[i]->nlookup++;
	pthread_mutex_unlock(&t->lock);
	*out = v;
	return count;
}

void node_forget(struct node_table *t, struct node *n, uint64_t count)
{
	pthread_mutex_lock(&t->lock);
	n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
	while (n != t->root && n->nlookup == 0 && n->nkids == 0) {
		struct node *parent = n->parent;

		unlink_locked(t, n);
		parent->nkids--;
		t->count--;
		account_locked(t, n, -1);
		if (n->kind == NK_LISTING)
			lnodes_del_locked(t, n);
		node_free(t, n);
		n = parent;
	}
	if (t->bytes < t->mark)
		t->mark = t->bytes;
	pthread_mutex_unlock(&t->lock);
}

size_t node_bytes(struct node_table *t)
{
	return __atomic_load_n(&t->bytes, __ATOMIC_RELAXED);
}

void node_on_grow(struct node_table *t, void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&t->lock);
	t->grew = fn;
	t->grew_arg = arg;
	t->mark = t->bytes;
	pthread_mutex_unlock(&t->lock);
}

long node_listings(struct node_table *t, struct node ***out, size_t **subs)
{
	struct node **v;
	size_t *s, i;

	pthread_mutex_lock(&t->lock);
	v = malloc((t->nlnodes + 1) * sizeof(*v));
	s = malloc((t->nlnodes + 1) * sizeof(*s));
	if (!v || !s) {
		pthread_mutex_unlock(&t->lock);
		free(v);
		free(s);
		return -ENOMEM;
	}
	for (i = 0; i < t->nlnodes; i++) {
		v[i] = t->lnodes[i].n;
		v[i]->nlookup++;
		s[i] = t->lnodes[i].sub;
	}
	pthread_mutex_unlock(&t->lock);
	*out = v;
	*subs = s;
	return (long)i;
}

const struct node *node_task(const struct node *n)
{
	while (n && n->kind != NK_TASK)
		n = n->parent;
	return n;
}

static int relpath_add(const struct node *n, struct buf *out)
{
	int res;

	if (!n || n->kind == NK_TASK)
		return 0;
	res = relpath_add(n->parent, out);
	if (!res && out->len)
		res = buf_addch(out, '/');
	return res ? res : buf_addstr(out, n->name);
}

int node_relpath(const struct node *n, struct buf *out)
{
	return relpath_add(n, out);
}

void *node_swap_cache(struct node_table *t, struct node *n, void *c)
{
	void *old;

	pthread_mutex_lock(&t->lock);
	old = n->cache;
	n->cache = c;
	pthread_mutex_unlock(&t->lock);
	return old;
}

void *node_get_cache(struct node_table *t, struct node *n, void *(*ref)(void *))
{
	void *c;

	pthread_mutex_lock(&t->lock);
	c = n->cache ? ref(n->cache) : NULL;
	pthread_mutex_unlock(&t->lock);
	return c;
}
