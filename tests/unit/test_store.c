// SPDX-License-Identifier: MIT
/*
 * The store against a stand-in for the API: single-flight, stale data
 * after a failed refresh, LRU eviction, 404s remembered, and tasks that
 * leave a listing checked again. No server, no sleeping past a ttl.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "store.h"

/* The stand-in API: one listing's ids, tasks by id, and counters. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const char *ids[8];   /* what a list request returns */
	int list_err;	      /* what it fails with, if not 0 */
	int get_err;	      /* what a GET fails with, if not 0 */
	const char *missing;  /* an id GET answers 404 for */
	unsigned lists, gets; /* requests made */
	bool hold;	      /* a list request waits while set */
	bool listing;	      /* a list request is in progress */
} api = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static struct task *make_task(const char *id)
{
	char json[128];

	snprintf(json, sizeof(json),
		 "{\"task_id\":\"%s\",\"status\":"
		 "\"PENDING\",\"task_type\":\"thumbnail\"}",
		 id);
	return task_new(id, "PENDING", "thumbnail", json, strlen(json));
}

static int fake_list(const struct list_body *q, long limit, api_sink sink,
		     void *ctx)
{
	size_t i;
	int res;

	(void)q;
	(void)limit;
	pthread_mutex_lock(&api.lock);
	api.lists++;
	api.listing = true;
	pthread_cond_broadcast(&api.cond);
	while (api.hold)
		pthread_cond_wait(&api.cond, &api.lock);
	api.listing = false;
	res = api.list_err;
	pthread_mutex_unlock(&api.lock);
	for (i = 0; !res && i < 8 && api.ids[i]; i++) {
		struct task *t = make_task(api.ids[i]);

		res = t ? sink(ctx, t) : -ENOMEM;
		task_unref(t); /* the sink takes its own reference */
	}
	return res;
}

static int fake_get(const char *id, struct task **out)
{
	pthread_mutex_lock(&api.lock);
	api.gets++;
	pthread_mutex_unlock(&api.lock);
	if (api.missing && !strcmp(id, api.missing))
		return -ENOENT;
	if (api.get_err)
		return api.get_err;
	*out = make_task(id);
	return *out ? 0 : -ENOMEM;
}

static const struct store_source fake = { fake_list, fake_get, NULL, NULL };

/* Ids the store said changed, one line each. */
static char changed[1024];

static void on_change(const char *id, void *arg)
{
	(void)arg;
	if (strlen(changed) + strlen(id) + 2 < sizeof(changed)) {
		strcat(changed, id);
		strcat(changed, "\n");
	}
}

/* A fresh store: ttl 60 s, so nothing goes stale by itself. */
static void setup(size_t cache_size)
{
	store_cleanup();
	CHECK(store_init(60, 600, cache_size, &fake) == 0);
	store_on_change(on_change, NULL);
	store_expire_all(); /* ends a backoff an earlier test began */
	memset(api.ids, 0, sizeof(api.ids));
	api.list_err = api.get_err = 0;
	api.missing = NULL;
	api.lists = api.gets = 0;
	changed[0] = '\0';
}

static const struct list_body all = { 0 };

static void *reader(void *arg)
{
	struct listing **l = arg;

	if (store_listing(&all, 0, l))
		*l = NULL;
	return NULL;
}

static void test_single_flight(void)
{
	struct listing *a = NULL, *b = NULL;
	pthread_t ta, tb;

	setup((size_t)1 << 20);
	api.ids[0] = "t1";
	api.ids[1] = "t2";
	api.hold = true;
	pthread_create(&ta, NULL, reader, &a);
	pthread_mutex_lock(&api.lock);
	while (!api.listing)
		pthread_cond_wait(&api.cond, &api.lock);
	pthread_mutex_unlock(&api.lock);
	/* the second reader comes while the first one's fetch is out */
	pthread_create(&tb, NULL, reader, &b);
	usleep(100 * 1000);
	pthread_mutex_lock(&api.lock);
	api.hold = false;
	pthread_cond_broadcast(&api.cond);
	pthread_mutex_unlock(&api.lock);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK(api.lists == 1);
	CHECK(a && b && a == b);
	CHECK(a && a->n == 2 && listing_has(a, "t1") && listing_has(a, "t2"));
	listing_unref(a);
	listing_unref(b);
	/* the tasks came with the listing: no GET for them */
	CHECK(store_task_fresh("t1"));
	CHECK(store_task_peek("t3") == NULL);
}

static void test_stale_on_error(void)
{
	struct listing *l = NULL, *first = NULL;
	struct task *t = NULL;

	setup((size_t)1 << 20);
	/* a listing never fetched returns the error */
	api.list_err = -EIO;
	CHECK(store_listing(&all, 0, &l) == -EIO);
	api.list_err = 0;
	api.ids[0] = "t1";
	CHECK(store_listing(&all, 0, &first) == 0);
	CHECK(api.lists == 2);
	/* a refresh that fails keeps serving the last good listing */
	store_expire(&all, 0);
	api.list_err = -EIO;
	CHECK(store_listing(&all, 0, &l) == 0);
	CHECK(api.lists == 3);
	CHECK(l == first && l->failures == 1);
	listing_unref(l);
	/* ... and trusts it for one more ttl: no request per access */
	CHECK(store_listing(&all, 0, &l) == 0);
	CHECK(api.lists == 3);
	listing_unref(l);
	/* not when the API refused the key */
	store_expire(&all, 0);
	api.list_err = -EACCES;
	CHECK(store_listing(&all, 0, &l) == -EACCES);
	listing_unref(first);

	/* a task: stale served on EIO, not for a forced refresh */
	setup((size_t)1 << 20);
	CHECK(store_task("t1", &t) == 0);
	task_unref(t);
	store_expire_all();
	api.get_err = -EIO;
	CHECK(store_task("t1", &t) == 0 && t && !strcmp(t->id, "t1"));
	task_unref(t);
	CHECK(api.gets == 2);
	CHECK(store_task_refresh("t1", &t) == -EIO);
	t = store_task_peek("t1");
	CHECK(t != NULL); /* the record stays */
	task_unref(t);
}

static void test_lru(void)
{
	static const char *const ids[] = { "t1", "t2", "t3", "t4" };
	struct store_usage u;
	struct task *t;
	size_t one, i;

	/* how much one record takes */
	setup((size_t)1 << 20);
	CHECK(store_task("t0", &t) == 0);
	task_unref(t);
	store_usage(&u);
	one = u.task_bytes;
	CHECK(u.tasks == 1 && one > 0);

	/* room for three and a half */
	setup(one * 7 / 2);
	for (i = 0; i < 3; i++) {
		CHECK(store_task(ids[i], &t) == 0);
		task_unref(t);
	}
	CHECK(store_task("t1", &t) == 0); /* t1 used: t2 is oldest */
	task_unref(t);
	CHECK(api.gets == 3);
	CHECK(store_task("t4", &t) == 0);
	task_unref(t);
	store_usage(&u);
	CHECK(u.tasks == 3 && u.task_bytes <= u.task_cap);
	CHECK(store_task_peek("t2") == NULL);
	CHECK_STR(changed, "t2\n"); /* the kernel's copies go too */
	for (i = 0; i < 4; i++) {
		if (i == 1)
			continue;
		t = store_task_peek(ids[i]);
		CHECK(t != NULL);
		task_unref(t);
	}
}

static void test_missing(void)
{
	struct listing *l;
	struct task *t = NULL;

	setup((size_t)1 << 20);
	api.missing = "gone";
	CHECK(store_task("gone", &t) == -ENOENT);
	CHECK(store_task("gone", &t) == -ENOENT);
	CHECK(api.gets == 1); /* remembered for the ttl */
	/* a forced refresh asks again */
	CHECK(store_task_refresh("gone", &t) == -ENOENT);
	CHECK(api.gets == 2);
	/* SIGHUP forgets */
	store_expire_all();
	CHECK(store_task("gone", &t) == -ENOENT);
	CHECK(api.gets == 3);
	/* a listing that shows the id forgets it, too */
	api.ids[0] = "gone";
	CHECK(store_listing(&all, 0, &l) == 0);
	listing_unref(l);
	api.missing = NULL;
	CHECK(store_task("gone", &t) == 0);
	CHECK(api.gets == 3); /* the listing brought the record */
	task_unref(t);

	/* a task that goes away: dropped, and said so */
	setup((size_t)1 << 20);
	CHECK(store_task("t1", &t) == 0);
	task_unref(t);
	api.missing = "t1";
	CHECK(store_task_refresh("t1", &t) == -ENOENT);
	CHECK(store_task_peek("t1") == NULL);
	CHECK_STR(changed, "t1\n");
}

static void test_leavers(void)
{
	struct listing *l;
	struct task *t;
	time_t changed_at;

	setup((size_t)1 << 20);
	api.ids[0] = "t1";
	api.ids[1] = "t2";
	CHECK(store_listing(&all, 0, &l) == 0);
	CHECK(l->gen == 1);
	listing_unref(l);
	CHECK(store_task_fresh("t1") && store_task_fresh("t2"));
	/* t2 leaves (say, a status folder lost it) */
	api.ids[1] = NULL;
	store_expire(&all, 0);
	CHECK(store_listing(&all, 0, &l) == 0);
	CHECK(l->n == 1 && l->gen == 2 && !listing_has(l, "t2"));
	listing_unref(l);
	CHECK(store_task_fresh("t1"));
	CHECK(!store_task_fresh("t2")); /* checked again on next use */
	CHECK(strstr(changed, "t2\n") != NULL);
	CHECK(strstr(changed, "t1\n") == NULL);
	CHECK(store_task("t2", &t) == 0);
	CHECK(api.gets == 1);
	task_unref(t);
	/*
	 * The same ids again: a new fetch all the same (the folder's mtime
	 * must move each time it goes stale), the time of the change kept.
	 */
	changed_at = l->changed;
	store_expire(&all, 0);
	CHECK(store_listing(&all, 0, &l) == 0);
	CHECK(l->gen == 3 && l->changed == changed_at);
	listing_unref(l);
}

/*
 * A walk under a stale listing: WALK_GETS tasks fetched on their own,
 * then the listing once for the rest; a lone name after that is fresh.
 */
static void test_walk(void)
{
	static const char *const ids[] = { "w1", "w2", "w3", "w4", "w5" };
	struct listing *l;
	struct task *t;
	size_t i;

	setup((size_t)1 << 20);
	for (i = 0; i < 5; i++)
		api.ids[i] = ids[i];
	CHECK(store_listing(&all, 0, &l) == 0);
	listing_unref(l);
	/* a fresh record costs nothing */
	CHECK(store_task_in("w1", &all, 0, &t) == 0);
	task_unref(t);
	CHECK(api.lists == 1 && api.gets == 0);
	store_expire_all(); /* the listing and every record past their ttl */
	for (i = 0; i < WALK_GETS; i++) {
		CHECK(store_task_in(ids[i], &all, 0, &t) == 0);
		task_unref(t);
	}
	CHECK(api.lists == 1 && api.gets == WALK_GETS);
	/* the next one is a walk: the listing, which brings the rest */
	CHECK(store_task_in(ids[WALK_GETS], &all, 0, &t) == 0);
	CHECK(t && !strcmp(t->id, ids[WALK_GETS]));
	task_unref(t);
	CHECK(api.lists == 2 && api.gets == WALK_GETS);
	CHECK(store_task_in(ids[4], &all, 0, &t) == 0);
	task_unref(t);
	CHECK(api.lists == 2 && api.gets == WALK_GETS);
	/* names the listing does not hold are not a walk: one GET each */
	store_expire_all();
	for (i = 0; i < 2 * WALK_GETS; i++) {
		char other[16];

		snprintf(other, sizeof(other), "other%zu", i);
		CHECK(store_task_in(other, &all, 0, &t) == 0);
		task_unref(t);
	}
	CHECK(api.lists == 2 && api.gets == 3 * WALK_GETS);
	for (i = 0; i <= WALK_GETS; i++) {
		CHECK(store_task_in(ids[i], &all, 0, &t) == 0);
		task_unref(t);
	}
	CHECK(api.lists == 3 && api.gets == 4 * WALK_GETS);
	/* under a fresh listing, a stale record (w5 left it) is one GET */
	api.ids[4] = NULL;
	store_expire(&all, 0);
	CHECK(store_listing(&all, 0, &l) == 0);
	listing_unref(l);
	CHECK(!store_task_fresh("w5") && api.lists == 4);
	for (i = 0; i <= WALK_GETS; i++) {
		CHECK(store_task_in("w5", &all, 0, &t) == 0);
		task_unref(t);
	}
	CHECK(api.lists == 4 && api.gets == 4 * WALK_GETS + 1);
}

/* An id the API lists twice is shown once, where it came first. */
static void test_repeats(void)
{
	struct listing *l;

	setup((size_t)1 << 20);
	api.ids[0] = "b";
	api.ids[1] = "a";
	api.ids[2] = "b";
	api.ids[3] = "c";
	CHECK(store_listing(&all, 0, &l) == 0);
	CHECK(l->n == 3);
	CHECK(l->n == 3 && !strcmp(l->ids[0], "b") && !strcmp(l->ids[1], "a") &&
	      !strcmp(l->ids[2], "c"));
	CHECK(listing_has(l, "a") && listing_has(l, "b") &&
	      listing_has(l, "c") && !listing_has(l, "d"));
	listing_unref(l);
}

/* What store_trim's hooks were told. */
static char dropped_keys[4096];
static size_t charge_each, fulls, extra_bytes;

static size_t charge(const char *key, void *arg)
{
	(void)key;
	(void)arg;
	return charge_each;
}

static void dropped(const char *key, void *arg)
{
	(void)arg;
	if (strlen(dropped_keys) + strlen(key) + 2 < sizeof(dropped_keys)) {
		strcat(dropped_keys, key);
		strcat(dropped_keys, "\n");
	}
}

static size_t extra(void *arg)
{
	(void)arg;
	return extra_bytes;
}

static void full(void *arg)
{
	(void)arg;
	fulls++;
}

static const struct json_cond conds[3] = {
	{ "task_id", "ne", "\"a\"", false, 0 },
	{ "task_id", "ne", "\"b\"", false, 0 },
	{ "task_id", "ne", "\"c\"", false, 0 },
};

/* "KEY\n" of listing i, as dropped() writes it. */
static const char *key_line(int i)
{
	static char line[3][512];
	struct list_body q = { .conds = &conds[i], .nconds = 1 };
	struct buf key = BUF_INIT(1 << 20);

	CHECK(store_key(&q, 0, &key) == 0);
	snprintf(line[i], sizeof(line[i]), "%s\n", buf_str(&key));
	buf_release(&key);
	return line[i];
}

/*
 * Listings count against cache_size; store_trim drops them, least
 * recently used first but one past its ttl before that, one in someone's
 * hands last; what the layer above keeps for them (extra) counts too,
 * and charge() says how much of it a listing's going frees.
 */
static void test_trim(void)
{
	struct list_body q[3];
	struct listing *l[3], *held;
	struct store_usage u;
	size_t cap = (size_t)1 << 20;
	char want[2048];
	int i;

	setup(cap);
	store_on_memory(&(struct store_mem_hooks){ extra, full, NULL });
	fulls = extra_bytes = 0;
	api.ids[0] = "t1";
	api.ids[1] = "t2";
	for (i = 0; i < 3; i++) {
		q[i] = (struct list_body){ .conds = &conds[i], .nconds = 1 };
		CHECK(store_listing(&q[i], 0, &l[i]) == 0);
	}
	CHECK(api.lists == 3);
	store_usage(&u);
	CHECK(u.listings == 3 && u.listing_bytes > 3 * l[0]->bytes);
	CHECK(u.extra_bytes == 0 && fulls == 0);
	CHECK(!store_over(0) && store_over(cap));
	/* nothing over the mark: nothing goes */
	CHECK(store_trim(0, charge, dropped, NULL) == 0);

	/* l[1] stays in our hands; used order now 0, 2, 1; then 0 again */
	held = l[1];
	listing_unref(l[0]);
	listing_unref(l[2]);
	CHECK(store_listing(&q[2], 0, &l[2]) == 0);
	listing_unref(l[2]);
	CHECK(store_listing(&q[0], 0, &l[0]) == 0);
	listing_unref(l[0]);
	CHECK(api.lists == 3);
	/* one is enough when it frees all of extra: the oldest unused */
	charge_each = cap;
	dropped_keys[0] = '\0';
	CHECK(store_trim(cap, charge, dropped, NULL) == 1);
	CHECK_STR(dropped_keys, key_line(2));
	/* a stale one before an older fresh one; the held one last */
	CHECK(store_listing(&q[2], 0, &l[2]) == 0); /* fetched again */
	listing_unref(l[2]);
	CHECK(api.lists == 4);
	store_expire(&q[2], 0);
	charge_each = 0;
	dropped_keys[0] = '\0';
	CHECK(store_trim(cap, charge, dropped, NULL) == 3);
	snprintf(want, sizeof(want), "%s%s%s", key_line(2), key_line(0),
		 key_line(1));
	CHECK_STR(dropped_keys, want);
	store_usage(&u);
	CHECK(u.listings == 0 && u.listing_bytes == 0);
	/* what was in our hands still reads */
	CHECK(held->n == 2 && !strcmp(held->ids[1], "t2"));
	listing_unref(held);

	/* over the cap with extra: a new listing calls full() */
	extra_bytes = cap;
	CHECK(store_listing(&q[0], 0, &l[0]) == 0);
	listing_unref(l[0]);
	CHECK(fulls == 1);
	store_usage(&u);
	CHECK(u.extra_bytes == cap && u.listings == 1);
	store_on_memory(NULL);
}

int main(void)
{
	test_single_flight();
	test_stale_on_error();
	test_lru();
	test_missing();
	test_leavers();
	test_walk();
	test_repeats();
	test_trim();
	store_cleanup();
	return check_done();
}
