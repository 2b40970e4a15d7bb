// SPDX-License-Identifier: MIT
/*
 * fs: the FUSE low-level operations. Every path is a node (node.c); what
 * a node shows is worked out on each request from the store's records,
 * so nothing here outlives the task data it came from.
 *
 * Caching is left to the kernel: no OPEN or OPENDIR round trips
 * (FUSE_CAP_NO_OPEN_SUPPORT / NO_OPENDIR_SUPPORT), which makes the kernel
 * keep file pages and folder entries until a node's mtime moves;
 * entries and attributes are trusted for ttl seconds. mtime is when
 * mixpeekfs saw the data change, so a refresh that changes nothing keeps
 * the kernel's caches, and one that changes something drops them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "config.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "node.h"
#include "query.h"
#include "store.h"
#include "tree.h"
#include "ttree.h"

/*
 * Files found by LOOKUP are about to be read (stat and open look up by
 * name; ls uses readdirplus). A helper thread renders them and stores the
 * bytes in the kernel's page cache, which saves the READ round trip. It
 * cannot be done in the LOOKUP handler: the kernel makes the inode only
 * after the reply, so a store sent with it finds none (ENOENT).
 */
#define PUSH_MAX (64 * 1024)	/* bigger files wait for their READ */
#define PUSH_QUEUE 4096

struct pusher {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct node *q[PUSH_QUEUE];	/* held nodes (node_hold) */
	size_t n;
	bool stop, running;
	pthread_t thread;
};

struct fs {
	struct options *opts;
	struct fuse_args args;
	struct fuse_cmdline_opts cmd;
	struct fuse_session *se;
	bool mounted;
	struct node_table nodes;
	bool no_open;		/* the kernel can do without OPEN */
	bool no_opendir;	/* ... and without OPENDIR */
	uid_t uid;
	gid_t gid;
	time_t started;
	struct pusher push;
};

#define TASK_JSON "task.json"

static const char readme_text[] =
"mixpeekfs: Mixpeek tasks as files (read-only)\n"
"\n"
"  tasks/<task_id>/                every task\n"
"  by-status/<STATUS>/<task_id>/   tasks with one status\n"
"  by-type/<task_type>/<task_id>/  tasks of one type\n"
"\n"
"Inside a task folder every key of the task is a file or a folder:\n"
"strings, numbers and booleans are files holding the value and a newline;\n"
"objects are folders; an array of scalars is a file with one element per\n"
"line, any other array a folder with entries 0, 1, 2, ...; null keys are\n"
"left out. task.json holds the whole task as pretty-printed JSON.\n"
"\n"
"Query folders: under any listing folder, a folder named after a query\n"
"component lists the same tasks, refined. Components AND together:\n"
"\n"
"  FIELD=VALUE  FIELD!=VALUE     equal, not equal (FIELD may be dotted)\n"
"  FIELD:OP:VALUE                OP: eq ne gt gte lt lte in nin contains\n"
"                                starts_with ends_with regex exists\n"
"                                is_null text (in/nin: a,b,c)\n"
"  not:COND   COND|COND          negation, any of\n"
"  @search=TEXT  @sort=FIELD  @sort=-FIELD  @limit=N  @case=sensitive\n"
"\n"
"Values are typed (numbers, true, false, null); \"42\" in double quotes\n"
"is a string. %2F, %7C, %2C, %25 ... put any byte in a value. Examples:\n"
"\n"
"  ls tasks/status=FAILED/task_type=thumbnail/\n"
"  ls by-status/FAILED/additional_data.bucket_id=bkt_products/\n"
"  ls 'tasks/additional_data.object_count:gte:1000/not:status:in:"
"COMPLETED,CANCELED/'\n"
"  ls -U tasks/@sort=-created_at/@limit=20/\n"
"  grep -l OOM tasks/@search=oom/*/description\n"
"\n"
"Names that cannot be file names are escaped: '%' is %25, '/' is %2F,\n"
"'.' is %2E, '..' is %2E%2E, the empty name is %00, and a name longer than\n"
"255 bytes keeps 200 bytes followed by %~ and a 16-digit hash.\n"
"\n"
"A listing is fetched when its folder is first read and trusted for the\n"
"ttl given at mount time. Errors: EACCES when the API rejects the key,\n"
"ENOENT for an unknown task, EIO when the API fails or times out, EINVAL\n"
"for a malformed query folder, EROFS for any write. See mixpeekfs(1).\n";

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static double ttl_of(struct fs *fs)
{
	return (double)fs->opts->ttl;
}

/* ---- what a node is ---- */

/* A query folder: a listing folder inside another. */
static bool is_query(const struct node *n)
{
	return n->kind == NK_LISTING && n->parent->kind == NK_LISTING;
}

/* The request a listing folder stands for, parsed from its path. */
struct lquery {
	struct query q;
	const char *status;	/* of the folder the path starts in */
	const char *type;
	struct json_cond *conds;
	struct list_body b;
};

static void lquery_release(struct lquery *lq)
{
	query_release(&lq->q);
	free(lq->conds);
}

/* (Re)make the list body from the components. */
static int lquery_finish(struct lquery *lq)
{
	free(lq->conds);
	lq->conds = calloc(lq->q.nconds + 1, sizeof(*lq->conds));
	if (!lq->conds)
		return -ENOMEM;
	query_body(&lq->q, lq->status, lq->type, lq->conds, &lq->b);
	return 0;
}

static int lquery_get(const struct node *n, struct lquery *lq)
{
	const struct node *chain[64], *base = n;
	char err[256];
	size_t depth = 0;
	int res = 0;

	memset(lq, 0, sizeof(*lq));
	while (is_query(base) && depth < 64) {
		chain[depth++] = base;
		base = base->parent;
	}
	if (is_query(base))
		return -ENAMETOOLONG;
	/* from the top down: a deeper @sort or @limit wins */
	while (depth > 0 && !res)
		res = query_add(&lq->q, chain[--depth]->name, err, sizeof(err));
	if (res) {
		lquery_release(lq);
		return res == -ENOENT ? -EIO : res;
	}
	if (base->parent->kind == NK_GROUP) {
		if (base->group == STORE_STATUSES)
			lq->status = node_value(base);
		else
			lq->type = node_value(base);
	}
	res = lquery_finish(lq);
	if (res)
		lquery_release(lq);
	return res;
}

/* The listing behind folder n: fetched if needed, or only if cached. */
static int node_listing(const struct node *n, bool fetch,
			struct listing **out)
{
	struct lquery lq;
	int res = lquery_get(n, &lq);

	if (res)
		return res;
	res = fetch ? store_listing(&lq.b, lq.q.limit, out) :
	      store_listing_peek(&lq.b, lq.q.limit, out);
	lquery_release(&lq);
	return res;
}

/* Whether task t belongs in listing node n (not a query folder). */
static bool listing_admits(const struct node *n, const struct task *t)
{
	if (n->parent->kind != NK_GROUP)
		return true;
	if (n->group == STORE_STATUSES)
		return !strcmp(t->status, node_value(n));
	return !strcmp(t->type, node_value(n));
}

/* A task record, its tree, and the tree node a fs node stands for. */
struct view {
	struct task *task;
	struct ttree *tree;
	const struct tnode *at;
};

static void view_release(struct view *v)
{
	ttree_unref(v->tree);
	task_unref(v->task);
	memset(v, 0, sizeof(*v));
}

/*
 * Fill v for node n (NK_TASK, NK_FIELD or NK_TASKJSON), or with name set,
 * for n's child of that name. With tree unset, only the task record.
 */
static int view_get(const struct node *n, const char *name, bool tree,
		    struct view *v)
{
	const struct node *tn = node_task(n);
	struct buf rel = BUF_INIT(SIZE_MAX / 2);
	int res;

	memset(v, 0, sizeof(*v));
	if (!tn)
		return -EIO;
	res = store_task(node_value(tn), &v->task);
	if (res || !tree)
		return res;
	res = ttree_get(v->task, &v->tree);
	if (res) {
		log_err("task '%s': stored JSON does not parse",
			node_value(tn));
		view_release(v);
		return -EIO;
	}
	res = node_relpath(n, &rel);
	if (!res && name)
		res = rel.len ? buf_printf(&rel, "/%s", name) :
		      buf_addstr(&rel, name);
	if (!res)
		res = tnode_walk(v->tree->root, buf_str(&rel), &v->at);
	buf_release(&rel);
	if (res)
		view_release(v);
	return res == -ENOTDIR ? -ENOENT : res;
}

static void fill_dir(struct fs *fs, struct stat *st, time_t when)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtime = st->st_ctime = st->st_atime = when;
}

static void fill_file(struct fs *fs, struct stat *st, off_t size,
		      time_t when)
{
	fill_dir(fs, st, when);
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = size;
	st->st_blocks = (size + 511) / 512;
}

/* Render the bytes of a file node into out. */
static int node_render(struct node *n, struct buf *out, time_t *when)
{
	struct view v;
	int res;

	if (n->kind == NK_README) {
		*when = 0;
		return buf_addstr(out, readme_text);
	}
	res = view_get(n, NULL, n->kind == NK_FIELD, &v);
	if (res)
		return res;
	*when = v.task->changed;
	if (n->kind == NK_TASKJSON) {
		struct buf json = BUF_INIT(SIZE_MAX / 2);

		res = task_json(v.task, &json);
		if (!res)
			res = json_pretty(buf_str(&json), json.len, out);
		buf_release(&json);
	}
	else if (tnode_view(v.at) == TV_FILE)
		res = tnode_render(v.at, out);
	else
		res = -EISDIR;
	view_release(&v);
	return res;
}

/*
 * A listing folder's attributes. Its mtime says when its tasks last
 * changed; a stale listing is refreshed here, because the kernel serves
 * the folder from its cache until the mtime moves. A listing never
 * fetched costs nothing (by-status/ must list without a request).
 */
static int listing_stat(struct fs *fs, struct node *n, struct stat *st)
{
	struct listing *l = NULL;
	int res;

	fill_dir(fs, st, fs->started);
	if (node_listing(n, false, &l))
		return 0;
	if (!store_fresh(l->fetched)) {
		listing_unref(l);
		res = node_listing(n, true, &l);
		if (res)
			return res;
	}
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = l->changed;
	st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = l->version % 1000000000;
	listing_unref(l);
	return 0;
}

/* The attributes of the tree node a view stands at. */
static int view_stat(struct fs *fs, const struct view *v, struct stat *st)
{
	struct buf b = BUF_INIT(SIZE_MAX / 2);
	int res;

	if (tnode_view(v->at) == TV_DIR) {
		fill_dir(fs, st, v->task->changed);
		return 0;
	}
	res = tnode_render(v->at, &b);
	if (!res)
		fill_file(fs, st, (off_t)b.len, v->task->changed);
	buf_release(&b);
	return res;
}

static int node_stat(struct fs *fs, struct node *n, struct stat *st)
{
	struct buf b = BUF_INIT(SIZE_MAX / 2);
	struct view v;
	time_t when = fs->started;
	int res = 0;

	switch (n->kind) {
	case NK_ROOT:
	case NK_GROUP:
		fill_dir(fs, st, fs->started);
		break;
	case NK_LISTING:
		res = listing_stat(fs, n, st);
		break;
	case NK_TASK:
		res = view_get(n, NULL, false, &v);
		if (!res) {
			fill_dir(fs, st, v.task->changed);
			view_release(&v);
		}
		break;
	case NK_FIELD:
		res = view_get(n, NULL, true, &v);
		if (!res) {
			res = view_stat(fs, &v, st);
			view_release(&v);
		}
		break;
	case NK_README:
	case NK_TASKJSON:
		res = node_render(n, &b, &when);
		if (!res)
			fill_file(fs, st, (off_t)b.len,
				  when ? when : fs->started);
		buf_release(&b);
		break;
	}
	if (!res)
		st->st_ino = node_ino(&fs->nodes, n);
	return res;
}

/* ---- lookup ---- */

static int root_entry(const char *name, enum nkind *kind, int *group)
{
	*group = 0;
	if (!strcmp(name, "README"))
		*kind = NK_README;
	else if (!strcmp(name, "tasks"))
		*kind = NK_LISTING;
	else if (!strcmp(name, "by-status"))
		*kind = NK_GROUP, *group = STORE_STATUSES;
	else if (!strcmp(name, "by-type"))
		*kind = NK_GROUP, *group = STORE_TYPES;
	else
		return -ENOENT;
	return 0;
}

/* The raw value behind an escaped group entry name, malloc'd. */
static int group_value(const struct node *group, const char *name,
		       char **value)
{
	char esc[TREE_NAME_MAX + 1], **names;
	size_t n, i;
	int res;

	res = store_values(group->group, &names, &n);
	if (res)
		return res;
	res = -ENOENT;
	for (i = 0; i < n && res; i++) {
		tree_name_escape(names[i], esc);
		if (!strcmp(esc, name)) {
			*value = names[i];
			names[i] = NULL;
			res = 0;
		}
	}
	store_values_free(names, n);
	return res;
}

/* The raw task id behind an escaped name in a listing, malloc'd. */
static int listing_id(const struct listing *l, const char *name, char **id)
{
	char esc[TREE_NAME_MAX + 1];
	size_t i;

	if (!strstr(name, "%~"))
		return tree_name_unescape(name, id) ? -ENOENT : 0;
	for (i = 0; l && i < l->n; i++) {
		tree_name_escape(l->ids[i], esc);
		if (!strcmp(esc, name)) {
			*id = strdup(l->ids[i]);
			return *id ? 0 : -ENOMEM;
		}
	}
	return -ENOENT;
}

/* Whether the task behind name is in listing node parent; *id malloc'd. */
static int lookup_listing(struct node *parent, const char *name, char **id)
{
	struct listing *l = NULL;
	struct task *t;
	int res;

	/* a query's members are known only from its listing */
	res = node_listing(parent, is_query(parent), &l);
	if (is_query(parent) && res)
		return res;
	if (l && !store_fresh(l->fetched) && !is_query(parent)) {
		listing_unref(l);
		l = NULL;
	}
	res = listing_id(l, name, id);
	if (res)
		goto out;
	if (l && listing_has(l, *id)) {
		res = 0;
	} else if (l && (parent->parent->kind == NK_GROUP ||
			 is_query(parent))) {
		res = -ENOENT;	/* a fresh listing says it is not here */
	} else {
		/* tasks/ admits any task the API knows */
		res = store_task(*id, &t);
		if (!res) {
			if (!listing_admits(parent, t))
				res = -ENOENT;
			task_unref(t);
		}
	}
out:
	if (l)
		listing_unref(l);
	if (res) {
		free(*id);
		*id = NULL;
	}
	return res;
}

/* A child of a folder inside a task; fills st unless it is task.json. */
/*
 * Whether name is a query folder under listing folder parent: 0 if so,
 * -ENOENT if it is not a query component (it may be a task), -EINVAL if
 * it is a malformed one (logged). A regular expression is checked by the
 * API itself: the folder's listing is fetched now, and a 422 is EINVAL.
 */
static int lookup_query(struct node *parent, const char *name)
{
	struct listing *l;
	struct lquery lq;
	char err[256];
	int res;

	res = lquery_get(parent, &lq);
	if (res)
		return res;
	res = query_add(&lq.q, name, err, sizeof(err));
	if (res == -EINVAL)
		log_err("query folder '%s': %s", name, err);
	if (!res && strstr(name, ":regex:")) {
		res = lquery_finish(&lq);
		if (!res)
			res = store_listing(&lq.b, lq.q.limit, &l);
		if (!res)
			listing_unref(l);
	}
	lquery_release(&lq);
	return res;
}

static int lookup_in_task(struct fs *fs, struct node *parent,
			  const char *name, enum nkind *kind, struct stat *st)
{
	struct view v;
	int res;

	if (parent->kind == NK_TASK && !strcmp(name, TASK_JSON)) {
		*kind = NK_TASKJSON;
		return 0;
	}
	*kind = NK_FIELD;
	res = view_get(parent, name, true, &v);
	if (!res) {
		res = view_stat(fs, &v, st);
		view_release(&v);
	}
	return res;
}

static int node_render(struct node *n, struct buf *out, time_t *when);

static void push_one(struct fs *fs, struct node *n, bool *again)
{
	struct buf b = BUF_INIT(PUSH_MAX);
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);
	time_t when;
	int res;

	res = node_render(n, &b, &when);
	if (!res && b.len) {
		bv.buf[0].mem = b.data;
		bv.buf[0].size = b.len;
		res = fuse_lowlevel_notify_store(fs->se, node_ino(&fs->nodes, n),
						 0, &bv, 0);
	}
	buf_release(&b);
	*again = res == -ENOENT;
}

static void *pusher_main(void *arg)
{
	struct fs *fs = arg;
	struct pusher *p = &fs->push;
	struct node *batch[PUSH_QUEUE], *retry[PUSH_QUEUE];
	size_t i, n, nr;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (!p->n) {
			pthread_cond_wait(&p->wake, &p->lock);
			continue;
		}
		n = p->n;
		memcpy(batch, p->q, n * sizeof(*batch));
		p->n = 0;
		pthread_mutex_unlock(&p->lock);
		for (i = nr = 0; i < n; i++) {
			bool again;

			push_one(fs, batch[i], &again);
			if (again)
				retry[nr++] = batch[i];
			else
				node_forget(&fs->nodes, batch[i], 1);
		}
		/* the inode appears when the lookup's caller runs again */
		if (nr)
			usleep(1000);
		for (i = 0; i < nr; i++) {
			bool again;

			push_one(fs, retry[i], &again);
			node_forget(&fs->nodes, retry[i], 1);
		}
		pthread_mutex_lock(&p->lock);
	}
	for (i = 0; i < p->n; i++)
		node_forget(&fs->nodes, p->q[i], 1);
	p->n = 0;
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Queue a file the kernel just looked up; a full queue drops it. */
static void push_add(struct fs *fs, struct node *n)
{
	struct pusher *p = &fs->push;

	pthread_mutex_lock(&p->lock);
	if (p->running && p->n < PUSH_QUEUE) {
		node_hold(&fs->nodes, n);
		p->q[p->n++] = n;
		pthread_cond_signal(&p->wake);
	}
	pthread_mutex_unlock(&p->lock);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct node *parent = node_get(&fs->nodes, pino), *n;
	struct fuse_entry_param e;
	enum nkind kind = NK_FIELD;
	char *value = NULL;
	int group = 0, res;

	if (!parent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	memset(&e, 0, sizeof(e));
	switch (parent->kind) {
	case NK_ROOT:
		res = root_entry(name, &kind, &group);
		break;
	case NK_GROUP:
		res = group_value(parent, name, &value);
		kind = NK_LISTING;
		group = parent->group;
		break;
	case NK_LISTING:
		res = lookup_query(parent, name);
		if (res == 0) {
			kind = NK_LISTING;
			break;
		}
		if (res == -ENOENT)
			res = lookup_listing(parent, name, &value);
		kind = NK_TASK;
		break;
	case NK_TASK:
	case NK_FIELD:
		res = lookup_in_task(fs, parent, name, &kind, &e.attr);
		break;
	default:
		res = -ENOTDIR;
		break;
	}
	e.attr_timeout = ttl_of(fs);
	e.entry_timeout = ttl_of(fs);
	if (res == -ENOENT) {
		fuse_reply_entry(req, &e);	/* cached as absent for ttl */
		goto out;
	}
	if (res) {
		fuse_reply_err(req, -res);
		goto out;
	}
	n = node_child(&fs->nodes, parent, name, kind, group, value);
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		goto out;
	}
	/* a lookup inside a task has the attributes already */
	res = e.attr.st_mode ? 0 : node_stat(fs, n, &e.attr);
	e.ino = node_ino(&fs->nodes, n);
	e.attr.st_ino = e.ino;
	if (res) {
		node_forget(&fs->nodes, n, 1);
		fuse_reply_err(req, -res);
	} else if (fuse_reply_entry(req, &e)) {
		node_forget(&fs->nodes, n, 1);
	} else if (S_ISREG(e.attr.st_mode) && e.attr.st_size > 0 &&
		   e.attr.st_size <= PUSH_MAX) {
		push_add(fs, n);
	}
out:
	free(value);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);
	struct node *n = node_get(&fs->nodes, ino);

	if (n)
		node_forget(&fs->nodes, n, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	size_t i;

	for (i = 0; i < count; i++) {
		struct node *n = node_get(&fs->nodes, forgets[i].ino);

		if (n)
			node_forget(&fs->nodes, n, forgets[i].nlookup);
	}
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *n = node_get(&fs->nodes, ino);
	struct stat st;
	int res;

	(void)fi;
	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	res = node_stat(fs, n, &st);
	if (res)
		fuse_reply_err(req, -res);
	else
		fuse_reply_attr(req, &st, ttl_of(fs));
}

/* ---- directories ---- */

/*
 * A folder's entries as of one readdir from offset 0, kept on the node so
 * later offsets see the same list (the kernel sends no OPENDIR, so there
 * is no handle to keep it on).
 */
struct dent {
	char *name;
	enum nkind kind;
	int group;
	char *value;
	struct stat st;		/* st_mode 0: ask node_stat */
};

struct dirsnap {
	unsigned refs;			/* atomic */
	struct listing *listing;	/* NK_LISTING: the entries */
	struct dent *ents;		/* other folders */
	size_t n;
};

static void *dirsnap_ref(void *p)
{
	struct dirsnap *d = p;

	__atomic_add_fetch(&d->refs, 1, __ATOMIC_RELAXED);
	return d;
}

static void dirsnap_unref(void *p)
{
	struct dirsnap *d = p;
	size_t i;

	if (!d || __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL))
		return;
	if (d->listing)
		listing_unref(d->listing);
	for (i = 0; d->ents && i < d->n; i++) {
		free(d->ents[i].name);
		free(d->ents[i].value);
	}
	free(d->ents);
	free(d);
}

static int snap_root(struct fs *fs, struct dirsnap *d)
{
	static const char *const names[] = {
		"README", "by-status", "by-type", "tasks"
	};
	size_t i;

	d->ents = calloc(4, sizeof(*d->ents));
	if (!d->ents)
		return -ENOMEM;
	for (i = 0; i < 4; i++) {
		struct dent *e = &d->ents[d->n++];

		if (!(e->name = strdup(names[i])))
			return -ENOMEM;
		root_entry(names[i], &e->kind, &e->group);
		if (e->kind != NK_README)
			fill_dir(fs, &e->st, fs->started);
	}
	return 0;
}

static int snap_group(struct fs *fs, struct node *n, struct dirsnap *d)
{
	char **names;
	size_t count, i;
	int res;

	res = store_values(n->group, &names, &count);
	if (res)
		return res;
	d->ents = calloc(count + 1, sizeof(*d->ents));
	if (!d->ents) {
		store_values_free(names, count);
		return -ENOMEM;
	}
	for (i = 0; i < count; i++) {
		char esc[TREE_NAME_MAX + 1];
		struct dent *e = &d->ents[d->n++];

		tree_name_escape(names[i], esc);
		e->name = strdup(esc);
		e->value = names[i];
		names[i] = NULL;
		e->kind = NK_LISTING;
		e->group = n->group;
		fill_dir(fs, &e->st, fs->started);
		if (!e->name)
			break;
	}
	store_values_free(names, count);
	return i < count ? -ENOMEM : 0;
}

static int snap_task(struct fs *fs, struct node *n, struct dirsnap *d)
{
	const struct tnode *c = NULL;
	struct view v;
	size_t count = 1;
	int res;

	res = view_get(n, NULL, true, &v);
	if (res)
		return res;
	if (tnode_view(v.at) != TV_DIR) {
		view_release(&v);
		return -ENOTDIR;
	}
	while ((c = tnode_next_shown(v.at, c)))
		count++;
	d->ents = calloc(count, sizeof(*d->ents));
	if (!d->ents) {
		view_release(&v);
		return -ENOMEM;
	}
	while ((c = tnode_next_shown(v.at, c))) {
		char name[TREE_NAME_MAX + 1];
		struct dent *e = &d->ents[d->n];
		struct buf b = BUF_INIT(SIZE_MAX / 2);

		tnode_name(c, name);
		if (n->kind == NK_TASK && !strcmp(name, TASK_JSON))
			continue;	/* the whole-task file wins */
		if (!(e->name = strdup(name))) {
			view_release(&v);
			return -ENOMEM;
		}
		e->kind = NK_FIELD;
		/* the tree is at hand: size the entry now, for readdirplus */
		if (tnode_view(c) == TV_DIR) {
			fill_dir(fs, &e->st, v.task->changed);
		} else if (!tnode_render(c, &b)) {
			fill_file(fs, &e->st, (off_t)b.len, v.task->changed);
			buf_release(&b);
		}
		d->n++;
	}
	if (n->kind == NK_TASK) {
		struct dent *e = &d->ents[d->n++];

		e->name = strdup(TASK_JSON);
		e->kind = NK_TASKJSON;
		if (!e->name) {
			view_release(&v);
			return -ENOMEM;
		}
	}
	view_release(&v);
	return 0;
}

static int snap_new(struct fs *fs, struct node *n, struct dirsnap **out)
{
	struct dirsnap *d = calloc(1, sizeof(*d));
	int res;

	if (!d)
		return -ENOMEM;
	d->refs = 1;
	switch (n->kind) {
	case NK_ROOT:
		res = snap_root(fs, d);
		break;
	case NK_GROUP:
		res = snap_group(fs, n, d);
		break;
	case NK_LISTING:
		res = node_listing(n, true, &d->listing);
		break;
	case NK_TASK:
	case NK_FIELD:
		res = snap_task(fs, n, d);
		break;
	default:
		res = -ENOTDIR;
		break;
	}
	if (res) {
		dirsnap_unref(d);
		return res;
	}
	*out = d;
	return 0;
}

/* The snapshot to read from: a new one at offset 0, else the node's. */
static int snap_get(struct fs *fs, struct node *n, off_t off,
		    struct dirsnap **out)
{
	struct dirsnap *d;
	int res;

	if (off > 0 && (d = node_get_cache(&fs->nodes, n, dirsnap_ref))) {
		*out = d;
		return 0;
	}
	res = snap_new(fs, n, &d);
	if (res)
		return res;
	dirsnap_unref(node_swap_cache(&fs->nodes, n, dirsnap_ref(d)));
	*out = d;
	return 0;
}

static size_t dirsnap_count(const struct dirsnap *d)
{
	return d->listing ? d->listing->n : d->n;
}

/* Entry i's name, node fields and (when known) attributes. */
static void dirsnap_entry(struct fs *fs, const struct dirsnap *d, size_t i,
			  char *name, struct dent *out)
{
	struct task *t;

	if (!d->listing) {
		*out = d->ents[i];
		snprintf(name, TREE_NAME_MAX + 1, "%s", out->name);
		return;
	}
	memset(out, 0, sizeof(*out));
	tree_name_escape(d->listing->ids[i], name);
	out->kind = NK_TASK;
	out->value = (char *)d->listing->ids[i];
	t = store_task_peek(d->listing->ids[i]);
	fill_dir(fs, &out->st, t ? t->changed : d->listing->fetched);
	task_unref(t);
}

static mode_t kind_mode(enum nkind kind)
{
	switch (kind) {
	case NK_README:
	case NK_TASKJSON:
		return S_IFREG;
	case NK_FIELD:
		return 0;	/* file or folder: unknown without the task */
	default:
		return S_IFDIR;
	}
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, bool plus)
{
	struct fs *fs = fs_of(req);
	struct node *dir = node_get(&fs->nodes, ino);
	char name[TREE_NAME_MAX + 1], *buf;
	struct dirsnap *d;
	size_t used = 0, total, i;
	int res;

	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	res = snap_get(fs, dir, off, &d);
	if (res) {
		fuse_reply_err(req, -res);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		dirsnap_unref(d);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	total = dirsnap_count(d) + 2;
	for (i = (size_t)off; i < total; i++) {
		struct fuse_entry_param e;
		struct node *n = NULL;
		struct dent de;
		size_t len;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			strcpy(name, i ? ".." : ".");
			fill_dir(fs, &e.attr, fs->started);
			e.attr.st_ino = i ? FUSE_ROOT_ID : ino;
		} else if (plus) {
			dirsnap_entry(fs, d, i - 2, name, &de);
			n = node_child(&fs->nodes, dir, name, de.kind,
				       de.group, de.value);
			if (!n)
				break;
			e.attr = de.st;
			if (!e.attr.st_mode && node_stat(fs, n, &e.attr)) {
				node_forget(&fs->nodes, n, 1);
				continue;	/* gone meanwhile: leave out */
			}
			e.attr.st_ino = node_ino(&fs->nodes, n);
			e.ino = node_ino(&fs->nodes, n);
			e.attr_timeout = ttl_of(fs);
			e.entry_timeout = ttl_of(fs);
		} else {
			dirsnap_entry(fs, d, i - 2, name, &de);
			e.attr.st_mode = de.st.st_mode ? de.st.st_mode :
					 kind_mode(de.kind);
			/* any non-zero number: d_ino 0 reads as deleted */
			e.attr.st_ino = (ino_t)-1 - i;
		}
		if (plus)
			len = fuse_add_direntry_plus(req, buf + used,
						     size - used, name, &e,
						     (off_t)i + 1);
		else
			len = fuse_add_direntry(req, buf + used, size - used,
						name, &e.attr, (off_t)i + 1);
		if (len > size - used) {
			if (n)
				node_forget(&fs->nodes, n, 1);
			break;
		}
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
	if (used == 0 && off > 0) {
		/* read to the end: the kernel has it all, keep nothing */
		struct dirsnap *old = node_get_cache(&fs->nodes, dir,
						     dirsnap_ref);

		if (old == d)
			dirsnap_unref(node_swap_cache(&fs->nodes, dir, NULL));
		if (old)
			dirsnap_unref(old);
	}
	dirsnap_unref(d);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, false);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, true);
}

/*
 * ENOSYS tells the kernel that OPENDIR is not needed (NO_OPENDIR_SUPPORT):
 * it then sends no OPENDIR or RELEASEDIR, and keeps folder entries until
 * the folder's mtime moves. A warm `find` costs no round trip per folder.
 */
static void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	if (fs_of(req)->no_opendir)
		fuse_reply_err(req, ENOSYS);
	else
		fuse_reply_open(req, fi);
}

/* ---- files ---- */

/*
 * ENOSYS tells the kernel that open is not needed (FUSE_CAP_NO_OPEN_SUPPORT):
 * from then on it sends no OPEN, FLUSH or RELEASE, and keeps file pages
 * until the file's mtime or size changes.
 */
static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->keep_cache = 1;
	if (fs_of(req)->no_open)
		fuse_reply_err(req, ENOSYS);
	else
		fuse_reply_open(req, fi);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *n = node_get(&fs->nodes, ino);
	struct buf b = BUF_INIT(SIZE_MAX / 2);
	time_t when;
	int res;

	(void)fi;
	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	res = node_render(n, &b, &when);
	if (res) {
		fuse_reply_err(req, -res);
		return;
	}
	if (off < 0 || (size_t)off >= b.len)
		size = 0;
	else if (size > b.len - (size_t)off)
		size = b.len - (size_t)off;
	fuse_reply_buf(req, size ? buf_str(&b) + off : NULL, size);
	buf_release(&b);
}

/* ---- everything that would write ---- */

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)ino; (void)attr; (void)to_set; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent; (void)name; (void)mode;
	fuse_reply_err(req, EROFS);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent; (void)name;
	fuse_reply_err(req, EROFS);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)parent; (void)name; (void)newparent; (void)newname; (void)flags;
	fuse_reply_err(req, EROFS);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent; (void)name; (void)mode; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = TREE_NAME_MAX;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* readdirplus always: attributes come with the entries */
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
		fs->no_open = true;
	}
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
		fs->no_opendir = true;
	}
	/* lookups in one folder may run side by side */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init		= fs_init,
	.lookup		= fs_lookup,
	.forget		= fs_forget,
	.forget_multi	= fs_forget_multi,
	.getattr	= fs_getattr,
	.setattr	= fs_setattr,
	.mkdir		= fs_mkdir,
	.unlink		= fs_unlink,
	.rmdir		= fs_unlink,
	.rename		= fs_rename,
	.create		= fs_create,
	.open		= fs_open,
	.read		= fs_read,
	.opendir	= fs_opendir,
	.readdir	= fs_readdir,
	.readdirplus	= fs_readdirplus,
	.statfs		= fs_statfs,
};

/* ---- lifecycle ---- */

__attribute__((format(printf, 2, 0)))
static void fuse_log_to_ours(enum fuse_log_level level, const char *fmt,
			     va_list ap)
{
	char line[512];
	size_t len;

	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	if (len && line[len - 1] == '\n')
		line[len - 1] = '\0';
	log_msg((int)level, "%s", line);
}

int fs_new(int argc, char **argv, struct options *o, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	struct fuse_args a = FUSE_ARGS_INIT(argc, argv);

	if (!fs)
		return -1;
	fs->args = a;
	fs->opts = o;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->started = time(NULL);
	pthread_mutex_init(&fs->push.lock, NULL);
	pthread_cond_init(&fs->push.wake, NULL);
	*out = fs;
	if (node_table_init(&fs->nodes, dirsnap_unref)) {
		fprintf(stderr, "mixpeekfs: out of memory\n");
		return -1;
	}
	if (opts_parse(&fs->args, o))
		return -1;
	if (fuse_parse_cmdline(&fs->args, &fs->cmd))
		return -1;
	if (fs->cmd.show_help) {
		opts_print_help();
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		return 1;
	}
	if (fs->cmd.show_version) {
		printf("mixpeekfs version %s\n", PACKAGE_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		return 1;
	}
	if (!fs->cmd.mountpoint) {
		fprintf(stderr, "mixpeekfs: no mountpoint given "
			"(see mixpeekfs --help)\n");
		return -1;
	}
	if (fs->cmd.debug)
		o->debug = 1;
	return 0;
}

const char *fs_mountpoint(const struct fs *fs)
{
	return fs->cmd.mountpoint;
}

int fs_foreground(const struct fs *fs)
{
	return fs->cmd.foreground;
}

int fs_mount(struct fs *fs)
{
	char *host = opts_url_host(fs->opts->url), *fsopts = NULL;

	if (!host ||
	    asprintf(&fsopts, "-oro,default_permissions,fsname=mixpeekfs:%s,"
		     "subtype=mixpeekfs", host) < 0 ||
	    fuse_opt_add_arg(&fs->args, fsopts)) {
		free(host);
		fprintf(stderr, "mixpeekfs: out of memory\n");
		return -1;
	}
	free(fsopts);
	free(host);
	fuse_set_log_func(fuse_log_to_ours);
	fs->se = fuse_session_new(&fs->args, &fs_ops, sizeof(fs_ops), fs);
	if (!fs->se)
		return -1;
	if (fuse_set_signal_handlers(fs->se))
		return -1;
	if (fuse_session_mount(fs->se, fs->cmd.mountpoint))
		return -1;
	fs->mounted = true;
	return 0;
}

int fs_daemonize(struct fs *fs)
{
	if (fuse_daemonize(fs->cmd.foreground))
		return -1;
	if (!fs->cmd.foreground)
		log_use_syslog();
	return 0;
}

/* The loop returns the signal that ended it: those are a clean exit. */
static int loop_result(int res)
{
	return res == 0 || res == SIGTERM || res == SIGINT || res == SIGHUP ?
	       0 : -1;
}

static void pusher_start(struct fs *fs)
{
	struct pusher *p = &fs->push;

	pthread_mutex_lock(&p->lock);
	p->running = !pthread_create(&p->thread, NULL, pusher_main, fs);
	pthread_mutex_unlock(&p->lock);
}

static void pusher_stop(struct fs *fs)
{
	struct pusher *p = &fs->push;
	bool running;

	pthread_mutex_lock(&p->lock);
	running = p->running;
	p->running = false;
	p->stop = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	if (running)
		pthread_join(p->thread, NULL);
}

static int run_loop(struct fs *fs)
{
	struct fuse_loop_config *cfg;
	int res;

	if (fs->cmd.singlethread)
		return fuse_session_loop(fs->se);
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)fs->cmd.clone_fd);
	/* (unsigned)-1 means "not given": keep libfuse's defaults */
	if (fs->cmd.max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(cfg, fs->cmd.max_idle_threads);
	if (fs->cmd.max_threads != UINT_MAX && fs->cmd.max_threads > 0)
		fuse_loop_cfg_set_max_threads(cfg, fs->cmd.max_threads);
	res = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return res;
}

int fs_run(struct fs *fs)
{
	int res;

	pusher_start(fs);
	res = run_loop(fs);
	pusher_stop(fs);
	return loop_result(res);
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	if (fs->se) {
		if (fs->mounted)
			fuse_session_unmount(fs->se);
		fuse_remove_signal_handlers(fs->se);
		fuse_session_destroy(fs->se);
	}
	node_table_release(&fs->nodes);
	pthread_cond_destroy(&fs->push.wake);
	pthread_mutex_destroy(&fs->push.lock);
	free(fs->cmd.mountpoint);
	fuse_opt_free_args(&fs->args);
	free(fs);
}
