// SPDX-License-Identifier: MIT
/*
 * ns: what each path of the mount is and what it shows, worked out on
 * each request from the store's records: the root, by-status/ and
 * by-type/, listing and query folders, tasks and the fields inside them.
 * No libfuse calls; fs_ops.c replies. What may block: see fs_i.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"
#include "log.h"
#include "pack.h"

double ttl_of(struct fs *fs)
{
	return (double)fs->opts->ttl;
}

/* A query folder: a listing folder inside another. */
bool is_query(const struct node *n)
{
	return n->kind == NK_LISTING && n->parent->kind == NK_LISTING;
}

void lquery_release(struct lquery *lq)
{
	query_release(&lq->q);
	free(lq->conds);
	free(lq->as_filter);
}

/*
 * (Re)make the list body from the components. A status or type that the
 * API's schema does not list (one seen only in results) would be refused
 * as a request field (422): it goes in as the equivalent filter instead.
 */
static int lquery_finish(struct lquery *lq)
{
	const char *field = lq->status ? "status" : "task_type";

	free(lq->conds);
	lq->conds = calloc(lq->q.nconds + 2, sizeof(*lq->conds));
	if (!lq->conds)
		return -ENOMEM;
	if (!lq->as_filter) {
		query_body(&lq->q, lq->status, lq->type, lq->conds, &lq->b);
		return 0;
	}
	query_body(&lq->q, NULL, NULL, lq->conds, &lq->b);
	lq->conds[lq->b.nconds++] = (struct json_cond){
		.field = field,
		.op = "eq",
		.value = lq->as_filter,
	};
	return 0;
}

int lquery_get(const struct node *n, struct lquery *lq)
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
		const char *v = node_value(base);
		struct buf quoted = BUF_INIT(QUOTED_MAX);

		if (base->group == STORE_STATUSES)
			lq->status = v;
		else
			lq->type = v;
		if (!store_value_published(base->group, v)) {
			res = json_quote(v, &quoted);
			lq->as_filter = buf_detach(&quoted, NULL);
			if (!res && !lq->as_filter)
				res = -ENOMEM;
		}
	}
	if (!res)
		res = lquery_finish(lq);
	if (res)
		lquery_release(lq);
	return res;
}

/* Where n is in the mount ("by-status/FAILED"), then "/child" if given. */
static void folder_path(const struct node *n, const char *child, char *out,
			size_t size)
{
	const struct node *chain[64];
	size_t depth = 0, len = 0;

	out[0] = '\0';
	for (; n && n->parent && depth < 64; n = n->parent)
		chain[depth++] = n;
	while (depth > 0 && len < size)
		len += (size_t)snprintf(out + len, size - len, "%s%s",
					len ? "/" : "", chain[--depth]->name);
	if (child && len < size)
		snprintf(out + len, size - len, "%s%s", len ? "/" : "", child);
}

/*
 * store_listing for folder n (with child: the query folder child of n),
 * with the folder named in what it logs.
 */
int fetch_listing(const struct node *n, const char *child, struct lquery *lq,
		  struct listing **out)
{
	char where[PATH_MAX];
	int res;

	folder_path(n, child, where, sizeof(where));
	log_set_context(where);
	res = store_listing(&lq->b, lq->q.limit, out);
	log_set_context(NULL);
	return res;
}

/* The listing behind folder n: fetched if needed, or only if cached. */
int node_listing(const struct node *n, bool fetch, struct listing **out)
{
	struct lquery lq;
	int res = lquery_get(n, &lq);

	if (res)
		return res;
	res = fetch ? fetch_listing(n, NULL, &lq, out) :
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

/*
 * Whether the store has seen task t leave listing folder n (a status or
 * type folder) since n's listing was fetched: t says another status.
 */
bool moved_out(const struct node *n, const struct task *t)
{
	const char *now;

	if (!t || n->parent->kind != NK_GROUP)
		return false;
	now = n->group == STORE_STATUSES ? t->status : t->type;
	return *now && !listing_admits(n, t);
}

/*
 * The record of task node tn: from memory while fresh, else through its
 * folder's listing (store_task_in: a walk refreshes the listing once).
 */
static int task_record(const struct node *tn, struct task **out)
{
	struct lquery lq;
	int res;

	if (!store_task_cached(node_value(tn), out))
		return 0; /* before lquery_get, which costs more */
	res = lquery_get(tn->parent, &lq);
	if (res)
		return store_task(node_value(tn), out);
	res = store_task_in(node_value(tn), &lq.b, lq.q.limit, out);
	lquery_release(&lq);
	return res;
}

void view_release(struct view *v)
{
	ttree_unref(v->tree);
	task_unref(v->task);
	memset(v, 0, sizeof(*v));
}

/*
 * Fill v for node n (NK_TASK, NK_FIELD or NK_TASKJSON), or with name set,
 * for n's child of that name. With tree unset, only the task record.
 */
int view_get(const struct node *n, const char *name, bool tree, struct view *v)
{
	const struct node *tn = node_task(n);
	struct buf rel = BUF_INIT(TASK_PATH_MAX);
	int res;

	memset(v, 0, sizeof(*v));
	if (!tn)
		return -EIO;
	res = task_record(tn, &v->task);
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

void fill_dir(struct fs *fs, struct stat *st, time_t when)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtime = st->st_ctime = st->st_atime = when;
}

void fill_file(struct fs *fs, struct stat *st, off_t size, time_t when)
{
	fill_dir(fs, st, when);
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = size;
	st->st_blocks = (size + 511) / 512;
}

/* Render the bytes of a file node into out. */
int node_render(struct fs *fs, struct node *n, struct buf *out, time_t *when)
{
	struct view v;
	int res;

	switch (n->kind) {
	case NK_README: *when = 0; return buf_addstr(out, vfile_readme);
	case NK_METAFILE:
		*when = 0;
		return vfile_meta_render(fs, n->name, false, out);
	case NK_REFRESH: {
		struct timespec ts;

		*when = 0;
		return vfile_refresh_render(fs, out, &ts);
	}
	default: break;
	}
	if (n->kind == NK_TASK)
		return -EISDIR;
	res = view_get(n, NULL, n->kind == NK_FIELD, &v);
	if (res)
		return res;
	*when = v.task->changed;
	if (n->kind == NK_TASKJSON) {
		struct buf json = BUF_INIT(TASK_JSON_MAX);

		res = task_json(v.task, &json);
		if (!res)
			res = json_pretty(buf_str(&json), json.len, out);
		buf_release(&json);
	} else if (tnode_view(v.at) == TV_FILE)
		res = tnode_render(v.at, out);
	else
		res = -EISDIR;
	view_release(&v);
	return res;
}

/*
 * A listing folder's attributes, never with a request: stat, a path
 * walk and a lookup below it must not fetch a whole listing. Its mtime
 * says when its tasks last changed. The kernel serves the folder's
 * entries from its cache until the mtime moves, so the nanoseconds tell
 * the state apart: which fetch the listing came from, whether it is
 * stale, and how many refreshes failed since. Each time it goes stale
 * the mtime is one the kernel has not seen, whatever the last fetch
 * found: the next readdir comes here and fetches.
 */
static int listing_stat(struct fs *fs, struct node *n, struct stat *st)
{
	struct listing *l = NULL;
	unsigned failures;
	long ns;

	fill_dir(fs, st, fs->started);
	if (node_listing(n, false, &l))
		return 0;
	failures = __atomic_load_n(&l->failures, __ATOMIC_RELAXED);
	/* below 1e9: 488281 * 2048 */
	ns = ((long)(l->gen % 488281u) * 2 + !listing_fresh(l)) * 1024 +
		(long)(failures % 1024);
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = l->changed;
	st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = ns;
	listing_unref(l);
	return 0;
}

/* The attributes of the tree node a view stands at. */
static int view_stat(struct fs *fs, const struct view *v, struct stat *st)
{
	struct buf b = BUF_INIT(RENDER_MAX);
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

int node_stat(struct fs *fs, struct node *n, struct stat *st)
{
	struct buf b = BUF_INIT(RENDER_MAX);
	struct view v;
	time_t when = fs->started;
	int res = 0;

	switch (n->kind) {
	case NK_ROOT:
	case NK_GROUP:
	case NK_META: fill_dir(fs, st, fs->started); break;
	case NK_LISTING: res = listing_stat(fs, n, st); break;
	case NK_REFRESH:
		res = vfile_refresh_render(fs, &b, &st->st_mtim);
		if (!res) {
			struct timespec ts = st->st_mtim;

			fill_file(fs, st, (off_t)b.len, ts.tv_sec);
			st->st_mtim = st->st_ctim = ts;
		}
		buf_release(&b);
		break;
	case NK_METAFILE:
		res = vfile_meta_render(fs, n->name, true, &b);
		if (!res)
			fill_file(fs, st, (off_t)b.len, fs->started);
		buf_release(&b);
		/* a new mtime each time drops the pages read before */
		if (!res && !strcmp(n->name, "stats"))
			clock_gettime(CLOCK_REALTIME, &st->st_mtim);
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
	case NK_JSONL:
	case NK_TSV: res = -EIO; break; /* fs_ops asks vsnap_stat */
	case NK_WAIT: {
		/* the same attributes until the task ends: see wait.c */
		char text[WAIT_TEXT_MAX];
		int len = wait_text(node_value(node_task(n)), text,
				    sizeof(text), &when);

		fill_file(fs, st, len ? len : WAIT_SIZE, when);
		break;
	}
	case NK_README:
	case NK_TASKJSON:
		res = node_render(fs, n, &b, &when);
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

int root_entry(const char *name, enum nkind *kind, int *group)
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
	else if (!strcmp(name, META_NAME))
		*kind = NK_META;
	else
		return -ENOENT;
	return 0;
}

static int meta_entry(const char *name)
{
	size_t i;

	for (i = 0; i < VFILE_META_COUNT; i++)
		if (!strcmp(name, vfile_meta_names[i]))
			return 0;
	return -ENOENT;
}

/*
 * How long the kernel may keep a node's entry and attributes: what is
 * left of the ttl of the data behind it, so nothing it shows is older
 * than the ttl. Stats change all the time, and a .refresh must be looked
 * up (and so done) every time.
 */
double keep_for(struct fs *fs, const struct node *n)
{
	const struct node *tn = node_task(n);
	struct listing *l = NULL;
	struct task *t;
	double left = ttl_of(fs), data = left;

	if (n->kind == NK_REFRESH ||
	    (n->kind == NK_METAFILE && !strcmp(n->name, "stats")))
		return 0;
	if (is_view(n))
		n = n->parent; /* it shows its folder's listing */
	if (n->kind == NK_WAIT)
		return WAIT_KEEP;
	if (n->kind == NK_LISTING && !node_listing(n, false, &l)) {
		data = store_listing_left(l);
		listing_unref(l);
	} else if (tn && (t = store_task_peek(node_value(tn)))) {
		data = store_task_left(t);
		task_unref(t);
	}
	return data < left ? data : left;
}

/* The raw value behind an escaped group entry name, malloc'd. */
/*
 * No such status or type: most likely a typo (by-status/FAILD). Say so,
 * once a ttl, with the values there are (names[0..n)).
 */
static void no_such_value(enum store_values which, const char *name,
			  char **names, size_t n)
{
	struct buf known = BUF_INIT(1 << 16);
	size_t i;

	for (i = 0; i < n; i++)
		if (names[i] &&
		    buf_printf(&known, "%s%s", known.len ? ", " : "", names[i]))
			break;
	log_once(LOG_WARNING, "no task has %s '%s'; the %s known: %s",
		 which == STORE_STATUSES ? "status" : "task type", name,
		 which == STORE_STATUSES ? "statuses" : "task types",
		 buf_str(&known));
	buf_release(&known);
}

static int group_value(const struct node *group, const char *name, char **value)
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
	if (res == -ENOENT)
		no_such_value(group->group, name, names, n);
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
	struct lquery lq;
	struct task *t;
	bool fresh;
	int res;

	res = lquery_get(parent, &lq);
	if (res)
		return res;
	/* a query's members are known only from its listing */
	if (is_query(parent))
		res = fetch_listing(parent, NULL, &lq, &l);
	else if (store_listing_peek(&lq.b, lq.q.limit, &l))
		l = NULL;
	if (res)
		goto out;
	fresh = l && (is_query(parent) || listing_fresh(l));
	/* a stale listing still tells which id a hashed name stands for */
	res = listing_id(l, name, id);
	if (res)
		goto out;
	if (fresh && listing_has(l, *id)) {
		/* unless the store has seen it move since */
		t = is_query(parent) ? NULL : store_task_peek(*id);
		res = moved_out(parent, t) ? -ENOENT : 0;
		task_unref(t);
	} else if (fresh &&
		   (parent->parent->kind == NK_GROUP || is_query(parent))) {
		res = -ENOENT; /* a fresh listing says it is not here */
	} else {
		/* tasks/ admits any task the API knows */
		res = store_task_in(*id, &lq.b, lq.q.limit, &t);
		if (!res) {
			if (!listing_admits(parent, t))
				res = -ENOENT;
			task_unref(t);
		}
	}
out:
	lquery_release(&lq);
	if (l)
		listing_unref(l);
	if (res) {
		free(*id);
		*id = NULL;
	}
	return res;
}

/*
 * Whether name is a query folder under listing folder parent: 0 if so,
 * -ENOENT if it is not a query component (it may be a task), -EINVAL if
 * it is a malformed one (logged). A regular expression is checked by the
 * API itself: the folder's listing is fetched now, and a 422 is EINVAL.
 */
static int lookup_query(struct node *parent, const char *name)
{
	char err[256], where[PATH_MAX];
	struct listing *l;
	struct lquery lq;
	int res;

	res = lquery_get(parent, &lq);
	if (res)
		return res;
	res = query_add(&lq.q, name, err, sizeof(err));
	if (res == -EINVAL) {
		folder_path(parent, name, where, sizeof(where));
		log_once(LOG_ERR, "query folder '%s': %s", where, err);
	}
	if (!res && strstr(name, ":regex:")) {
		res = lquery_finish(&lq);
		if (!res)
			res = fetch_listing(parent, name, &lq, &l);
		if (!res)
			listing_unref(l);
	}
	lquery_release(&lq);
	return res;
}

/* A child of a folder inside a task; fills st unless it is task.json. */
static int lookup_in_task(struct fs *fs, struct node *parent, const char *name,
			  enum nkind *kind, struct stat *st)
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

int ns_lookup(struct fs *fs, struct node *parent, const char *name,
	      enum nkind *kind, int *group, char **value, struct stat *st)
{
	int res;

	*group = 0;
	switch (parent->kind) {
	case NK_ROOT: return root_entry(name, kind, group);
	case NK_META: *kind = NK_METAFILE; return meta_entry(name);
	case NK_GROUP:
		*kind = NK_LISTING;
		*group = parent->group;
		return group_value(parent, name, value);
	case NK_LISTING:
		res = lookup_query(parent, name);
		if (res == 0) {
			*kind = NK_LISTING;
			return 0;
		}
		*kind = NK_TASK;
		return res == -ENOENT ? lookup_listing(parent, name, value) :
					res;
	case NK_TASK:
	case NK_FIELD: return lookup_in_task(fs, parent, name, kind, st);
	default: return -ENOTDIR;
	}
}

/* ---- extended attributes ---- */

#define XATTR_PREFIX "user.mixpeek."

static const char *const xattr_names[] = { XATTR_PREFIX "task_id",
					   XATTR_PREFIX "task_type",
					   XATTR_PREFIX "status" };
#define XATTR_COUNT (sizeof(xattr_names) / sizeof(*xattr_names))

/* A listing folder's: how many tasks it holds (xattr_count). */
#define XATTR_COUNT_NAME XATTR_PREFIX "count"

int xattr_list(const struct node *n, struct buf *out)
{
	size_t i;
	int res = 0;

	if (n->kind == NK_LISTING)
		return buf_add(out, XATTR_COUNT_NAME, sizeof(XATTR_COUNT_NAME));
	for (i = 0; node_task(n) && i < XATTR_COUNT && !res; i++)
		res = buf_add(out, xattr_names[i], strlen(xattr_names[i]) + 1);
	return res;
}

/*
 * How many tasks listing folder n holds: its fresh listing's count, or
 * the API's total for one request of one task (store_count), never a
 * listing: a watch of the counts of every status folder is cheap.
 */
static int xattr_count(const struct node *n, struct buf *out)
{
	struct lquery lq;
	long count;
	int res = lquery_get(n, &lq);

	if (res)
		return res;
	res = store_count(&lq.b, lq.q.limit, &count);
	lquery_release(&lq);
	return res ? res : buf_printf(out, "%ld", count);
}

int xattr_get(struct fs *fs, struct node *n, const char *name, struct buf *out)
{
	const struct node *tn = node_task(n);
	struct view v;
	size_t i;
	int res;

	(void)fs;
	if (strncmp(name, "user.", 5))
		return -EOPNOTSUPP;
	if (n->kind == NK_LISTING)
		return strcmp(name, XATTR_COUNT_NAME) ? -ENODATA :
							xattr_count(n, out);
	for (i = 0; i < XATTR_COUNT && strcmp(name, xattr_names[i]); i++)
		;
	if (!tn || i == XATTR_COUNT)
		return -ENODATA;
	if (i == 0) /* the id needs no record */
		return buf_addstr(out, node_value(tn));
	res = view_get(n, NULL, false, &v);
	if (res)
		return res;
	res = buf_addstr(out, i == 1 ? v.task->type : v.task->status);
	view_release(&v);
	return res;
}
