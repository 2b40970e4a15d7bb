// SPDX-License-Identifier: MIT
/*
 * ns, dirsnap and vfile without /dev/fuse and without a server: a
 * struct fs made by hand (no session: nothing here may talk to the
 * kernel), a store fed by a stand-in for the API that counts its calls.
 * What each path is, what its files hold, what stat costs, what a
 * folder lists and how long the kernel may keep it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "../../src/fs_i.h"
#include "pack.h"
#include "stats.h"

/* ---- the stand-in API ---- */

static struct fake_task {
	const char *id, *status, *type, *json;
	bool listed; /* a list request returns it */
} tasks[] = {
	{ "tk_fail", "FAILED", "thumbnail",
	  "{\"task_id\":\"tk_fail\",\"status\":\"FAILED\","
	  "\"task_type\":\"thumbnail\",\"message\":\"boom\",\"error\":null,"
	  "\"retries\":2,\"ok\":false,\"tags\":[\"a\",\"b\"],"
	  "\"additional_data\":{\"bucket_id\":\"bkt_1\",\"a/b\":\"slash\","
	  "\"counts\":{\"objects\":3},\"items\":[{\"n\":1},{\"n\":2}]},"
	  "\"task.json\":\"shadowed\"}",
	  true },
	{ "tk_run", "IN_PROGRESS", "video_segment", NULL, true },
	{ "tk_done", "COMPLETED", "thumbnail", NULL, true },
	{ "tk_odd", "WEIRD", "thumbnail", NULL, true },
	{ "tk/slash", "PENDING", "custom/type", NULL, true },
	{ "tk_hidden", "PENDING", "thumbnail", NULL, false },
};
#define NTASKS (sizeof(tasks) / sizeof(tasks[0]))

static unsigned lists, gets;

static struct task *make_task(const struct fake_task *f)
{
	char json[512];

	if (f->json)
		return task_new(f->id, f->status, f->type, f->json,
				strlen(f->json));
	snprintf(json, sizeof(json),
		 "{\"task_id\":\"%s\",\"status\":\"%s\","
		 "\"task_type\":\"%s\"}",
		 f->id, f->status, f->type);
	return task_new(f->id, f->status, f->type, json, strlen(json));
}

/* Whether f meets condition c; only status and task_type eq are known. */
static bool cond_holds(const struct json_cond *c, const struct fake_task *f)
{
	char quoted[128];
	const char *v = !strcmp(c->field, "status") ? f->status :
		!strcmp(c->field, "task_type")	    ? f->type :
						      NULL;

	if (!v || strcmp(c->op, "eq"))
		return true;
	snprintf(quoted, sizeof(quoted), "\"%s\"", v);
	return !strcmp(quoted, c->value) != c->negate;
}

static bool admits(const struct list_body *q, const struct fake_task *f)
{
	size_t i;

	if (q->status && strcmp(q->status, f->status))
		return false;
	if (q->task_type && strcmp(q->task_type, f->type))
		return false;
	for (i = 0; i < q->nconds; i++)
		if (!cond_holds(&q->conds[i], f))
			return false;
	return true;
}

static int fake_list(const struct list_body *q, long limit, api_sink sink,
		     void *ctx)
{
	long n = 0;
	size_t i;
	int res = 0;

	lists++;
	for (i = 0; i < NTASKS && !res && (limit <= 0 || n < limit); i++) {
		struct task *t;

		if (!tasks[i].listed || !admits(q, &tasks[i]))
			continue;
		t = make_task(&tasks[i]);
		res = t ? sink(ctx, t) : -ENOMEM;
		task_unref(t); /* the sink takes its own reference */
		n++;
	}
	return res;
}

static int fake_get(const char *id, struct task **out)
{
	size_t i;

	gets++;
	for (i = 0; i < NTASKS; i++)
		if (!strcmp(tasks[i].id, id)) {
			*out = make_task(&tasks[i]);
			return *out ? 0 : -ENOMEM;
		}
	return -ENOENT;
}

static const struct store_source fake = { fake_list, fake_get, NULL, NULL };

/* ---- a mount without a session ---- */

#define KEY "sk_live_SECRET_0123456789"

static struct options o;
static struct fs *fs;
/* where snap_get says a readdir starts */
static size_t from;
static char mountpoint[] = "/mnt/test";

static void setup(unsigned ttl)
{
	opts_init(&o);
	o.ttl = ttl;
	o.url = strdup("https://api.example.com");
	o.key = strdup(KEY);
	fs = calloc(1, sizeof(*fs));
	CHECK(fs && o.url && o.key);
	if (!fs)
		exit(1);
	fs->opts = &o;
	fs->cmd.mountpoint = mountpoint;
	fs->started = time(NULL) - 1000; /* told apart from now */
	fs->uid = getuid();
	fs->gid = getgid();
	pthread_mutex_init(&fs->stats_lock, NULL);
	CHECK(node_table_init(&fs->nodes, dirsnap_unref) == 0);
	CHECK(store_init(o.ttl, o.ttl_terminal, o.cache_size, &fake) == 0);
	lists = gets = 0;
}

static void teardown(void)
{
	node_table_release(&fs->nodes);
	vfile_release(fs);
	pthread_mutex_destroy(&fs->stats_lock);
	free(fs);
	fs = NULL;
	/* the trees cached hold task records: before the store */
	ttree_cleanup();
	store_cleanup();
	opts_release(&o);
}

/*
 * ns_lookup of name in parent, then the node as fs_lookup makes it (one
 * lookup held; the table frees it at the end). st: the attributes
 * ns_lookup filled, if wanted.
 */
static int lookup(struct node *parent, const char *name, struct node **out,
		  struct stat *st)
{
	enum nkind kind = NK_FIELD;
	struct stat tmp;
	char *value = NULL;
	int group = -1, res;

	if (!st)
		st = &tmp;
	memset(st, 0, sizeof(*st));
	res = ns_lookup(fs, parent, name, &kind, &group, &value, st);
	if (!res && out) {
		*out = node_child(&fs->nodes, parent, name, kind, group, value);
		if (!*out)
			res = -ENOMEM;
	}
	free(value);
	return res;
}

/* The node at path from the root, each step looked up; NULL if absent. */
static struct node *walk(const char *path)
{
	char copy[512], *save = NULL, *name;
	struct node *n = fs->nodes.root;

	snprintf(copy, sizeof(copy), "%s", path);
	for (name = strtok_r(copy, "/", &save); name && n;
	     name = strtok_r(NULL, "/", &save))
		if (lookup(n, name, &n, NULL))
			n = NULL;
	return n;
}

/* n's bytes are want, and node_stat says a file of that size. */
static bool file_is(struct node *n, const char *want)
{
	struct buf b = BUF_INIT(RENDER_MAX);
	struct stat st;
	time_t when;
	bool ok;

	if (!n)
		return false;
	ok = !node_render(fs, n, &b, &when) && !strcmp(buf_str(&b), want) &&
		!node_stat(fs, n, &st) && S_ISREG(st.st_mode) &&
		st.st_size == (off_t)strlen(want);
	if (!ok)
		fprintf(stderr, "%s: got '%s', want '%s'\n", n->name,
			buf_str(&b), want);
	buf_release(&b);
	return ok;
}

/* The rendered bytes of n, malloc'd ("" on error: the check fails). */
static char *rendered(struct node *n)
{
	struct buf b = BUF_INIT(RENDER_MAX);
	time_t when;
	char *s;

	if (node_render(fs, n, &b, &when))
		buf_release(&b);
	s = buf_detach(&b, NULL);
	return s ? s : strdup("");
}

/* A fresh snapshot of folder n's names, '|'-joined, into out. */
static int snap_names(struct node *n, char *out, size_t size)
{
	struct dirsnap *d;
	size_t i, len = 0;
	int res = snap_get(fs, n, 0, &d, &from);

	out[0] = '\0';
	if (res)
		return res;
	for (i = 0; i < dirsnap_count(d); i++) {
		char name[TREE_NAME_MAX + 1];
		struct dent e;

		if (dirsnap_entry(fs, n, d, i, name, &e) && len < size)
			len += (size_t)snprintf(out + len, size - len, "%s%s",
						len ? "|" : "", name);
	}
	dirsnap_unref(d);
	return 0;
}

/* ---- the tests ---- */

static void test_root(void)
{
	static const struct {
		const char *name;
		enum nkind kind;
		int group;
	} want[] = {
		{ "README", NK_README, 0 },
		{ "tasks", NK_LISTING, 0 },
		{ "by-status", NK_GROUP, STORE_STATUSES },
		{ "by-type", NK_GROUP, STORE_TYPES },
		{ ".mixpeekfs", NK_META, 0 },
	};
	struct node *root = fs->nodes.root, *n = NULL;
	char names[256];
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		n = NULL;
		CHECK(lookup(root, want[i].name, &n, &st) == 0);
		CHECK(n && n->kind == want[i].kind &&
		      n->group == want[i].group);
		CHECK(st.st_mode == 0); /* node_stat's job */
		CHECK(n && node_stat(fs, n, &st) == 0 &&
		      st.st_ino == node_ino(&fs->nodes, n));
		CHECK(n && (n->kind == NK_README) == S_ISREG(st.st_mode));
	}
	CHECK(lookup(root, "nope", NULL, NULL) == -ENOENT);
	CHECK(lookup(root, "readme", NULL, NULL) == -ENOENT);
	CHECK(lookup(root, "", NULL, NULL) == -ENOENT);
	/* .refresh is fs_ops' business (it refreshes): not ns' */
	CHECK(lookup(root, REFRESH_NAME, NULL, NULL) == -ENOENT);
	CHECK(snap_names(root, names, sizeof(names)) == 0);
	CHECK_STR(names, "README|by-status|by-type|tasks|.mixpeekfs");
	/* a file is no folder */
	n = walk("README");
	CHECK(n && lookup(n, "x", NULL, NULL) == -ENOTDIR);
	CHECK(n && snap_names(n, names, sizeof(names)) == -ENOTDIR);
	CHECK(node_stat(fs, root, &st) == 0 && S_ISDIR(st.st_mode) &&
	      st.st_ino == NODE_ROOT_INO && st.st_mtime == fs->started);
	/* the root's attributes are the mount's: the data's ttl */
	CHECK(keep_for(fs, root) == (double)o.ttl);
	CHECK(lists == 0 && gets == 0);
}

static void test_vfiles(void)
{
	struct node *readme = walk("README"), *meta = walk(".mixpeekfs");
	struct node *config, *stats, *version, *refresh;
	char names[256], *s;
	struct stat st;

	CHECK(readme && file_is(readme, vfile_readme));
	CHECK(readme && keep_for(fs, readme) == (double)o.ttl);
	CHECK(meta && snap_names(meta, names, sizeof(names)) == 0);
	CHECK_STR(names, "config|stats|version");
	CHECK(meta && lookup(meta, "nope", NULL, NULL) == -ENOENT);
	CHECK(meta && lookup(meta, "README", NULL, NULL) == -ENOENT);

	config = walk(".mixpeekfs/config");
	CHECK(config && config->kind == NK_METAFILE);
	s = config ? rendered(config) : strdup("");
	CHECK(strstr(s, "\nkey <redacted>\n") != NULL);
	CHECK(strstr(s, KEY) == NULL);
	CHECK(strstr(s, "SECRET") == NULL);
	CHECK(strncmp(s, "url https://api.example.com\n", 28) == 0);
	CHECK(strstr(s, "\nmountpoint /mnt/test\n") != NULL);
	CHECK(strstr(s, "\nttl 30\n") != NULL);
	CHECK(config && file_is(config, s));
	free(s);
	CHECK(config && keep_for(fs, config) == (double)o.ttl);

	/* stats: never kept, a new mtime each stat */
	stats = walk(".mixpeekfs/stats");
	s = stats ? rendered(stats) : strdup("");
	CHECK(strstr(s, "\nnodes ") != NULL);
	CHECK(strstr(s, "tasks_cached 0\n") != NULL);
	free(s);
	CHECK(stats && keep_for(fs, stats) == 0);
	CHECK(stats && node_stat(fs, stats, &st) == 0 && S_ISREG(st.st_mode) &&
	      st.st_mtime >= time(NULL) - 1);
	/*
	 * the READ after a stat reads what the stat measured, though the
	 * counters moved in between (the kernel would cut it at st_size)
	 */
	stats_add(STATS_BYTES, 123456789);
	s = stats ? rendered(stats) : strdup("");
	CHECK((off_t)strlen(s) == st.st_size);
	CHECK(strstr(s, "123456789") == NULL);
	free(s);
	/* a second after the stat, a READ renders anew */
	if (stats) {
		pthread_mutex_lock(&fs->stats_lock);
		fs->stats_at -= 2000000000;
		pthread_mutex_unlock(&fs->stats_lock);
	}
	s = stats ? rendered(stats) : strdup("");
	CHECK((off_t)strlen(s) > st.st_size);
	free(s);

	version = walk(".mixpeekfs/version");
	s = version ? rendered(version) : strdup("");
	CHECK(strncmp(s, "mixpeekfs ", 10) == 0);
	CHECK(strstr(s, "\nlibfuse 3.") != NULL);
	free(s);

	/* .refresh as fs_ops makes it: the time of the last refresh */
	refresh = node_child(&fs->nodes, fs->nodes.root, REFRESH_NAME,
			     NK_REFRESH, 0, NULL);
	CHECK(refresh && file_is(refresh, "refreshed never\n"));
	CHECK(refresh && keep_for(fs, refresh) == 0);
	vfile_refreshed_now(fs);
	s = refresh ? rendered(refresh) : strdup("");
	CHECK(strncmp(s, "refreshed 20", 12) == 0 && s[strlen(s) - 1] == '\n');
	free(s);
	CHECK(refresh && node_stat(fs, refresh, &st) == 0 &&
	      (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec ==
		      fs->refreshed);
	CHECK(lists == 0 && gets == 0);
}

static void test_groups(void)
{
	struct node *bystatus = walk("by-status"), *failed = NULL;
	char names[1024], *p;
	struct dirsnap *d = NULL;
	struct stat st;

	CHECK(bystatus && lookup(bystatus, "FAILED", &failed, &st) == 0);
	CHECK(failed && failed->kind == NK_LISTING &&
	      failed->group == STORE_STATUSES);
	CHECK(failed && !strcmp(node_value(failed), "FAILED"));
	CHECK(bystatus && lookup(bystatus, "NOPE", NULL, NULL) == -ENOENT);
	CHECK(bystatus && lookup(bystatus, "failed", NULL, NULL) == -ENOENT);
	failed = walk("by-type/thumbnail");
	CHECK(failed && failed->kind == NK_LISTING &&
	      failed->group == STORE_TYPES);
	/* the published statuses, in order */
	CHECK(bystatus && snap_get(fs, bystatus, 0, &d, &from) == 0);
	CHECK(d && dirsnap_count(d) == 13);
	dirsnap_unref(d);
	CHECK(bystatus && snap_names(bystatus, names, sizeof(names)) == 0);
	CHECK(strncmp(names, "PENDING|IN_PROGRESS|PROCESSING|COMPLETED|", 41) ==
	      0);
	p = strrchr(names, '|');
	CHECK_STR(p ? p + 1 : NULL, "SUSPENDED");
	/* a status unknown until a listing shows it */
	CHECK(bystatus && lookup(bystatus, "WEIRD", NULL, NULL) == -ENOENT);
	CHECK(lists == 0 && gets == 0);
}

static void test_listing(void)
{
	struct node *ls = walk("tasks"), *n = NULL, *bystatus;
	struct dirsnap *d, *again;
	struct listing *l;
	struct lquery lq;
	struct stat st;
	struct dent e;
	char names[2048], name[TREE_NAME_MAX + 1];
	size_t i;
	bool keep_ok = true;

	CHECK(ls && ls->kind == NK_LISTING && !is_query(ls));
	if (!ls)
		return;
	/* stat before any fetch: no request, the mount's time */
	CHECK(node_stat(fs, ls, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(st.st_mtime == fs->started && st.st_mtim.tv_nsec == 0);
	CHECK(keep_for(fs, ls) == (double)o.ttl);
	CHECK(lists == 0 && gets == 0);
	/* tasks/ admits any task the API knows: a GET without a listing */
	CHECK(lookup(ls, "tk_run", &n, NULL) == 0);
	CHECK(n && n->kind == NK_TASK && !strcmp(node_value(n), "tk_run"));
	CHECK(gets == 1 && lists == 0);

	/* readdir: one list request, the ids in the API's order */
	CHECK(snap_get(fs, ls, 0, &d, &from) == 0);
	CHECK(lists == 1 && gets == 1);
	CHECK(dirsnap_count(d) == 5);
	for (i = 0; i < dirsnap_count(d); i++) {
		static const char *const want[] = { "tk_fail", "tk_run",
						    "tk_done", "tk_odd",
						    "tk%2Fslash" };

		CHECK(dirsnap_entry(fs, ls, d, i, name, &e));
		CHECK_STR(name, want[i]);
		CHECK_STR(e.value, tasks[i].id);
		CHECK(e.kind == NK_TASK && S_ISDIR(e.st.st_mode));
		keep_ok &= e.keep > 0 && e.keep <= (double)o.ttl;
	}
	CHECK(keep_ok); /* tk_done is terminal: still capped at ttl */
	/* a later offset reads the same snapshot, without a request */
	CHECK(snap_get(fs, ls, snap_off(d, 2), &again, &from) == 0 &&
	      again == d && from == 3);
	dirsnap_unref(again);
	CHECK(lists == 1);
	/* offset 0: the same listing, the same snapshot and offsets */
	CHECK(snap_get(fs, ls, 0, &again, &from) == 0 && again == d &&
	      from == 0);
	dirsnap_unref(again);
	CHECK(lists == 1);
	/* a new listing: a new snapshot; a reader of the old goes on */
	CHECK(lquery_get(ls, &lq) == 0);
	store_expire(&lq.b, lq.q.limit);
	lquery_release(&lq);
	CHECK(snap_get(fs, ls, 0, &again, &from) == 0 && again != d);
	CHECK(lists == 2);
	dirsnap_unref(again);
	CHECK(snap_get(fs, ls, snap_off(d, 4), &again, &from) == 0 &&
	      again == d && from == 5);
	dirsnap_unref(again);
	dirsnap_unref(d);
	CHECK(keep_for(fs, ls) > 0 && keep_for(fs, ls) <= (double)o.ttl);

	/* listed ids in a fresh listing: no GET */
	CHECK(lookup(ls, "tk_fail", &n, NULL) == 0 && n->kind == NK_TASK);
	CHECK(lookup(ls, "tk_done", NULL, NULL) == 0);
	CHECK(gets == 1);
	/* an escaped id: its raw value */
	CHECK(lookup(ls, "tk%2Fslash", &n, NULL) == 0);
	CHECK(n && !strcmp(node_value(n), "tk/slash"));
	CHECK(gets == 1);
	/* an unlisted id: one GET, then the fresh record */
	CHECK(lookup(ls, "tk_hidden", &n, NULL) == 0 && n->kind == NK_TASK);
	CHECK(gets == 2);
	CHECK(lookup(ls, "tk_hidden", NULL, NULL) == 0);
	CHECK(gets == 2);
	/* an unknown id: one GET, then remembered */
	CHECK(lookup(ls, "tk_nope", NULL, NULL) == -ENOENT);
	CHECK(gets == 3);
	CHECK(lookup(ls, "tk_nope", NULL, NULL) == -ENOENT);
	CHECK(gets == 3);
	/* a name that unescapes to nothing valid */
	CHECK(lookup(ls, "bad%zz", NULL, NULL) == -ENOENT);
	CHECK(lists == 2);

	/* the listing showed WEIRD: by-status/ has it now */
	bystatus = walk("by-status");
	CHECK(bystatus && lookup(bystatus, "WEIRD", NULL, NULL) == 0);
	CHECK(bystatus && snap_names(bystatus, names, sizeof(names)) == 0);
	CHECK(strstr(names, "|SUSPENDED|WEIRD") != NULL);

	/* a type with a '/' in it: escaped, and asked for by its raw value */
	n = walk("by-type/custom%2Ftype");
	CHECK(n && !strcmp(node_value(n), "custom/type"));
	CHECK(n && snap_names(n, names, sizeof(names)) == 0);
	CHECK_STR(names, "tk%2Fslash");
	CHECK(lists == 3);
	n = walk("by-type");
	CHECK(n && snap_names(n, names, sizeof(names)) == 0);
	CHECK(strstr(names, "|model_custom|custom%2Ftype") != NULL);

	/* stat: the listing's time and version, still no request */
	CHECK(node_listing(ls, false, &l) == 0);
	CHECK(node_stat(fs, ls, &st) == 0);
	CHECK(st.st_mtime == l->changed &&
	      st.st_mtim.tv_nsec == (long)l->gen * 2048);
	CHECK(st.st_ctim.tv_nsec == (long)l->gen * 2048);
	CHECK(lists == 3);
	listing_unref(l);
}

static struct node *in_status(const char *status)
{
	char path[64];

	snprintf(path, sizeof(path), "by-status/%s", status);
	return walk(path);
}

static void test_status_folders(void)
{
	struct node *failed = in_status("FAILED"), *inprog, *weird, *ls;
	struct dirsnap *d;
	struct task *t;
	char names[256], name[TREE_NAME_MAX + 1];
	struct dent e;
	unsigned g = gets, li = lists;

	CHECK(failed != NULL);
	if (!failed)
		return;
	/* before its listing: a task is asked for, and must fit */
	CHECK(lookup(failed, "tk_run", NULL, NULL) == -ENOENT);
	CHECK(lookup(failed, "tk_fail", NULL, NULL) == 0);
	CHECK(lists == li);
	CHECK(snap_names(failed, names, sizeof(names)) == 0);
	CHECK_STR(names, "tk_fail");
	CHECK(lists == li + 1);
	/* a fresh listing says who is here: no GET */
	g = gets;
	CHECK(lookup(failed, "tk_fail", NULL, NULL) == 0);
	CHECK(lookup(failed, "tk_run", NULL, NULL) == -ENOENT);
	CHECK(lookup(failed, "tk_hidden", NULL, NULL) == -ENOENT);
	CHECK(gets == g);

	/* a status the API does not publish goes in as a filter */
	weird = in_status("WEIRD");
	CHECK(weird && snap_names(weird, names, sizeof(names)) == 0);
	CHECK_STR(names, "tk_odd");

	/* a task that moves out of a status folder */
	inprog = in_status("IN_PROGRESS");
	CHECK(inprog && snap_get(fs, inprog, 0, &d, &from) == 0);
	if (!inprog)
		return;
	CHECK(dirsnap_count(d) == 1);
	CHECK(dirsnap_entry(fs, inprog, d, 0, name, &e));
	tasks[1].status = "FAILED";
	CHECK(store_task_refresh("tk_run", &t) == 0);
	CHECK(t && !strcmp(t->status, "FAILED"));
	task_unref(t);
	/* the snapshot still holds it, but leaves it out */
	CHECK(!dirsnap_entry(fs, inprog, d, 0, name, &e));
	CHECK_STR(name, "tk_run");
	dirsnap_unref(d);
	CHECK(lookup(inprog, "tk_run", NULL, NULL) == -ENOENT);
	/* tasks/ still shows it */
	ls = walk("tasks");
	CHECK(ls && lookup(ls, "tk_run", NULL, NULL) == 0);
	tasks[1].status = "IN_PROGRESS";
	CHECK(store_task_refresh("tk_run", &t) == 0);
	task_unref(t);
}

static void test_queries(void)
{
	struct node *ls = walk("tasks"), *q = NULL, *q2 = NULL, *lim;
	char names[256];
	unsigned li;

	CHECK(ls != NULL);
	if (!ls)
		return;
	li = lists;
	CHECK(lookup(ls, "status=FAILED", &q, NULL) == 0);
	CHECK(q && q->kind == NK_LISTING && is_query(q));
	CHECK(q && node_value(q) == q->name); /* no raw value */
	CHECK(lists == li); /* no fetch for a plain condition */
	CHECK(q && snap_names(q, names, sizeof(names)) == 0);
	CHECK_STR(names, "tk_fail");
	CHECK(lists == li + 1);
	/* a query's members come from its listing only */
	CHECK(q && lookup(q, "tk_fail", NULL, NULL) == 0);
	CHECK(q && lookup(q, "tk_run", NULL, NULL) == -ENOENT);
	CHECK(q && lookup(q, "tk_hidden", NULL, NULL) == -ENOENT);
	CHECK(lists == li + 1);
	/* malformed: EINVAL (not ENOENT: it is no task id either) */
	CHECK(lookup(ls, "x:nope:1", NULL, NULL) == -EINVAL);
	CHECK(q && lookup(q, "x:nope:1", NULL, NULL) == -EINVAL);
	/* queries nest: the conditions AND */
	CHECK(q && lookup(q, "task_type=video_segment", &q2, NULL) == 0);
	CHECK(q2 && snap_names(q2, names, sizeof(names)) == 0);
	CHECK_STR(names, "");
	CHECK(q && lookup(q, "task_type=thumbnail", &q2, NULL) == 0);
	CHECK(q2 && snap_names(q2, names, sizeof(names)) == 0);
	CHECK_STR(names, "tk_fail");
	/* under a status folder, and with a limit */
	lim = walk("by-type/thumbnail/@limit=2");
	CHECK(lim && is_query(lim));
	CHECK(lim && snap_names(lim, names, sizeof(names)) == 0);
	CHECK_STR(names, "tk_fail|tk_done");
	/* the stat of a query folder costs no request either */
	li = lists;
	q = walk("tasks/status=COMPLETED");
	CHECK(q != NULL);
	if (q) {
		struct stat st;

		CHECK(node_stat(fs, q, &st) == 0 && S_ISDIR(st.st_mode));
		CHECK(st.st_mtime == fs->started);
	}
	CHECK(lists == li);
}

static void test_fields(void)
{
	struct node *task = walk("tasks/tk_fail"), *n = NULL, *ad, *items;
	char names[512], *s;
	struct stat st;
	unsigned g = gets, li = lists;

	CHECK(task && task->kind == NK_TASK);
	if (!task)
		return;
	CHECK(node_stat(fs, task, &st) == 0 && S_ISDIR(st.st_mode));
	/* a file: ns_lookup fills its attributes, the size its bytes' */
	CHECK(lookup(task, "status", &n, &st) == 0);
	CHECK(n && n->kind == NK_FIELD && S_ISREG(st.st_mode));
	CHECK(st.st_size == 7);
	CHECK(n && file_is(n, "FAILED\n"));
	CHECK(lookup(task, "retries", &n, &st) == 0 && st.st_size == 2);
	CHECK(n && file_is(n, "2\n"));
	CHECK(lookup(task, "ok", &n, NULL) == 0 && file_is(n, "false\n"));
	CHECK(lookup(task, "tags", &n, &st) == 0 && st.st_size == 4);
	CHECK(n && file_is(n, "a\nb\n"));
	/* a folder */
	CHECK(lookup(task, "additional_data", &ad, &st) == 0);
	CHECK(S_ISDIR(st.st_mode) && ad && ad->kind == NK_FIELD);
	CHECK(ad && node_stat(fs, ad, &st) == 0 && S_ISDIR(st.st_mode));
	{
		struct buf b = BUF_INIT(64);
		time_t when;

		CHECK(ad && node_render(fs, ad, &b, &when) == -EISDIR);
		buf_release(&b);
	}
	n = walk("tasks/tk_fail/additional_data/bucket_id");
	CHECK(n && file_is(n, "bkt_1\n"));
	n = walk("tasks/tk_fail/additional_data/a%2Fb");
	CHECK(n && file_is(n, "slash\n"));
	n = walk("tasks/tk_fail/additional_data/counts/objects");
	CHECK(n && file_is(n, "3\n"));
	items = walk("tasks/tk_fail/additional_data/items");
	CHECK(items && lookup(items, "1", &n, &st) == 0 && S_ISDIR(st.st_mode));
	n = walk("tasks/tk_fail/additional_data/items/1/n");
	CHECK(n && file_is(n, "2\n"));
	/* what is not there: null, absent, below a file */
	CHECK(lookup(task, "error", NULL, NULL) == -ENOENT);
	CHECK(lookup(task, "nope", NULL, NULL) == -ENOENT);
	CHECK(ad && lookup(ad, "a/b", NULL, NULL) == -ENOENT);
	CHECK(items && lookup(items, "2", NULL, NULL) == -ENOENT);
	n = walk("tasks/tk_fail/status");
	CHECK(n && lookup(n, "x", NULL, NULL) == -ENOENT);
	/* the folders list their keys; task.json wins over a key so named */
	CHECK(snap_names(task, names, sizeof(names)) == 0);
	CHECK_STR(names,
		  "task_id|status|task_type|message|retries|ok|tags|"
		  "additional_data|task.json");
	CHECK(ad && snap_names(ad, names, sizeof(names)) == 0);
	CHECK_STR(names, "bucket_id|a%2Fb|counts|items");
	CHECK(items && snap_names(items, names, sizeof(names)) == 0);
	CHECK_STR(names, "0|1");
	/* entries come sized, for readdirplus */
	{
		struct dirsnap *d;
		struct dent e;
		char name[TREE_NAME_MAX + 1];
		size_t i;
		bool sized = true;

		CHECK(snap_get(fs, task, 0, &d, &from) == 0);
		for (i = 0; d && i < dirsnap_count(d); i++) {
			CHECK(dirsnap_entry(fs, task, d, i, name, &e));
			if (!strcmp(name, "status"))
				sized &= S_ISREG(e.st.st_mode) &&
					e.st.st_size == 7;
			else if (!strcmp(name, "additional_data"))
				sized &= S_ISDIR(e.st.st_mode);
			else if (!strcmp(name, TASK_JSON))
				sized &= e.st.st_mode == 0 &&
					e.kind == NK_TASKJSON;
			sized &= e.keep < 0;
		}
		CHECK(sized);
		dirsnap_unref(d);
	}
	/* task.json: the whole task, pretty; its size on stat */
	CHECK(lookup(task, TASK_JSON, &n, &st) == 0);
	CHECK(n && n->kind == NK_TASKJSON && st.st_mode == 0);
	s = n ? rendered(n) : strdup("");
	CHECK(s[0] == '{' && strstr(s, "\"tk_fail\"") != NULL);
	CHECK(strstr(s, "\"shadowed\"") != NULL && strchr(s, '\n') != NULL);
	CHECK(n && file_is(n, s));
	free(s);
	/* task.json only at the top of a task */
	CHECK(ad && lookup(ad, TASK_JSON, NULL, NULL) == -ENOENT);
	/* all from the record the listing brought */
	CHECK(gets == g && lists == li);
	/* a file is kept no longer than the ttl, a terminal task's too */
	CHECK(keep_for(fs, n) > 0 && keep_for(fs, n) <= (double)o.ttl);
	n = walk("tasks/tk_done");
	CHECK(n && keep_for(fs, n) > 0 && keep_for(fs, n) <= (double)o.ttl);
	n = walk("tasks/tk_done/status");
	CHECK(n && file_is(n, "COMPLETED\n"));
}

/*
 * A listing made stale by hand: its mtime moves, without a request. Each
 * time it goes stale it shows an mtime the kernel has not seen, even when
 * the fetch between found the same ids (the kernel would otherwise trust
 * the entries it read under that mtime the time before).
 */
static void test_stale_expire(void)
{
	struct node *ls = walk("tasks");
	long seen[6];
	struct lquery lq;
	struct stat st;
	struct dirsnap *d = NULL;
	unsigned li = lists;
	int i, j;

	CHECK(ls && lquery_get(ls, &lq) == 0);
	if (!ls)
		return;
	for (i = 0; i < 3; i++) {
		CHECK(node_stat(fs, ls, &st) == 0);
		seen[2 * i] = st.st_mtim.tv_nsec;
		store_expire(&lq.b, lq.q.limit);
		CHECK(node_stat(fs, ls, &st) == 0);
		seen[2 * i + 1] = st.st_mtim.tv_nsec;
		CHECK(keep_for(fs, ls) == 0);
		CHECK(lists == li + (unsigned)i);
		/* the next readdir fetches (the same ids) */
		CHECK(snap_get(fs, ls, 0, &d, &from) == 0);
		dirsnap_unref(d);
		CHECK(lists == li + (unsigned)i + 1);
	}
	lquery_release(&lq);
	for (i = 0; i < 6; i++)
		for (j = 0; j < i; j++)
			CHECK(seen[i] != seen[j]);
	CHECK(seen[1] == seen[0] + 1024);
}

/* A ttl of 1 s: wait (polling) until the listing is past it. */
static void test_stale_by_age(void)
{
	struct node *ls, *task;
	struct listing *l = NULL;
	struct dirsnap *d;
	struct stat st;
	time_t fetched = 0, deadline;
	unsigned li;

	teardown();
	setup(1);
	ls = walk("tasks");
	CHECK(ls && snap_get(fs, ls, 0, &d, &from) == 0);
	if (!ls)
		return;
	dirsnap_unref(d);
	CHECK(node_listing(ls, false, &l) == 0);
	if (l) {
		fetched = l->fetched;
		listing_unref(l);
	}
	li = lists;
	CHECK(keep_for(fs, ls) <= 1);
	task = walk("tasks/tk_run");
	CHECK(task && keep_for(fs, task) <= 1);
	deadline = time(NULL) + 5;
	while (time(NULL) < fetched + 1 && time(NULL) < deadline)
		usleep(10 * 1000);
	CHECK(node_stat(fs, ls, &st) == 0);
	CHECK(st.st_mtim.tv_nsec == 2048 + 1024);
	CHECK(st.st_mtime == fetched); /* the ids' time, not the fetch's */
	CHECK(keep_for(fs, ls) == 0);
	CHECK(task && keep_for(fs, task) == 0);
	CHECK(lists == li);
	CHECK(snap_get(fs, ls, 0, &d, &from) == 0);
	dirsnap_unref(d);
	CHECK(lists == li + 1);
}

int main(void)
{
	setup(30);
	test_root();
	test_vfiles();
	test_groups();
	test_listing();
	test_status_folders();
	test_queries();
	test_fields();
	test_stale_expire();
	test_stale_by_age();
	teardown();
	pack_cleanup();
	return check_done();
}
