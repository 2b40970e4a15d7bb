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
#include "http.h"
#include "json.h"
#include "log.h"
#include "text.h"
#include "node.h"
#include "pack.h"
#include "query.h"
#include "stats.h"
#include "store.h"
#include "tree.h"
#include "ttree.h"

/*
 * One helper thread talks to the kernel outside request handlers:
 *
 * - Files found by LOOKUP are about to be read (stat and open look up by
 *   name; ls uses readdirplus). It renders them and stores the bytes in
 *   the kernel's page cache, which saves the READ round trip. That cannot
 *   be done in the LOOKUP handler: the kernel makes the inode only after
 *   the reply, so a store sent with it finds none (ENOENT).
 * - When the store sees a task change, it drops the kernel's attributes
 *   and pages for every path into that task, and the task's entries in
 *   by-status/ folders (it may have moved).
 * - On SIGHUP (from a second thread, in sigwait) it refreshes everything.
 */
#define PUSH_MAX (64 * 1024)	/* bigger files wait for their READ */
#define PUSH_QUEUE 4096
#define NEG_MAX 1024

struct notifier {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct node *push[PUSH_QUEUE];	/* held nodes (node_hold) */
	size_t npush;
	char **changed;			/* task ids, malloc'd */
	size_t nchanged, cap;
	bool refresh_all;		/* SIGHUP */
	bool inval_all;			/* too many changes to list */
	bool stop, running, hup_running;
	bool helper_done;		/* the helper has left its loop */
	pthread_t thread, hup;
	/*
	 * The last NEG_MAX names answered "no such entry": the kernel keeps
	 * those for ttl, and a refresh must drop them too.
	 */
	struct neg {
		struct node *parent;	/* held; NULL: free slot */
		char *name;
		bool due;		/* to drop now */
	} negs[NEG_MAX];
	size_t negpos, ndue;
	/* work queued and done, so a reader can wait for it (flush) */
	unsigned long queued, done;
	pthread_cond_t idle;
};

#define REFRESH_NAME ".refresh"
#define META_NAME ".mixpeekfs"

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
	int64_t refreshed;	/* atomic: the last forced refresh, in ns */
	pthread_t main_thread;	/* runs the loop */
	struct notifier note;
};

#define TASK_JSON "task.json"
/* The JSON text of a status or type value (they are short). */
#define QUOTED_MAX 65536

static void push_add(struct fs *fs, struct node *n);
static int refresh_folder(struct fs *fs, struct node *n);
static void refresh_all(struct fs *fs);
static void refreshed_now(struct fs *fs);
static int refresh_render(struct fs *fs, struct buf *out, struct timespec *ts);
static void neg_add(struct fs *fs, struct node *parent, const char *name);
static void notifier_flush(struct fs *fs);
static void invalidate_changed(struct fs *fs, char **ids, size_t n,
			       bool entries);
static void neg_due(struct fs *fs, const struct node *parent);
static void neg_due_if(struct fs *fs,
		       bool (*match)(const struct node *, const void *),
		       const void *arg);
static int node_render(struct fs *fs, struct node *n, struct buf *out,
		       time_t *when);

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
"is a string. %2F, %7C, %2C, %25 ... put any byte but NUL in a value.\n"
"Examples:\n"
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
"A listing, or a task that is still running, is fetched when first read\n"
"and trusted for ttl seconds; a finished task for ttl_terminal. Reading\n"
"<folder>/.refresh fetches that folder now; kill -HUP refreshes all.\n"
"Times are the tasks' updated_at (else created_at, then the time a change\n"
"was seen). .mixpeekfs/ holds stats, config and\n"
"version. Errors: EACCES when the API rejects the key,\n"
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
	char *as_filter;	/* malloc'd JSON text of status or type, when
				 * the API's schema does not list the value */
	struct json_cond *conds;
	struct list_body b;
};

static void lquery_release(struct lquery *lq)
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
		.field = field, .op = "eq", .value = lq->as_filter,
	};
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
static void folder_path(const struct node *n, const char *child,
			char *out, size_t size)
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
static int fetch_listing(const struct node *n, const char *child,
			 struct lquery *lq, struct listing **out)
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
static int node_listing(const struct node *n, bool fetch,
			struct listing **out)
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
static bool moved_out(const struct node *n, const struct task *t)
{
	const char *now;

	if (!t || n->parent->kind != NK_GROUP)
		return false;
	now = n->group == STORE_STATUSES ? t->status : t->type;
	return *now && !listing_admits(n, t);
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

/* ---- .mixpeekfs/: what mixpeekfs is doing, as "key value" lines ---- */

static const char *const meta_names[] = { "config", "stats", "version" };

static int meta_config(struct fs *fs, struct buf *out)
{
	const struct options *o = fs->opts;

	return buf_printf(out,
		"url %s\nnamespace %s\nkey <redacted>\nkey_file %s\n"
		"ca_file %s\n"
		"mountpoint %s\npage_size %u\nttl %u\nttl_terminal %u\n"
		"max_connections %u\ntimeout %u\nconnect_timeout %u\n"
		"retries %u\nmax_response %zu\ncache_size %zu\n"
		"allow_http %d\ndebug %d\n",
		o->url, o->namespace ? o->namespace : "-",
		o->key_file ? o->key_file : "-",
		o->ca_file ? o->ca_file : "-", fs->cmd.mountpoint,
		o->page_size, o->ttl, o->ttl_terminal, o->max_connections,
		o->timeout, o->connect_timeout, o->retries, o->max_response,
		o->cache_size, o->allow_http, o->debug);
}

static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

static int meta_stats(struct fs *fs, struct buf *out)
{
	struct store_usage u;
	char line[1024], when[32] = "-";
	time_t t = log_last_problem(line, sizeof(line));
	struct tm tm;
	int res;

	if (t && gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	store_usage(&u);
	res = stats_render(out);
	if (!res)
		res = buf_printf(out,
			"tasks_cached %zu\ntask_bytes %zu\ntask_bytes_max %zu\n"
			"listings_cached %zu\nlisted_tasks %zu\nnodes %zu\n"
			"memory_rss %ld\nuptime %ld\nlast_error_time %s\n"
			"last_error %s\n",
			u.tasks, u.task_bytes, u.task_cap, u.listings,
			u.listed, node_count(&fs->nodes), rss_bytes(),
			(long)(time(NULL) - fs->started), when,
			t ? line : "-");
	return res;
}

static int meta_render(struct fs *fs, const char *name, struct buf *out)
{
	if (!strcmp(name, "config"))
		return meta_config(fs, out);
	if (!strcmp(name, "stats"))
		return meta_stats(fs, out);
	if (!strcmp(name, "version"))
		return buf_printf(out, "mixpeekfs %s\nlibfuse %s\n"
				  "libcurl %s\ncjson %s\nzstd %s\n",
				  PACKAGE_VERSION, fuse_pkgversion(),
				  http_version(), json_version(),
				  pack_version());
	return -ENOENT;
}

/* Render the bytes of a file node into out. */
static int node_render(struct fs *fs, struct node *n, struct buf *out,
		       time_t *when)
{
	struct view v;
	int res;

	switch (n->kind) {
	case NK_README:
		*when = 0;
		return buf_addstr(out, readme_text);
	case NK_METAFILE:
		*when = 0;
		return meta_render(fs, n->name, out);
	case NK_REFRESH: {
		struct timespec ts;

		*when = 0;
		return refresh_render(fs, out, &ts);
	}
	default:
		break;
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
 * A listing folder's attributes, never with a request: stat, a path
 * walk and a lookup below it must not fetch a whole listing. Its mtime
 * says when its tasks last changed. The kernel serves the folder's
 * entries from its cache until the mtime moves, so a stale listing shows
 * other nanoseconds, new after each failed refresh: the next readdir then
 * comes here and fetches.
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
	ns = (long)(l->version % 976562u) * 1024 +
	     (listing_fresh(l) ? 0 : 1 + (long)(failures % 1023));
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = l->changed;
	st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = ns;
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
	case NK_META:
		fill_dir(fs, st, fs->started);
		break;
	case NK_LISTING:
		res = listing_stat(fs, n, st);
		break;
	case NK_REFRESH:
		res = refresh_render(fs, &b, &st->st_mtim);
		if (!res) {
			struct timespec ts = st->st_mtim;

			fill_file(fs, st, (off_t)b.len, ts.tv_sec);
			st->st_mtim = st->st_ctim = ts;
		}
		buf_release(&b);
		break;
	case NK_METAFILE:
		res = meta_render(fs, n->name, &b);
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
	else if (!strcmp(name, META_NAME))
		*kind = NK_META;
	else
		return -ENOENT;
	return 0;
}

static int meta_entry(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(meta_names) / sizeof(*meta_names); i++)
		if (!strcmp(name, meta_names[i]))
			return 0;
	return -ENOENT;
}

/*
 * How long the kernel may keep a node's entry and attributes: what is
 * left of the ttl of the data behind it, so nothing it shows is older
 * than the ttl. Stats change all the time, and a .refresh must be looked
 * up (and so done) every time.
 */
static double keep_for(struct fs *fs, const struct node *n)
{
	const struct node *tn = node_task(n);
	struct listing *l = NULL;
	struct task *t;
	double left = ttl_of(fs), data = left;

	if (n->kind == NK_REFRESH ||
	    (n->kind == NK_METAFILE && !strcmp(n->name, "stats")))
		return 0;
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
	if (l && !listing_fresh(l) && !is_query(parent)) {
		listing_unref(l);
		l = NULL;
	}
	res = listing_id(l, name, id);
	if (res)
		goto out;
	if (l && listing_has(l, *id)) {
		/* unless the store has seen it move since */
		t = is_query(parent) ? NULL : store_task_peek(*id);
		res = moved_out(parent, t) ? -ENOENT : 0;
		task_unref(t);
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
	if (!strcmp(name, REFRESH_NAME) && (parent->kind == NK_ROOT ||
	    parent->kind == NK_LISTING || parent->kind == NK_TASK)) {
		kind = NK_REFRESH;
		res = refresh_folder(fs, parent);
		goto found;
	}
	switch (parent->kind) {
	case NK_ROOT:
		res = root_entry(name, &kind, &group);
		break;
	case NK_META:
		res = meta_entry(name);
		kind = NK_METAFILE;
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
found:
	/* absent for as long as what says so is fresh */
	e.attr_timeout = e.entry_timeout = keep_for(fs, parent);
	if (res == -ENOENT) {
		/* before the reply: after it the parent may be forgotten */
		neg_add(fs, parent, name);
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
	e.attr_timeout = e.entry_timeout = keep_for(fs, n);
	e.ino = node_ino(&fs->nodes, n);
	e.attr.st_ino = e.ino;
	if (res) {
		node_forget(&fs->nodes, n, 1);
		fuse_reply_err(req, -res);
	} else {
		/* held before the reply: after it the kernel may forget n */
		bool push = (kind == NK_FIELD || kind == NK_TASKJSON) &&
			    S_ISREG(e.attr.st_mode) && e.attr.st_size > 0 &&
			    e.attr.st_size <= PUSH_MAX;

		if (push)
			node_hold(&fs->nodes, n);
		if (fuse_reply_entry(req, &e)) {
			node_forget(&fs->nodes, n, push ? 2 : 1);
		} else if (push) {
			push_add(fs, n);
		}
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
		fuse_reply_attr(req, &st, keep_for(fs, n));
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
	double keep;		/* < 0: ask keep_for */
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

/* A folder of fixed names: the root, or .mixpeekfs/. */
static int snap_names(struct fs *fs, struct node *n, struct dirsnap *d)
{
	static const char *const root[] = {
		"README", "by-status", "by-type", "tasks", META_NAME
	};
	const char *const *names = n->kind == NK_ROOT ? root : meta_names;
	size_t i, count = n->kind == NK_ROOT ? 5 : 3;

	d->ents = calloc(count, sizeof(*d->ents));
	if (!d->ents)
		return -ENOMEM;
	for (i = 0; i < count; i++) {
		struct dent *e = &d->ents[d->n++];

		if (!(e->name = strdup(names[i])))
			return -ENOMEM;
		e->kind = NK_METAFILE;
		if (n->kind == NK_ROOT)
			root_entry(names[i], &e->kind, &e->group);
		if (e->kind != NK_README && e->kind != NK_METAFILE)
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
	case NK_META:
		res = snap_names(fs, n, d);
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

/*
 * Entry i of folder dir: its name, node fields and (when known)
 * attributes. False for a task that has left dir since its listing was
 * fetched (the store has seen its new status).
 */
static bool dirsnap_entry(struct fs *fs, struct node *dir,
			  const struct dirsnap *d, size_t i, char *name,
			  struct dent *out)
{
	struct task *t;
	bool shown;

	if (!d->listing) {
		*out = d->ents[i];
		out->keep = -1;
		snprintf(name, TREE_NAME_MAX + 1, "%s", out->name);
		return true;
	}
	memset(out, 0, sizeof(*out));
	tree_name_escape(d->listing->ids[i], name);
	out->kind = NK_TASK;
	out->value = (char *)d->listing->ids[i];
	t = store_task_peek(d->listing->ids[i]);
	fill_dir(fs, &out->st, t ? t->changed : d->listing->fetched);
	/* keep_for would look the task up again */
	out->keep = t ? store_task_left(t) : -1;
	if (out->keep > ttl_of(fs))
		out->keep = ttl_of(fs);
	shown = !moved_out(dir, t);
	task_unref(t);
	return shown;
}

static mode_t kind_mode(enum nkind kind)
{
	switch (kind) {
	case NK_README:
	case NK_TASKJSON:
	case NK_METAFILE:
	case NK_REFRESH:
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
		} else if (!dirsnap_entry(fs, dir, d, i - 2, name, &de)) {
			continue;
		} else if (plus) {
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
			e.attr_timeout = e.entry_timeout =
				de.keep >= 0 ? de.keep : keep_for(fs, n);
		} else {
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
	/* reading .refresh returns once the kernel's caches are dropped */
	if (n->kind == NK_REFRESH)
		notifier_flush(fs);
	res = node_render(fs, n, &b, &when);
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
	static const char unknown[] = "fuse: unknown option(s): `";
	/* libfuse writes some lines in pieces: one line per thread */
	static _Thread_local char line[512];
	static _Thread_local size_t len;
	char shown[512];
	char *opt;

	vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	len = strlen(line);
	if (len < sizeof(line) - 1 && (!len || line[len - 1] != '\n'))
		return;		/* the rest is to come */
	if (len && line[len - 1] == '\n')
		line[len - 1] = '\0';
	len = 0;
	if (strncmp(line, unknown, sizeof(unknown) - 1)) {
		log_msg((int)level, "%s", line);
		return;
	}
	/* "fuse: unknown option(s): `-o bogus=1'": say it our way */
	opt = line + sizeof(unknown) - 1;
	if (!strncmp(opt, "-o ", 3))
		opt += 3;
	if (*opt && opt[strlen(opt) - 1] == '\'')
		opt[strlen(opt) - 1] = '\0';
	text_escape(shown, sizeof(shown), opt, strlen(opt));
	fprintf(stderr, "mixpeekfs: unknown option%s '%s' (see mixpeekfs "
		"--help)\n", strpbrk(opt, ", ") ? "s" : "", shown);
}

int fs_new(int argc, char **argv, struct options *o, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	struct fuse_args a = FUSE_ARGS_INIT(argc, argv);
	struct fuse_args trial = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	int i;

	if (!fs)
		return -1;
	fuse_set_log_func(fuse_log_to_ours);
	fs->args = a;
	fs->opts = o;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->started = time(NULL);
	pthread_mutex_init(&fs->note.lock, NULL);
	pthread_cond_init(&fs->note.wake, NULL);
	pthread_cond_init(&fs->note.idle, NULL);
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
	if (text_control_str(fs->cmd.mountpoint) >= 0) {
		/* it is logged and shown in .mixpeekfs/config */
		fprintf(stderr, "mixpeekfs: the mountpoint must not contain "
			"control characters\n");
		return -1;
	}
	if (fs->cmd.debug)
		o->debug = 1;
	/*
	 * libfuse checks its own options only when it makes the session,
	 * after the API probe: make one now and drop it, so that an unknown
	 * option is refused first (fuse_log_to_ours says which).
	 */
	for (i = 0; i < fs->args.argc; i++)
		if (fuse_opt_add_arg(&trial, fs->args.argv[i])) {
			fuse_opt_free_args(&trial);
			fprintf(stderr, "mixpeekfs: out of memory\n");
			return -1;
		}
	se = fuse_session_new(&trial, &fs_ops, sizeof(fs_ops), fs);
	fuse_opt_free_args(&trial);
	if (!se)
		return -1;
	fuse_session_destroy(se);
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
	const char *host = fs->opts->host;
	char *name = NULL, *fsopts = NULL;
	int res;

	/*
	 * The fstab source names the mount, so mount -a knows it is mounted;
	 * without one, mixpeekfs:HOST.
	 */
	res = !host ||
	      (fs->opts->source ? asprintf(&name, "fsname=%s", fs->opts->source) :
	       asprintf(&name, "fsname=mixpeekfs:%s", host)) < 0 ||
	      fuse_opt_add_opt(&fsopts, "ro,default_permissions,"
			       "subtype=mixpeekfs") ||
	      fuse_opt_add_opt_escaped(&fsopts, name) ||
	      fuse_opt_add_arg(&fs->args, "-o") ||
	      fuse_opt_add_arg(&fs->args, fsopts);
	free(name);
	free(fsopts);
	if (res) {
		fprintf(stderr, "mixpeekfs: out of memory\n");
		return -1;
	}
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

/* ---- forced refresh ---- */

static void refreshed_now(struct fs *fs)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	__atomic_store_n(&fs->refreshed,
			 (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec,
			 __ATOMIC_RELAXED);
	stats_add(STATS_REFRESHES, 1);
}

/* What <folder>/.refresh reads: when the last refresh was done. */
static int refresh_render(struct fs *fs, struct buf *out, struct timespec *ts)
{
	int64_t ns = __atomic_load_n(&fs->refreshed, __ATOMIC_RELAXED);
	time_t sec = (time_t)(ns / 1000000000);
	char when[32] = "never";
	struct tm tm;

	ts->tv_sec = sec;
	ts->tv_nsec = (long)(ns % 1000000000);
	if (ns && gmtime_r(&sec, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf_printf(out, "refreshed %s\n", when);
}

/*
 * A lookup of <folder>/.refresh: fetch the folder's listing (or task) now
 * and drop what the kernel kept of it; at the root, everything. Within a
 * request only attributes and pages are dropped, never entries (that
 * would lock the folder the lookup holds).
 */
static int refresh_folder(struct fs *fs, struct node *n)
{
	struct listing *l = NULL;
	struct task *t = NULL;
	struct lquery lq;
	char *id;
	int res;

	if (n->kind == NK_ROOT) {
		log_info("refreshing everything (.refresh)");
		refresh_all(fs);
		return 0;
	}
	if (n->kind == NK_TASK) {
		res = store_task_refresh(node_value(n), &t);
		task_unref(t);
		if (res)
			return res;
		if (!(id = strdup(node_value(n))))
			return -ENOMEM;
		invalidate_changed(fs, &id, 1, false);
	} else {
		res = lquery_get(n, &lq);
		if (res)
			return res;
		store_expire(&lq.b, lq.q.limit);
		res = fetch_listing(n, NULL, &lq, &l);
		lquery_release(&lq);
		if (res)
			return res;
		/* the last good listing, served because the fetch failed */
		res = __atomic_load_n(&l->expired, __ATOMIC_RELAXED) ? -EIO : 0;
		listing_unref(l);
		if (res)
			return res;
		fuse_lowlevel_notify_inval_inode(fs->se, node_ino(&fs->nodes, n),
						 0, 0);
	}
	neg_due(fs, n);
	refreshed_now(fs);
	return 0;
}

/* ---- telling the kernel (see struct notifier) ---- */

static void push_one(struct fs *fs, struct node *n, bool *again)
{
	struct buf b = BUF_INIT(PUSH_MAX);
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);
	time_t when;
	int res = -ESTALE;

	*again = false;
	/* never a fetch from here: that would hold up invalidations */
	if (store_task_fresh(node_value(node_task(n))))
		res = node_render(fs, n, &b, &when);
	if (!res && b.len) {
		bv.buf[0].mem = b.data;
		bv.buf[0].size = b.len;
		res = fuse_lowlevel_notify_store(fs->se, node_ino(&fs->nodes, n),
						 0, &bv, 0);
	}
	buf_release(&b);
	*again = res == -ENOENT;
}

static void push_all(struct fs *fs, struct node **batch, size_t n)
{
	struct node *retry[PUSH_QUEUE];
	size_t i, nr = 0;
	bool again;

	for (i = 0; i < n; i++) {
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
		push_one(fs, retry[i], &again);
		node_forget(&fs->nodes, retry[i], 1);
	}
}

/* Remember that name was not found in parent (for a later refresh). */
static void neg_add(struct fs *fs, struct node *parent, const char *name)
{
	struct notifier *nt = &fs->note;
	struct neg *ng;
	char *copy = strdup(name);

	if (!copy)
		return;
	pthread_mutex_lock(&nt->lock);
	ng = &nt->negs[nt->negpos];
	if (!nt->running || nt->stop || ng->due) {
		pthread_mutex_unlock(&nt->lock);
		free(copy);
		return;
	}
	nt->negpos = (nt->negpos + 1) % NEG_MAX;
	if (ng->parent)
		node_forget(&fs->nodes, ng->parent, 1);
	free(ng->name);
	node_hold(&fs->nodes, parent);
	ng->parent = parent;
	ng->name = copy;
	pthread_mutex_unlock(&nt->lock);
}

static bool same_node(const struct node *n, const void *arg)
{
	return !arg || n == arg;
}

/* Have the helper drop the names not found in parent (NULL: anywhere). */
static void neg_due(struct fs *fs, const struct node *parent)
{
	neg_due_if(fs, same_node, parent);
}

/* The same for the names not found in the folders where match holds. */
static void neg_due_if(struct fs *fs,
		       bool (*match)(const struct node *, const void *),
		       const void *arg)
{
	struct notifier *nt = &fs->note;
	size_t i;

	pthread_mutex_lock(&nt->lock);
	for (i = 0; i < NEG_MAX; i++) {
		struct neg *ng = &nt->negs[i];

		if (ng->parent && !ng->due && match(ng->parent, arg)) {
			ng->due = true;
			nt->ndue++;
		}
	}
	if (nt->ndue) {
		nt->queued++;
		pthread_cond_signal(&nt->wake);
	}
	pthread_mutex_unlock(&nt->lock);
}

/* Drop the kernel's entries for the names marked due. Lock held. */
static void neg_drop_locked(struct fs *fs)
{
	struct notifier *nt = &fs->note;
	size_t i;

	for (i = 0; i < NEG_MAX && nt->ndue; i++) {
		struct neg ng = nt->negs[i];

		if (!ng.due)
			continue;
		memset(&nt->negs[i], 0, sizeof(nt->negs[i]));
		nt->ndue--;
		pthread_mutex_unlock(&nt->lock);
		fuse_lowlevel_notify_inval_entry(fs->se,
			node_ino(&fs->nodes, ng.parent), ng.name,
			strlen(ng.name));
		node_forget(&fs->nodes, ng.parent, 1);
		free(ng.name);
		pthread_mutex_lock(&nt->lock);
	}
}

/*
 * Wait until the helper has done the work queued so far (bounded: it
 * may be stuck behind a folder a hanging request holds).
 */
static void notifier_flush(struct fs *fs)
{
	struct notifier *nt = &fs->note;
	unsigned long target;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&nt->lock);
	target = nt->queued;
	while (nt->running && !nt->helper_done && nt->done < target &&
	       pthread_cond_timedwait(&nt->idle, &nt->lock, &until) == 0)
		;
	pthread_mutex_unlock(&nt->lock);
}

/*
 * Queue a file the kernel just looked up, with the reference the caller
 * took for it; a full queue drops it.
 */
static void push_add(struct fs *fs, struct node *n)
{
	struct notifier *nt = &fs->note;
	bool queued = false;

	pthread_mutex_lock(&nt->lock);
	if (nt->running && !nt->stop && nt->npush < PUSH_QUEUE) {
		nt->push[nt->npush++] = n;
		pthread_cond_signal(&nt->wake);
		queued = true;
	}
	pthread_mutex_unlock(&nt->lock);
	if (!queued)
		node_forget(&fs->nodes, n, 1);
}

/* The store's hook (under its lock): note the id for the helper. */
static void task_changed(const char *id, void *arg)
{
	struct notifier *nt = &((struct fs *)arg)->note;
	char **v;

	pthread_mutex_lock(&nt->lock);
	if (!nt->running || nt->stop)
		goto out;
	if (nt->nchanged == nt->cap) {
		size_t cap = nt->cap ? nt->cap * 2 : 64;

		v = cap <= (1u << 20) ? realloc(nt->changed,
						cap * sizeof(*v)) : NULL;
		if (!v) {
			nt->inval_all = true;
			goto signal;
		}
		nt->changed = v;
		nt->cap = cap;
	}
	if (!(nt->changed[nt->nchanged] = strdup(id)))
		nt->inval_all = true;
	else
		nt->nchanged++;
signal:
	nt->queued++;
	pthread_cond_signal(&nt->wake);
out:
	pthread_mutex_unlock(&nt->lock);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct idset {
	char **ids;	/* sorted */
	size_t n;
};

/* A node inside one of the tasks of set (arg). */
static bool in_task_of(const struct node *n, const void *arg)
{
	const struct idset *set = arg;
	const struct node *t = node_task(n);
	const char *id;

	if (!t)
		return false;
	id = node_value(t);
	return bsearch(&id, set->ids, set->n, sizeof(*set->ids), cmp_str);
}

static bool in_idset(const struct node *n, void *arg)
{
	if (n->kind == NK_REFRESH)
		return false;	/* its READ may be waiting for us */
	if (n->kind == NK_LISTING && n->parent->kind == NK_GROUP &&
	    n->group == STORE_STATUSES)
		return true;	/* status folders: a task may have moved */
	return in_task_of(n, arg);
}

static bool any_node(const struct node *n, void *arg)
{
	(void)arg;
	return n->kind != NK_REFRESH;	/* its READ may be waiting for us */
}

/* A task folder in a by-status/ folder: its entry may have to go. */
static bool in_status_folder(const struct node *n)
{
	const struct node *l = n->parent;

	return n->kind == NK_TASK && l->kind == NK_LISTING &&
	       l->parent->kind == NK_GROUP && l->group == STORE_STATUSES;
}

/*
 * Drop the kernel's attributes and pages of the nodes that match (all
 * with set NULL), and the entries of matching tasks in status folders.
 * Not from a request handler: dropping an entry locks its folder.
 */
static void invalidate(struct fs *fs, struct idset *set, bool entries)
{
	struct node **v;
	long n, i;

	n = node_collect(&fs->nodes, set ? in_idset : any_node, set, &v);
	if (n < 0) {
		log_warn("cannot drop the kernel's caches: out of memory");
		return;
	}
	for (i = 0; i < n; i++)
		if (!fuse_lowlevel_notify_inval_inode(fs->se,
				node_ino(&fs->nodes, v[i]), 0, 0))
			stats_add(STATS_INVALIDATIONS, 1);
	for (i = 0; entries && i < n; i++)
		if (in_status_folder(v[i]) &&
		    !fuse_lowlevel_notify_inval_entry(fs->se,
				node_ino(&fs->nodes, v[i]->parent),
				v[i]->name, strlen(v[i]->name)))
			stats_add(STATS_INVALIDATIONS, 1);
	for (i = 0; i < n; i++)
		node_forget(&fs->nodes, v[i], 1);
	free(v);
}

/*
 * Drop the kernel's caches of tasks ids[0..n), also the names it was
 * told do not exist inside them (a field may have appeared), and free
 * the ids.
 */
static void invalidate_changed(struct fs *fs, char **ids, size_t n,
			       bool entries)
{
	struct idset set = { ids, n };
	size_t i;

	qsort(ids, n, sizeof(*ids), cmp_str);
	invalidate(fs, &set, entries);
	neg_due_if(fs, in_task_of, &set);
	for (i = 0; i < n; i++)
		free(ids[i]);
}

/* Everything stale, in the store and in the kernel. */
static void refresh_all(struct fs *fs)
{
	store_expire_all();
	refreshed_now(fs);
	invalidate(fs, NULL, false);
	neg_due(fs, NULL);
}

static void *notifier_main(void *arg)
{
	struct fs *fs = arg;
	struct notifier *nt = &fs->note;
	struct node *batch[PUSH_QUEUE];
	size_t npush, nchanged;
	bool all, inval_all;
	char **changed;

	unsigned long target;

	pthread_mutex_lock(&nt->lock);
	while (!nt->stop) {
		if (!nt->npush && !nt->nchanged && !nt->refresh_all &&
		    !nt->inval_all && !nt->ndue) {
			nt->done = nt->queued;
			pthread_cond_broadcast(&nt->idle);
			pthread_cond_wait(&nt->wake, &nt->lock);
			continue;
		}
		target = nt->queued;
		npush = nt->npush;
		memcpy(batch, nt->push, npush * sizeof(*batch));
		changed = nt->changed;
		nchanged = nt->nchanged;
		all = nt->refresh_all;
		inval_all = nt->inval_all;
		nt->npush = nt->nchanged = nt->cap = 0;
		nt->changed = NULL;
		nt->refresh_all = nt->inval_all = false;
		pthread_mutex_unlock(&nt->lock);
		if (all) {
			log_info("SIGHUP: refreshing everything");
			refresh_all(fs);
		} else if (inval_all) {
			invalidate(fs, NULL, false);
		}
		if (nchanged)
			invalidate_changed(fs, changed, nchanged, true);
		free(changed);
		pthread_mutex_lock(&nt->lock);
		neg_drop_locked(fs);
		nt->done = target;
		pthread_cond_broadcast(&nt->idle);
		pthread_mutex_unlock(&nt->lock);
		push_all(fs, batch, npush);
		pthread_mutex_lock(&nt->lock);
	}
	for (size_t i = 0; i < NEG_MAX; i++) {
		if (nt->negs[i].parent)
			node_forget(&fs->nodes, nt->negs[i].parent, 1);
		free(nt->negs[i].name);
		memset(&nt->negs[i], 0, sizeof(nt->negs[i]));
	}
	nt->done = nt->queued;
	nt->helper_done = true;
	pthread_cond_broadcast(&nt->idle);
	while (nt->npush)
		node_forget(&fs->nodes, nt->push[--nt->npush], 1);
	while (nt->nchanged)
		free(nt->changed[--nt->nchanged]);
	free(nt->changed);
	nt->changed = NULL;
	pthread_mutex_unlock(&nt->lock);
	return NULL;
}

/* The signals the sigwait thread takes; blocked in every thread. */
static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

static void wake_only(int sig)
{
	(void)sig;	/* SIGUSR1: interrupts the loop's wait, nothing else */
}

/*
 * SIGHUP refreshes everything. SIGTERM and SIGINT stop the helper first,
 * while the loop still answers the requests it may be waiting behind,
 * and only then end the loop (its main thread waits interruptibly; a
 * SIGUSR1 wakes it to see the session has exited).
 */
static void *signal_main(void *arg)
{
	struct fs *fs = arg;
	struct notifier *nt = &fs->note;
	sigset_t set;
	bool stop;
	int sig;

	signal_set(&set);
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		pthread_mutex_lock(&nt->lock);
		stop = nt->stop;
		if (!stop && sig == SIGHUP) {
			nt->refresh_all = true;
			nt->queued++;
			pthread_cond_signal(&nt->wake);
		} else if (!stop) {
			/* requests waiting on the API give up now */
			http_abort_all();
			nt->stop = stop = true;
			pthread_cond_signal(&nt->wake);
			while (nt->running && !nt->helper_done)
				pthread_cond_wait(&nt->idle, &nt->lock);
			fuse_session_exit(fs->se);
			pthread_kill(fs->main_thread, SIGUSR1);
		}
		pthread_mutex_unlock(&nt->lock);
		if (stop)
			return NULL;
	}
}

static void notifier_start(struct fs *fs)
{
	struct notifier *nt = &fs->note;
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_only;	/* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	fs->main_thread = pthread_self();
	signal_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_mutex_lock(&nt->lock);
	nt->running = !pthread_create(&nt->thread, NULL, notifier_main, fs);
	nt->hup_running = !pthread_create(&nt->hup, NULL, signal_main, fs);
	pthread_mutex_unlock(&nt->lock);
	if (!nt->hup_running)	/* libfuse's own handlers, then */
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (!nt->running || !nt->hup_running)
		log_warn("no helper thread: caches are dropped only by ttl");
	store_on_change(task_changed, fs);
}

static void notifier_stop(struct fs *fs)
{
	struct notifier *nt = &fs->note;
	bool running, hup;

	store_on_change(NULL, NULL);
	pthread_mutex_lock(&nt->lock);
	running = nt->running;
	hup = nt->hup_running;
	nt->hup_running = false;
	nt->stop = true;
	pthread_cond_signal(&nt->wake);
	pthread_mutex_unlock(&nt->lock);
	if (hup) {
		pthread_kill(nt->hup, SIGHUP);	/* gone already: harmless */
		pthread_join(nt->hup, NULL);
	}
	if (running)
		pthread_join(nt->thread, NULL);
	pthread_mutex_lock(&nt->lock);
	nt->running = false;
	pthread_mutex_unlock(&nt->lock);
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

	notifier_start(fs);
	res = run_loop(fs);
	notifier_stop(fs);
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
	pthread_cond_destroy(&fs->note.wake);
	pthread_cond_destroy(&fs->note.idle);
	pthread_mutex_destroy(&fs->note.lock);
	free(fs->cmd.mountpoint);
	fuse_opt_free_args(&fs->args);
	free(fs);
}
