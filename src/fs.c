// SPDX-License-Identifier: MIT
/*
 * fs: the FUSE low-level operations. Every path is a node in an inode
 * table; the kernel's lookup counts decide when a node goes away. Task
 * data is never kept here: each operation asks the store for the task
 * record and renders what it needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <uthash.h>

#include "config.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "store.h"
#include "tree.h"

/*
 * The bytes of a file as rendered at its last open. Kept on the node, not
 * on the file handle: the kernel may still be reading ahead on a handle
 * it has already released.
 */
struct filebuf {
	unsigned refs;		/* atomic */
	size_t len;
	char data[];
};

static void filebuf_unref(struct filebuf *f)
{
	if (f && __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(f);
}

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
	fuse_ino_t ino;
	uint64_t nlookup;	/* protected by fs->lock */
	unsigned children;	/* protected by fs->lock */
	struct node *parent;
	enum nkind kind;
	char *name;		/* escaped, as shown */
	char *key;		/* "<parent ino>/<name>" */
	int group;		/* NK_GROUP, NK_LISTING: enum store_values */
	char *value;		/* NK_LISTING under a group: status or type */
	char *task_id;		/* NK_TASK and below: the raw id */
	char *relpath;		/* NK_FIELD: escaped names below the task */
	struct filebuf *content; /* protected by fs->lock; set by open */
	UT_hash_handle hh;	/* by ino */
	UT_hash_handle hn;	/* by key */
};

struct fs {
	struct options *opts;
	struct fuse_args args;
	struct fuse_cmdline_opts cmd;
	struct fuse_session *se;
	bool mounted;
	pthread_mutex_t lock;
	struct node *by_ino;	/* protected by lock */
	struct node *by_key;	/* protected by lock */
	fuse_ino_t next_ino;	/* protected by lock */
	struct node *root;
	uid_t uid;
	gid_t gid;
	time_t started;
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
"Names that cannot be file names are escaped: '%' is %25, '/' is %2F,\n"
"'.' is %2E, '..' is %2E%2E, the empty name is %00, and a name longer than\n"
"255 bytes keeps 200 bytes followed by %~ and a 16-digit hash.\n"
"\n"
"A listing is fetched when its folder is first read and trusted for the\n"
"ttl given at mount time. Errors: EACCES when the API rejects the key,\n"
"ENOENT for an unknown task, EIO when the API fails or times out, EROFS\n"
"for any write. See mixpeekfs(1).\n";

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- the node table ---- */

static void node_free(struct node *n)
{
	filebuf_unref(n->content);
	free(n->name);
	free(n->key);
	free(n->value);
	free(n->task_id);
	free(n->relpath);
	free(n);
}

static struct node *node_by_ino(struct fs *fs, fuse_ino_t ino)
{
	struct node *n;

	pthread_mutex_lock(&fs->lock);
	HASH_FIND(hh, fs->by_ino, &ino, sizeof(ino), n);
	pthread_mutex_unlock(&fs->lock);
	return n;
}

static char *node_key(fuse_ino_t parent, const char *name)
{
	char *k;

	return asprintf(&k, "%lu/%s", (unsigned long)parent, name) < 0 ?
	       NULL : k;
}

/* Fields a new child inherits or sets; strings are copied. */
struct node_init {
	enum nkind kind;
	int group;
	const char *value;
	const char *task_id;
	const char *relpath;
};

/*
 * The child of parent called name, created from ni if new; the kernel's
 * lookup count goes up by one when counted is set. NULL on ENOMEM.
 */
static struct node *node_child(struct fs *fs, struct node *parent,
			       const char *name, const struct node_init *ni,
			       bool counted)
{
	char *key = node_key(parent->ino, name);
	struct node *n;

	if (!key)
		return NULL;
	pthread_mutex_lock(&fs->lock);
	HASH_FIND(hn, fs->by_key, key, strlen(key), n);
	if (n) {
		free(key);
		goto found;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		goto fail;
	n->key = key;
	n->kind = ni->kind;
	n->group = ni->group;
	n->parent = parent;
	n->name = strdup(name);
	n->value = ni->value ? strdup(ni->value) : NULL;
	n->task_id = ni->task_id ? strdup(ni->task_id) : NULL;
	n->relpath = ni->relpath ? strdup(ni->relpath) : NULL;
	if (!n->name || (ni->value && !n->value) ||
	    (ni->task_id && !n->task_id) || (ni->relpath && !n->relpath)) {
		node_free(n);
		n = NULL;
		goto fail;
	}
	n->ino = fs->next_ino++;
	parent->children++;
	HASH_ADD(hh, fs->by_ino, ino, sizeof(n->ino), n);
	HASH_ADD_KEYPTR(hn, fs->by_key, n->key, strlen(n->key), n);
found:
	if (counted)
		n->nlookup++;
	pthread_mutex_unlock(&fs->lock);
	return n;
fail:
	pthread_mutex_unlock(&fs->lock);
	if (!n)
		free(key);
	return NULL;
}

/* Drop nlookup references; free nodes nobody refers to. Lock held. */
static void node_forget_locked(struct fs *fs, struct node *n, uint64_t count)
{
	n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
	while (n != fs->root && n->nlookup == 0 && n->children == 0) {
		struct node *parent = n->parent;

		HASH_DELETE(hh, fs->by_ino, n);
		HASH_DELETE(hn, fs->by_key, n);
		node_free(n);
		parent->children--;
		n = parent;
	}
}

/* ---- what a node is ---- */

static void listing_query(const struct node *n, struct list_body *q)
{
	memset(q, 0, sizeof(*q));
	if (n->value && n->group == STORE_STATUSES)
		q->status = n->value;
	else if (n->value && n->group == STORE_TYPES)
		q->task_type = n->value;
}

/* Whether task t belongs in listing node n (for a lookup without one). */
static bool listing_admits(const struct node *n, const struct task *t)
{
	if (!n->value)
		return true;
	if (n->group == STORE_STATUSES)
		return !strcmp(t->status, n->value);
	return !strcmp(t->type, n->value);
}

/* A task's tree and the node at relpath inside it. */
struct view {
	struct task *task;
	struct tnode *root;
	const struct tnode *at;
};

static void view_release(struct view *v)
{
	tnode_free(v->root);
	task_unref(v->task);
	memset(v, 0, sizeof(*v));
}

static int view_get(const char *task_id, const char *relpath, bool tree,
		    struct view *v)
{
	int res;

	memset(v, 0, sizeof(*v));
	res = store_task(task_id, &v->task);
	if (res || !tree)
		return res;
	res = json_to_tree(v->task->json, v->task->json_len, &v->root);
	if (res) {
		log_err("task '%s': stored JSON does not parse", task_id);
		view_release(v);
		return -EIO;
	}
	res = tnode_walk(v->root, relpath ? relpath : "", &v->at);
	if (res)
		view_release(v);
	return res;
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

/* Render the bytes of a file node into out (for open and for sizes). */
static int node_render(struct node *n, struct buf *out, time_t *when)
{
	struct view v;
	int res;

	if (n->kind == NK_README) {
		*when = 0;
		return buf_addstr(out, readme_text);
	}
	res = view_get(n->task_id, n->relpath, n->kind == NK_FIELD, &v);
	if (res)
		return res;
	*when = v.task->changed;
	if (n->kind == NK_TASKJSON)
		res = json_pretty(v.task->json, v.task->json_len, out);
	else if (tnode_view(v.at) == TV_FILE)
		res = tnode_render(v.at, out);
	else
		res = -EISDIR;
	view_release(&v);
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
	case NK_LISTING:
		fill_dir(fs, st, fs->started);
		break;
	case NK_TASK:
		res = view_get(n->task_id, NULL, false, &v);
		if (!res) {
			fill_dir(fs, st, v.task->changed);
			view_release(&v);
		}
		break;
	case NK_FIELD:
		res = view_get(n->task_id, n->relpath, true, &v);
		if (res)
			break;
		if (tnode_view(v.at) == TV_DIR) {
			fill_dir(fs, st, v.task->changed);
			view_release(&v);
			break;
		}
		view_release(&v);
		/* fall through */
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
		st->st_ino = n->ino;
	return res;
}

/* ---- replies ---- */

static double ttl_of(struct fs *fs)
{
	return (double)fs->opts->ttl;
}

static void reply_entry(fuse_req_t req, struct fs *fs, struct node *n)
{
	struct fuse_entry_param e;
	int res;

	memset(&e, 0, sizeof(e));
	res = node_stat(fs, n, &e.attr);
	if (res) {
		pthread_mutex_lock(&fs->lock);
		node_forget_locked(fs, n, 1);
		pthread_mutex_unlock(&fs->lock);
		fuse_reply_err(req, -res);
		return;
	}
	e.ino = n->ino;
	e.attr_timeout = ttl_of(fs);
	e.entry_timeout = ttl_of(fs);
	if (fuse_reply_entry(req, &e)) {
		pthread_mutex_lock(&fs->lock);
		node_forget_locked(fs, n, 1);
		pthread_mutex_unlock(&fs->lock);
	}
}

static void reply_negative(fuse_req_t req, struct fs *fs)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.entry_timeout = ttl_of(fs);
	fuse_reply_entry(req, &e);
}

/* ---- lookup ---- */

static int lookup_root(struct fs *fs, const char *name,
		       struct node_init *ni)
{
	(void)fs;
	if (!strcmp(name, "README"))
		ni->kind = NK_README;
	else if (!strcmp(name, "tasks"))
		ni->kind = NK_LISTING;
	else if (!strcmp(name, "by-status"))
		ni->kind = NK_GROUP, ni->group = STORE_STATUSES;
	else if (!strcmp(name, "by-type"))
		ni->kind = NK_GROUP, ni->group = STORE_TYPES;
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
		return tree_name_unescape(name, id);
	for (i = 0; l && i < l->n; i++) {
		tree_name_escape(l->ids[i], esc);
		if (!strcmp(esc, name)) {
			*id = strdup(l->ids[i]);
			return *id ? 0 : -ENOMEM;
		}
	}
	return -ENOENT;
}

static int lookup_listing(struct node *parent, const char *name,
			  struct node_init *ni, char **id)
{
	struct listing *l = NULL;
	struct list_body q;
	struct task *t;
	int res;

	listing_query(parent, &q);
	store_listing_cached(&q, 0, &l);
	res = listing_id(l, name, id);
	if (res)
		goto out;
	if (l && listing_has(l, *id)) {
		res = 0;
	} else if (l && parent->value) {
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
	ni->kind = NK_TASK;
	ni->task_id = *id;
out:
	if (l)
		listing_unref(l);
	if (res) {
		free(*id);
		*id = NULL;
	}
	return res;
}

static int lookup_in_task(struct node *parent, const char *name,
			  struct node_init *ni, char **relpath)
{
	struct view v;
	int res;

	if (parent->kind == NK_TASK && !strcmp(name, TASK_JSON)) {
		ni->kind = NK_TASKJSON;
		ni->task_id = parent->task_id;
		return 0;
	}
	if (parent->relpath)
		res = asprintf(relpath, "%s/%s", parent->relpath, name);
	else
		res = asprintf(relpath, "%s", name);
	if (res < 0) {
		*relpath = NULL;
		return -ENOMEM;
	}
	res = view_get(parent->task_id, *relpath, true, &v);
	if (res) {
		free(*relpath);
		*relpath = NULL;
		return res == -ENOTDIR ? -ENOENT : res;
	}
	view_release(&v);
	ni->kind = NK_FIELD;
	ni->task_id = parent->task_id;
	ni->relpath = *relpath;
	return 0;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct node *parent = node_by_ino(fs, pino), *n;
	struct node_init ni = { 0 };
	char *owned = NULL;
	int res;

	if (!parent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (strlen(name) > TREE_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	switch (parent->kind) {
	case NK_ROOT:
		res = lookup_root(fs, name, &ni);
		break;
	case NK_GROUP:
		res = group_value(parent, name, &owned);
		ni.kind = NK_LISTING;
		ni.group = parent->group;
		ni.value = owned;
		break;
	case NK_LISTING:
		res = lookup_listing(parent, name, &ni, &owned);
		break;
	case NK_TASK:
	case NK_FIELD:
		res = lookup_in_task(parent, name, &ni, &owned);
		break;
	default:
		res = -ENOTDIR;
		break;
	}
	if (res == -ENOENT) {
		reply_negative(req, fs);
	} else if (res) {
		fuse_reply_err(req, -res);
	} else if (!(n = node_child(fs, parent, name, &ni, true))) {
		fuse_reply_err(req, ENOMEM);
	} else {
		reply_entry(req, fs, n);
	}
	free(owned);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);
	struct node *n;

	pthread_mutex_lock(&fs->lock);
	HASH_FIND(hh, fs->by_ino, &ino, sizeof(ino), n);
	if (n)
		node_forget_locked(fs, n, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	size_t i;

	pthread_mutex_lock(&fs->lock);
	for (i = 0; i < count; i++) {
		fuse_ino_t ino = forgets[i].ino;
		struct node *n;

		HASH_FIND(hh, fs->by_ino, &ino, sizeof(ino), n);
		if (n)
			node_forget_locked(fs, n, forgets[i].nlookup);
	}
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *n = node_by_ino(fs, ino);
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

struct dent {
	char name[TREE_NAME_MAX + 1];
	struct node_init ni;
	char *owned;		/* relpath or value the entry needs */
	struct stat st;		/* st_mode 0: ask node_stat */
};

struct dirsnap {
	struct listing *listing;	/* NK_LISTING: the entries */
	struct dent *ents;		/* other folders */
	size_t n;
};

static void dirsnap_free(struct dirsnap *d)
{
	size_t i;

	if (!d)
		return;
	if (d->listing)
		listing_unref(d->listing);
	for (i = 0; d->ents && i < d->n; i++)
		free(d->ents[i].owned);
	free(d->ents);
	free(d);
}

static int snap_root(struct dirsnap *d)
{
	static const char *const names[] = {
		"README", "by-status", "by-type", "tasks"
	};
	size_t i;

	d->ents = calloc(4, sizeof(*d->ents));
	if (!d->ents)
		return -ENOMEM;
	for (i = 0; i < 4; i++) {
		snprintf(d->ents[i].name, sizeof(d->ents[i].name), "%s",
			 names[i]);
		lookup_root(NULL, names[i], &d->ents[i].ni);
	}
	d->n = 4;
	return 0;
}

static int snap_group(struct node *n, struct dirsnap *d)
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
		struct dent *e = &d->ents[d->n++];

		tree_name_escape(names[i], e->name);
		e->owned = names[i];
		names[i] = NULL;
		e->ni.kind = NK_LISTING;
		e->ni.group = n->group;
		e->ni.value = e->owned;
	}
	store_values_free(names, count);
	return 0;
}

static int snap_task(struct fs *fs, struct node *n, struct dirsnap *d)
{
	const struct tnode *c = NULL;
	struct view v;
	size_t count = 1;
	int res;

	res = view_get(n->task_id, n->relpath, true, &v);
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
		struct dent *e = &d->ents[d->n];
		struct buf b = BUF_INIT(SIZE_MAX / 2);

		tnode_name(c, e->name);
		if (n->kind == NK_TASK && !strcmp(e->name, TASK_JSON))
			continue;	/* the whole-task file wins */
		if (n->relpath)
			res = asprintf(&e->owned, "%s/%s", n->relpath, e->name);
		else
			res = asprintf(&e->owned, "%s", e->name);
		if (res < 0) {
			e->owned = NULL;
			view_release(&v);
			return -ENOMEM;
		}
		e->ni.kind = NK_FIELD;
		e->ni.task_id = n->task_id;
		e->ni.relpath = e->owned;
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

		strcpy(e->name, TASK_JSON);
		e->ni.kind = NK_TASKJSON;
		e->ni.task_id = n->task_id;
	}
	view_release(&v);
	return 0;
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *n = node_by_ino(fs, ino);
	struct dirsnap *d;
	struct list_body q;
	int res;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	switch (n->kind) {
	case NK_ROOT:
		res = snap_root(d);
		break;
	case NK_GROUP:
		res = snap_group(n, d);
		break;
	case NK_LISTING:
		listing_query(n, &q);
		res = store_listing(&q, 0, &d->listing);
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
		dirsnap_free(d);
		fuse_reply_err(req, -res);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi))
		dirsnap_free(d);
}

static size_t dirsnap_count(const struct dirsnap *d)
{
	return d->listing ? d->listing->n : d->n;
}

/*
 * Name and node fields of entry i (after "." and ".."), and its
 * attributes when the snapshot has them (else st->st_mode is 0).
 */
static void dirsnap_entry(const struct dirsnap *d, size_t i, char *name,
			  struct node_init *ni, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	if (d->listing) {
		tree_name_escape(d->listing->ids[i], name);
		memset(ni, 0, sizeof(*ni));
		ni->kind = NK_TASK;
		ni->task_id = d->listing->ids[i];
		return;
	}
	strcpy(name, d->ents[i].name);
	*ni = d->ents[i].ni;
	*st = d->ents[i].st;
}

/* The file type of an entry, as far as readdir can tell cheaply. */
static mode_t kind_mode(enum nkind kind)
{
	switch (kind) {
	case NK_README:
	case NK_TASKJSON:
		return S_IFREG;
	case NK_FIELD:
		return 0;	/* unknown until rendered */
	default:
		return S_IFDIR;
	}
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi, bool plus)
{
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)fi->fh;
	struct fs *fs = fs_of(req);
	struct node *dir = node_by_ino(fs, ino);
	char name[TREE_NAME_MAX + 1], *buf;
	size_t used = 0, total, i;

	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	total = dirsnap_count(d) + 2;
	for (i = (size_t)off; i < total; i++) {
		struct fuse_entry_param e;
		struct node_init ni;
		struct node *n = NULL;
		size_t len;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			strcpy(name, i ? ".." : ".");
			fill_dir(fs, &e.attr, fs->started);
			e.attr.st_ino = i ? 1 : ino;
		} else {
			dirsnap_entry(d, i - 2, name, &ni, &e.attr);
			if (plus) {
				n = node_child(fs, dir, name, &ni, true);
				if (n && e.attr.st_mode)
					e.attr.st_ino = n->ino;
				else if (!n || node_stat(fs, n, &e.attr)) {
					/* gone meanwhile: leave it out */
					if (n) {
						pthread_mutex_lock(&fs->lock);
						node_forget_locked(fs, n, 1);
						pthread_mutex_unlock(&fs->lock);
					}
					continue;
				}
				e.ino = n->ino;
				e.attr_timeout = ttl_of(fs);
				e.entry_timeout = ttl_of(fs);
			} else {
				/* any non-zero number: d_ino 0 reads as empty */
				e.attr.st_mode = kind_mode(ni.kind);
				e.attr.st_ino = (ino_t)-1 - i;
			}
		}
		if (plus)
			len = fuse_add_direntry_plus(req, buf + used,
						     size - used, name, &e,
						     (off_t)i + 1);
		else
			len = fuse_add_direntry(req, buf + used, size - used,
						name, &e.attr, (off_t)i + 1);
		if (len > size - used) {
			if (n) {
				pthread_mutex_lock(&fs->lock);
				node_forget_locked(fs, n, 1);
				pthread_mutex_unlock(&fs->lock);
			}
			break;
		}
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	dirsnap_free((struct dirsnap *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- files ---- */

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *n = node_by_ino(fs, ino);
	struct buf b = BUF_INIT(SIZE_MAX / 2);
	struct filebuf *f, *old;
	time_t when;
	int res;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	res = node_render(n, &b, &when);
	if (res) {
		fuse_reply_err(req, -res);
		return;
	}
	f = malloc(sizeof(*f) + b.len + 1);
	if (!f) {
		buf_release(&b);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	f->refs = 1;
	f->len = b.len;
	memcpy(f->data, buf_str(&b), b.len);
	buf_release(&b);
	pthread_mutex_lock(&fs->lock);
	old = n->content;
	n->content = f;
	pthread_mutex_unlock(&fs->lock);
	filebuf_unref(old);
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *n = node_by_ino(fs, ino);
	struct filebuf *f = NULL;

	(void)fi;
	if (n) {
		pthread_mutex_lock(&fs->lock);
		f = n->content;
		if (f)
			__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&fs->lock);
	}
	if (!f) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0 || (size_t)off >= f->len)
		size = 0;
	else if (size > f->len - (size_t)off)
		size = f->len - (size_t)off;
	fuse_reply_buf(req, size ? f->data + off : NULL, size);
	filebuf_unref(f);
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
	(void)userdata;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* a listing served from our cache may be re-read from the kernel's */
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
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
	.releasedir	= fs_releasedir,
	.statfs		= fs_statfs,
};

/* ---- lifecycle ---- */

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
	pthread_mutex_init(&fs->lock, NULL);
	fs->next_ino = FUSE_ROOT_ID + 1;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->started = time(NULL);
	*out = fs;
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
	struct node *root;

	root = calloc(1, sizeof(*root));
	if (!root || !host ||
	    asprintf(&fsopts, "-oro,default_permissions,fsname=mixpeekfs:%s,"
		     "subtype=mixpeekfs", host) < 0 ||
	    fuse_opt_add_arg(&fs->args, fsopts)) {
		free(root);
		free(host);
		fprintf(stderr, "mixpeekfs: out of memory\n");
		return -1;
	}
	free(fsopts);
	free(host);
	root->ino = FUSE_ROOT_ID;
	root->kind = NK_ROOT;
	root->nlookup = 1;
	root->name = strdup("/");
	root->key = strdup("/");
	if (!root->name || !root->key) {
		node_free(root);
		return -1;
	}
	HASH_ADD(hh, fs->by_ino, ino, sizeof(root->ino), root);
	fs->root = root;
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

int fs_run(struct fs *fs)
{
	struct fuse_loop_config *cfg;
	int res;

	if (fs->cmd.singlethread)
		return fuse_session_loop(fs->se) ? -1 : 0;
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -1;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)fs->cmd.clone_fd);
	/* (unsigned)-1 means "not given": keep libfuse's defaults */
	if (fs->cmd.max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(cfg, fs->cmd.max_idle_threads);
	if (fs->cmd.max_threads != UINT_MAX && fs->cmd.max_threads > 0)
		fuse_loop_cfg_set_max_threads(cfg, fs->cmd.max_threads);
	res = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return res ? -1 : 0;
}

void fs_free(struct fs *fs)
{
	struct node *n, *tmp;

	if (!fs)
		return;
	if (fs->se) {
		if (fs->mounted)
			fuse_session_unmount(fs->se);
		fuse_remove_signal_handlers(fs->se);
		fuse_session_destroy(fs->se);
	}
	HASH_CLEAR(hn, fs->by_key);
	HASH_ITER(hh, fs->by_ino, n, tmp) {
		HASH_DELETE(hh, fs->by_ino, n);
		node_free(n);
	}
	free(fs->cmd.mountpoint);
	fuse_opt_free_args(&fs->args);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}
