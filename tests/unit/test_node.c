// SPDX-License-Identifier: MIT
/*
 * The inode table: one node per parent and name, numbers that round
 * trip, lookup counts (a node goes with its last reference, its parent
 * stays while it has children), the task a node is in and its path
 * there, caches on nodes, collecting nodes, and threads sharing a table.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "node.h"

/* A refcounted cache value: frees are counted, so leaks and doubles show. */
struct cval {
	unsigned refs;
	int id;
};

static unsigned cval_frees, cval_refs_taken;

static void *cval_ref(void *p)
{
	struct cval *c = p;

	c->refs++;
	cval_refs_taken++;
	return c;
}

static void cval_unref(void *p)
{
	struct cval *c = p;

	if (c && --c->refs == 0) {
		cval_frees++;
		free(c);
	}
}

static struct cval *cval_new(int id)
{
	struct cval *c = calloc(1, sizeof(*c));

	if (c) {
		c->refs = 1;
		c->id = id;
	}
	return c;
}

static void test_init(void)
{
	struct node_table t;

	CHECK(node_table_init(&t, NULL) == 0);
	CHECK(t.root != NULL);
	CHECK(t.root->kind == NK_ROOT);
	CHECK(t.root->parent == NULL);
	CHECK(t.root->nlookup == 1 && t.root->nkids == 0);
	CHECK_STR(t.root->name, "/");
	CHECK_STR(node_value(t.root), "/");
	CHECK(node_count(&t) == 1);
	CHECK(node_get(&t, NODE_ROOT_INO) == t.root);
	CHECK(node_ino(&t, t.root) == NODE_ROOT_INO);
	/* the root is no task and in none */
	CHECK(node_task(t.root) == NULL);
	/* forgetting the root never frees it */
	node_forget(&t, t.root, 5);
	CHECK(node_count(&t) == 1);
	CHECK(node_get(&t, NODE_ROOT_INO) == t.root);
	node_table_release(&t);
	CHECK(t.root == NULL);
}

static void test_child(void)
{
	struct node_table t;
	struct node *a, *a2, *b, *ab, *abc, *long1, *long2;
	char longname[301];

	CHECK(node_table_init(&t, NULL) == 0);
	a = node_child(&t, t.root, "a", NK_LISTING, 0, NULL);
	CHECK(a != NULL);
	CHECK(a->parent == t.root && a->kind == NK_LISTING);
	CHECK(a->nlookup == 1 && t.root->nkids == 1);
	CHECK(node_count(&t) == 2);
	/* the same parent and name: the same node, one more lookup */
	a2 = node_child(&t, t.root, "a", NK_LISTING, 0, NULL);
	CHECK(a2 == a);
	CHECK(a->nlookup == 2 && node_count(&t) == 2 && t.root->nkids == 1);
	/* another kind asked for: still the node made first, unchanged */
	a2 = node_child(&t, t.root, "a", NK_README, 3, "other");
	CHECK(a2 == a);
	CHECK(a->kind == NK_LISTING && a->group == 0 && !a->has_value);
	CHECK(a->nlookup == 3);
	/* names that share a prefix are different nodes */
	ab = node_child(&t, t.root, "ab", NK_GROUP, 1, NULL);
	abc = node_child(&t, t.root, "abc", NK_GROUP, 0, NULL);
	CHECK(ab && abc && ab != a && abc != ab && abc != a);
	CHECK(ab && ab->group == 1);
	/* the same name under another parent is another node */
	b = node_child(&t, a, "a", NK_TASK, 0, NULL);
	CHECK(b && b != a && b->parent == a && a->nkids == 1);
	CHECK(node_count(&t) == 5);
	/* a name too long for node_child's stack key */
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	long1 = node_child(&t, b, longname, NK_FIELD, 0, NULL);
	long2 = node_child(&t, b, longname, NK_FIELD, 0, NULL);
	CHECK(long1 && long1 == long2 && long1->nlookup == 2);
	CHECK(long1 && !strcmp(long1->name, longname));
	longname[299] = 'y'; /* differs in the last byte */
	long2 = node_child(&t, b, longname, NK_FIELD, 0, NULL);
	CHECK(long2 && long2 != long1);
	CHECK(node_count(&t) == 7);
	/* the empty name is a name like any other */
	CHECK(node_child(&t, b, "", NK_FIELD, 0, NULL) ==
	      node_child(&t, b, "", NK_FIELD, 0, NULL));
	CHECK(node_count(&t) == 8);
	node_table_release(&t);
}

static void test_ino_value(void)
{
	struct node_table t;
	struct node *n, *v, *same;
	char raw[] = "by value";
	uint64_t ino;

	CHECK(node_table_init(&t, NULL) == 0);
	n = node_child(&t, t.root, "tasks", NK_LISTING, 0, NULL);
	ino = node_ino(&t, n);
	CHECK(ino != NODE_ROOT_INO && ino != 0);
	CHECK(node_get(&t, ino) == n);
	/* every node's number round trips, and the numbers differ */
	v = node_child(&t, n, "t%2F1", NK_TASK, 0, "t/1");
	CHECK(node_get(&t, node_ino(&t, v)) == v);
	CHECK(node_ino(&t, v) != ino);
	/* a value that differs from the name is copied */
	same = node_child(&t, t.root, "s", NK_LISTING, 0, raw);
	raw[0] = 'X';
	CHECK_STR(node_value(same), "by value");
	CHECK_STR(node_value(v), "t/1");
	CHECK_STR(v->name, "t%2F1");
	/* one equal to the name is not kept twice */
	same = node_child(&t, n, "FAILED", NK_LISTING, 0, "FAILED");
	CHECK(!same->has_value);
	CHECK_STR(node_value(same), "FAILED");
	/* no value: the name */
	CHECK_STR(node_value(n), "tasks");
	node_table_release(&t);
}

static void test_forget(void)
{
	struct node_table t;
	struct node *a, *b, *c, *d;

	CHECK(node_table_init(&t, NULL) == 0);
	a = node_child(&t, t.root, "a", NK_LISTING, 0, NULL);
	node_child(&t, t.root, "a", NK_LISTING, 0, NULL);
	CHECK(a->nlookup == 2);
	node_forget(&t, a, 1);
	CHECK(node_count(&t) == 2 && a->nlookup == 1);
	/* the last lookup gone: freed (ASan sees a use after this) */
	node_forget(&t, a, 1);
	CHECK(node_count(&t) == 1 && t.root->nkids == 0);
	/* forgetting more than there are lookups frees it too */
	a = node_child(&t, t.root, "a", NK_LISTING, 0, NULL);
	node_forget(&t, a, 1000);
	CHECK(node_count(&t) == 1 && t.root->nkids == 0);

	/* a/b/c: a parent stays while it has children */
	a = node_child(&t, t.root, "a", NK_LISTING, 0, NULL);
	b = node_child(&t, a, "b", NK_TASK, 0, NULL);
	c = node_child(&t, b, "c", NK_FIELD, 0, NULL);
	d = node_child(&t, b, "d", NK_FIELD, 0, NULL);
	CHECK(node_count(&t) == 5 && b->nkids == 2);
	node_forget(&t, a, 1);
	node_forget(&t, b, 1);
	CHECK(node_count(&t) == 5);
	CHECK(a->nlookup == 0 && b->nlookup == 0);
	CHECK(node_get(&t, node_ino(&t, a)) == a);
	/* one child gone: b still has d */
	node_forget(&t, c, 1);
	CHECK(node_count(&t) == 4 && b->nkids == 1);
	/* a node looked up again after its lookups went is the same one */
	CHECK(node_child(&t, t.root, "a", NK_LISTING, 0, NULL) == a);
	CHECK(a->nlookup == 1);
	/* the last child gone: b goes, a stays (it is referenced) */
	node_forget(&t, d, 1);
	CHECK(node_count(&t) == 2 && a->nkids == 0);
	/* forgetting no lookups changes nothing */
	node_forget(&t, a, 0);
	CHECK(node_count(&t) == 2 && a->nlookup == 1);
	node_forget(&t, a, 1);
	CHECK(node_count(&t) == 1 && t.root->nkids == 0);
	CHECK(t.root->nlookup == 1); /* untouched by its children */
	node_table_release(&t);
}

static void test_hold(void)
{
	struct node_table t;
	struct node *a, *b;

	CHECK(node_table_init(&t, NULL) == 0);
	a = node_child(&t, t.root, "a", NK_LISTING, 0, NULL);
	b = node_child(&t, a, "b", NK_TASK, 0, NULL);
	node_hold(&t, b);
	CHECK(b->nlookup == 2);
	/* the kernel forgets its lookup: the hold keeps b, and so a */
	node_forget(&t, b, 1);
	node_forget(&t, a, 1);
	CHECK(node_count(&t) == 3 && b->nlookup == 1);
	/* the holder lets go: both go */
	node_forget(&t, b, 1);
	CHECK(node_count(&t) == 1);
	/* a hold on the root is harmless */
	node_hold(&t, t.root);
	CHECK(t.root->nlookup == 2);
	node_forget(&t, t.root, 1);
	CHECK(node_count(&t) == 1);
	node_table_release(&t);
}

static void test_task_relpath(void)
{
	struct node_table t;
	struct node *ls, *task, *f1, *f2, *f3, *tj, *n;
	struct buf b = BUF_INIT(1 << 20);
	char want[4096];
	size_t i, len = 0;

	CHECK(node_table_init(&t, NULL) == 0);
	ls = node_child(&t, t.root, "tasks", NK_LISTING, 0, NULL);
	task = node_child(&t, ls, "tk_1", NK_TASK, 0, NULL);
	f1 = node_child(&t, task, "additional_data", NK_FIELD, 0, NULL);
	f2 = node_child(&t, f1, "a%2Fb", NK_FIELD, 0, NULL);
	f3 = node_child(&t, f2, "0", NK_FIELD, 0, NULL);
	tj = node_child(&t, task, "task.json", NK_TASKJSON, 0, NULL);
	CHECK(node_task(ls) == NULL);
	CHECK(node_task(task) == task);
	CHECK(node_task(f1) == task && node_task(f3) == task);
	CHECK(node_task(tj) == task);
	/* the task itself: nothing below it */
	CHECK(node_relpath(task, &b) == 0 && b.len == 0);
	CHECK(node_relpath(f1, &b) == 0);
	CHECK_STR(buf_str(&b), "additional_data");
	buf_release(&b);
	/* names are joined as they are, escapes kept */
	CHECK(node_relpath(f3, &b) == 0);
	CHECK_STR(buf_str(&b), "additional_data/a%2Fb/0");
	buf_release(&b);
	CHECK(node_relpath(tj, &b) == 0);
	CHECK_STR(buf_str(&b), "task.json");
	buf_release(&b);

	/* a task below a task's field (ns never makes one; the table does
	 * not know): the nearest task counts */
	n = node_child(&t, f1, "inner", NK_TASK, 0, NULL);
	n = node_child(&t, n, "leaf", NK_FIELD, 0, NULL);
	CHECK(node_task(n) == n->parent);
	CHECK(node_relpath(n, &b) == 0);
	CHECK_STR(buf_str(&b), "leaf");
	buf_release(&b);

	/* a deep chain: 500 levels below the task */
	n = task;
	for (i = 0; i < 500; i++) {
		char name[16];

		snprintf(name, sizeof(name), "k%zu", i);
		n = node_child(&t, n, name, NK_FIELD, 0, NULL);
		if (!n)
			break;
		len += (size_t)snprintf(want + len, sizeof(want) - len, "%s%s",
					i ? "/" : "", name);
	}
	CHECK(n && node_task(n) == task);
	CHECK(n && node_relpath(n, &b) == 0);
	CHECK_STR(buf_str(&b), want);
	CHECK(node_count(&t) == 9 + 500);
	/* the chain goes from the leaf up once every lookup is gone */
	while (n && n != task) {
		struct node *up = n->parent;

		node_forget(&t, n, 1);
		n = up;
	}
	CHECK(node_count(&t) == 9);
	/* a relpath too long for the buffer's cap fails cleanly */
	buf_release(&b);
	buf_init(&b, 8);
	CHECK(node_relpath(f3, &b) != 0);
	buf_release(&b);
	node_table_release(&t);
}

static void test_cache(void)
{
	struct node_table t;
	struct node *a, *b;
	struct cval *c1 = cval_new(1), *c2 = cval_new(2), *got;

	cval_frees = cval_refs_taken = 0;
	CHECK(node_table_init(&t, cval_unref) == 0);
	a = node_child(&t, t.root, "a", NK_LISTING, 0, NULL);
	b = node_child(&t, t.root, "b", NK_LISTING, 0, NULL);
	/* no cache: ref is not called */
	CHECK(node_get_cache(&t, a, cval_ref) == NULL);
	CHECK(cval_refs_taken == 0);
	CHECK(node_swap_cache(&t, a, c1) == NULL);
	got = node_get_cache(&t, a, cval_ref);
	CHECK(got == c1 && c1->refs == 2 && cval_refs_taken == 1);
	cval_unref(got);
	/* a swap hands the old value back, untouched */
	CHECK(node_swap_cache(&t, a, c2) == c1);
	CHECK(c1->refs == 1 && cval_frees == 0);
	cval_unref(c1);
	CHECK(cval_frees == 1);
	got = node_get_cache(&t, a, cval_ref);
	CHECK(got == c2 && got->id == 2);
	cval_unref(got);
	/* swapping in NULL empties it */
	CHECK(node_swap_cache(&t, a, NULL) == c2);
	CHECK(node_get_cache(&t, a, cval_ref) == NULL);
	CHECK(node_swap_cache(&t, a, c2) == NULL);
	/* a node freed frees its cache with cache_free */
	node_forget(&t, a, 1);
	CHECK(cval_frees == 2);
	/* ... and so does releasing the table, the root's too */
	CHECK(node_swap_cache(&t, b, cval_new(3)) == NULL);
	CHECK(node_swap_cache(&t, t.root, cval_new(4)) == NULL);
	node_table_release(&t);
	CHECK(cval_frees == 4);
}

static bool kind_is(const struct node *n, void *arg)
{
	return n->kind == *(enum nkind *)arg;
}

static bool any(const struct node *n, void *arg)
{
	(void)n;
	(void)arg;
	return true;
}

static void test_collect(void)
{
	struct node_table t;
	struct node *ls, *t1, *t2, **v = NULL;
	enum nkind k = NK_TASK;
	bool saw1 = false, saw2 = false;
	long n, i;

	CHECK(node_table_init(&t, NULL) == 0);
	ls = node_child(&t, t.root, "tasks", NK_LISTING, 0, NULL);
	t1 = node_child(&t, ls, "t1", NK_TASK, 0, NULL);
	t2 = node_child(&t, ls, "t2", NK_TASK, 0, NULL);
	node_child(&t, t1, "status", NK_FIELD, 0, NULL);
	n = node_collect(&t, kind_is, &k, &v);
	CHECK(n == 2);
	for (i = 0; i < n; i++) {
		saw1 |= v[i] == t1;
		saw2 |= v[i] == t2;
	}
	CHECK(saw1 && saw2);
	/* each with a reference */
	CHECK(t1->nlookup == 2 && t2->nlookup == 2);
	node_forget(&t, t2, 1); /* the kernel's */
	CHECK(node_count(&t) == 5);
	for (i = 0; i < n; i++)
		node_forget(&t, v[i], 1);
	free(v);
	CHECK(node_count(&t) == 4 && t1->nlookup == 1);
	/* the root is a node like the others */
	k = NK_ROOT;
	n = node_collect(&t, kind_is, &k, &v);
	CHECK(n == 1 && v[0] == t.root && t.root->nlookup == 2);
	node_forget(&t, v[0], 1);
	free(v);
	/* none: an empty array, still to free */
	k = NK_META;
	v = NULL;
	n = node_collect(&t, kind_is, &k, &v);
	CHECK(n == 0 && v != NULL);
	free(v);
	n = node_collect(&t, any, NULL, &v);
	CHECK(n == 4);
	for (i = 0; i < n; i++)
		node_forget(&t, v[i], 1);
	free(v);
	CHECK(node_count(&t) == 4);
	node_table_release(&t);
}

static unsigned grew_calls;

static void on_grew(void *arg)
{
	(void)arg;
	grew_calls++;
}

/*
 * What the nodes take: counted when made, given back when freed, and
 * charged to the nearest listing folder at or above each node (a query
 * folder inside a listing folder has its own); the listing folders are
 * found without a walk over every node; growth is reported step by step.
 */
static void test_bytes(void)
{
	struct node_table t;
	struct node *ls, *tk, *f, *q, *qt, **v;
	size_t one, *subs, total, base;
	unsigned calls;
	long n, i;

	CHECK(node_table_init(&t, NULL) == 0);
	/* the bucket array, and nothing else */
	base = node_bytes(&t);
	CHECK(base == t.nbuckets * sizeof(struct node *));
	ls = node_child(&t, t.root, "tasks", NK_LISTING, 0, NULL);
	one = node_bytes(&t) - base;
	CHECK(one > sizeof(struct node));
	CHECK(node_sub(&t, ls) == one);
	tk = node_child(&t, ls, "t1", NK_TASK, 0, NULL);
	f = node_child(&t, tk, "status", NK_FIELD, 0, NULL);
	/* a value unlike the name costs its bytes */
	q = node_child(&t, ls, "status=FAILED", NK_LISTING, 0, "FAILED");
	qt = node_child(&t, q, "t1", NK_TASK, 0, NULL);
	total = node_bytes(&t) - base;
	CHECK(node_sub(&t, ls) + node_sub(&t, q) == total);
	CHECK(node_sub(&t, q) > 0 && node_sub(&t, ls) > node_sub(&t, q));
	/* the same node again costs nothing */
	CHECK(node_child(&t, tk, "status", NK_FIELD, 0, NULL) == f);
	CHECK(node_bytes(&t) == base + total);
	node_forget(&t, f, 1);
	CHECK(node_bytes(&t) == base + total);
	n = node_listings(&t, &v, &subs);
	CHECK(n == 2);
	for (i = 0; i < n; i++) {
		CHECK(v[i] == ls || v[i] == q);
		CHECK(subs[i] == node_sub(&t, v[i]));
		CHECK(v[i]->nlookup == 2); /* with a reference */
		node_forget(&t, v[i], 1);
	}
	free(v);
	free(subs);
	/* freed: given back, to the listing too */
	node_forget(&t, f, 1);
	CHECK(node_bytes(&t) < base + total &&
	      node_sub(&t, ls) < total - node_sub(&t, q));
	node_forget(&t, qt, 1);
	node_forget(&t, q, 1);
	node_forget(&t, tk, 1);
	CHECK(node_bytes(&t) == base + one && node_sub(&t, ls) == one);
	node_forget(&t, ls, 1);
	CHECK(node_bytes(&t) == base && node_count(&t) == 1);
	n = node_listings(&t, &v, &subs);
	CHECK(n == 0);
	free(v);
	free(subs);

	/* growth: one call per NODE_GROW_STEP, none after the hook is off */
	node_on_grow(&t, on_grew, NULL);
	ls = node_child(&t, t.root, "tasks", NK_LISTING, 0, NULL);
	for (i = 0; node_bytes(&t) < base + 3 * NODE_GROW_STEP + one; i++) {
		char name[32];

		snprintf(name, sizeof(name), "t%ld", i);
		node_child(&t, ls, name, NK_TASK, 0, NULL);
	}
	/* 3 steps, one more if a bucket array jump crossed a mark */
	CHECK(grew_calls >= 3 && grew_calls <= 4);
	calls = grew_calls;
	/* the buckets grew with the nodes, and count */
	CHECK(node_sub(&t, ls) + t.nbuckets * sizeof(struct node *) ==
	      node_bytes(&t));
	node_on_grow(&t, NULL, NULL);
	for (n = i + 20000; i < n; i++) {
		char name[32];

		snprintf(name, sizeof(name), "t%ld", i);
		node_child(&t, ls, name, NK_TASK, 0, NULL);
	}
	CHECK(grew_calls == calls);
	node_table_release(&t);
}

/* Threads looking up and forgetting the same names. */
static struct node_table shared;

static void *churn(void *arg)
{
	static const char *const names[] = { "a", "b", "c", "d" };
	unsigned seed = (unsigned)(uintptr_t)arg;
	int i;

	for (i = 0; i < 20000; i++) {
		const char *name = names[rand_r(&seed) % 4];
		struct node *p = node_child(&shared, shared.root, name,
					    NK_LISTING, 0, NULL);
		struct node *c = p ?
			node_child(&shared, p, name, NK_TASK, 0, NULL) :
			NULL;

		if (c)
			node_forget(&shared, c, 1);
		if (p)
			node_forget(&shared, p, 1);
	}
	return NULL;
}

static void test_threads(void)
{
	pthread_t th[4];
	uintptr_t i;

	CHECK(node_table_init(&shared, NULL) == 0);
	for (i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, churn, (void *)(i + 1));
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK(node_count(&shared) == 1 && shared.root->nkids == 0);
	node_table_release(&shared);
}

int main(void)
{
	test_init();
	test_child();
	test_ino_value();
	test_forget();
	test_hold();
	test_task_relpath();
	test_cache();
	test_collect();
	test_bytes();
	test_threads();
	return check_done();
}
