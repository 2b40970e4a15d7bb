/* SPDX-License-Identifier: MIT */
/*
 * fs_i.h: what the files of the FUSE layer share (as libfuse's fuse_i.h).
 * Not for core: nothing below src/fs_*.c, ns.c, dirsnap.c, vfile.c,
 * kcache.c and session.c includes it.
 *
 *   session.c  command line, mount, daemon, the sigwait thread, the loop
 *   fs_ops.c   the fuse_lowlevel_ops callbacks: find the node, ask, reply
 *   fop.c      requests that wait for the API: kept, answered from
 *              runner threads of ours, interrupted at once
 *   ns.c       what a path is and what it shows (no libfuse calls)
 *   dirsnap.c  a folder's entries as of one readdir (no libfuse calls)
 *   vfile.c    README, .refresh, the files of .mixpeekfs (no libfuse calls)
 *   lview.c    a listing's .jsonl and .tsv (no libfuse calls)
 *   kcache.c   the helper thread that tells the kernel what changed; the
 *              only user of fuse_lowlevel_notify_*
 *   wait.c     <task>/.wait: READs kept and answered from its own threads
 *
 * Lock order: the store's lock, then the notifier's (struct notifier),
 * then the node table's. The store calls kcache's task_changed under its
 * lock; nothing here calls the store with the notifier's lock held.
 * wait.c's lock is taken alone or right under the store's (its change
 * hook), never with another held; fop.c's alone, or under libfuse's
 * request lock (an interrupt).
 *
 * The files call each other one way only: session -> fs_ops -> dirsnap,
 * kcache -> ns -> vfile, dirsnap -> lview -> ns, fs_ops -> fop, and
 * session, fs_ops, kcache, ns, vfile -> wait (checked by
 * tests/unit/check_layers.sh).
 *
 * Which calls may block on HTTP: anything that reaches store_listing or
 * store_task (node_listing with fetch, view_get, node_stat of a task,
 * ns_lookup, kcache_refresh, snap_get), unless the thread's scheduler
 * context says nofetch (a FUSE worker in fop_run, kcache's helper): then
 * they answer from memory or return -EINPROGRESS. The rest never does.
 */
#ifndef MIXPEEKFS_FS_I_H
#define MIXPEEKFS_FS_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <fuse_lowlevel.h>
#include <uthash.h>

#include "buf.h"
#include "json.h"
#include "names.h"
#include "node.h"
#include "opts.h"
#include "query.h"
#include "scheduler.h"
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
#define PUSH_MAX (64 * 1024) /* bigger files wait for their READ */
#define PUSH_QUEUE 4096
#define NEG_MAX 1024

/* The helper thread's work and state; see kcache.c. */
struct notifier {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct node *push[PUSH_QUEUE]; /* held nodes (node_hold) */
	size_t npush;
	char **changed; /* task ids, malloc'd */
	size_t nchanged, cap;
	bool refresh_all; /* SIGHUP */
	bool inval_all;	  /* too many changes to list */
	bool stop, running;
	bool helper_done; /* the helper has left its loop */
	pthread_t thread;
	/*
	 * The last NEG_MAX names answered "no such entry": the kernel keeps
	 * those for ttl, and a refresh must drop them too.
	 */
	struct neg {
		struct node *parent; /* held; NULL: free slot */
		char *name;
		bool due; /* to drop now */
	} negs[NEG_MAX];
	size_t negpos, ndue;
	/*
	 * Memory (see kcache.c, trim): the store and the nodes are over
	 * cache_size, listings are to go. pending: node bytes of folders
	 * the kernel was told to forget, not yet forgotten then (when the
	 * nodes took pending_base bytes, at pending_at). recheck_at: when
	 * those count no more, check the total again (0: no need); what
	 * the kernel did not forget may still be over the cap, and nothing
	 * else would look until the next growth.
	 */
	bool trim;
	size_t pending, pending_base;
	time_t pending_at, recheck_at;
	/* work queued and done, so a reader can wait for it (flush) */
	unsigned long queued, done;
	pthread_cond_t idle;
};

/* REFRESH_NAME, WAIT_NAME, JSONL_NAME, TSV_NAME: names.h */
#define META_NAME ".mixpeekfs"

/* One mount. */
struct fs {
	struct options *opts;
	struct fuse_args args;
	struct fuse_cmdline_opts cmd;
	struct fuse_session *se;
	bool mounted;
	struct node_table nodes;
	bool no_open;	 /* the kernel can do without OPEN */
	bool no_opendir; /* ... and without OPENDIR */
	/*
	 * atomic: fs_init wants FUSE_PARALLEL_DIROPS and the INIT reply,
	 * not sent yet, is to carry it (session.c: libfuse before 3.17)
	 */
	bool dirops_due;
	bool dirops_hook; /* session.c's writev hook is installed */
	/*
	 * atomic: the kernel refused to forget a name it caches as absent
	 * (Linux 6.19 to 7.1 at least): absent names are kept NEG_KEEP_BROKEN
	 * seconds at most from then on (kcache.c: neg_keep)
	 */
	bool neg_broken;
	uid_t uid;
	gid_t gid;
	time_t started;
	int64_t refreshed;     /* atomic: the last forced refresh, in ns */
	pthread_t main_thread; /* runs the loop */
	pthread_t sig_thread;  /* sigwait (session.c) */
	bool sig_running;
	bool sig_stop;	       /* atomic: the sigwait thread is to end */
	unsigned long changes; /* atomic: task changes the store told of
				* (kcache's hook); views made before are
				* made again */
	struct notifier note;
	struct waits *waits; /* wait.c; NULL when not running */
	struct fops *fops;   /* fop.c; NULL when not running */
	/* vfile.c: stats as the last stat rendered them */
	pthread_mutex_t stats_lock;
	char *stats_text; /* protected by stats_lock */
	size_t stats_len; /* protected by stats_lock */
	int64_t stats_at; /* protected by stats_lock: CLOCK_MONOTONIC ns */
};

#define TASK_JSON "task.json"

/* The JSON text of a status or type value (they are short). */
#define QUOTED_MAX 65536
/*
 * The most a file of the mount may be: a field or task.json comes from
 * one API response, which max_response caps at 1G; a little room for
 * task.json's indentation.
 */
#define RENDER_MAX ((size_t)2 << 30)
/* A path inside a task: cJSON nests at most 1000 deep. */
#define TASK_PATH_MAX (1000 * (TREE_NAME_MAX + 1))

/* ---- ns.c: what a path is and what it shows ---- */

/* The request a listing folder stands for, parsed from its path. */
struct lquery {
	struct query q;
	const char *status; /* of the folder the path starts in */
	const char *type;
	char *as_filter; /* malloc'd JSON text of status or type, when
				 * the API's schema does not list the value */
	struct json_cond *conds;
	struct list_body b;
};

/* A node inside a task: the task, its tree and the node's place in it. */
struct view {
	struct task *task;
	struct ttree *tree;
	const struct tnode *at;
};

double ttl_of(struct fs *fs);
bool is_query(const struct node *n);
int lquery_get(const struct node *n, struct lquery *lq);
void lquery_release(struct lquery *lq);
/* store_listing for folder n (or its query child), naming it in logs. */
int fetch_listing(const struct node *n, const char *child, struct lquery *lq,
		  struct listing **out);
/* The listing behind folder n: fetched if needed, or only if cached. */
int node_listing(const struct node *n, bool fetch, struct listing **out);
/* Whether t has left listing folder n since its listing was fetched. */
bool moved_out(const struct node *n, const struct task *t);
/* The task behind n (fetched if stale), its tree if tree, and name in it. */
int view_get(const struct node *n, const char *name, bool tree, struct view *v);
void view_release(struct view *v);
void fill_dir(struct fs *fs, struct stat *st, time_t when);
void fill_file(struct fs *fs, struct stat *st, off_t size, time_t when);
/* The bytes of file node n; *when: the time they stand for (0: none). */
int node_render(struct fs *fs, struct node *n, struct buf *out, time_t *when);
int node_stat(struct fs *fs, struct node *n, struct stat *st);
int root_entry(const char *name, enum nkind *kind, int *group);
/* How long the kernel may keep n's entry and attributes. Never blocks. */
double keep_for(struct fs *fs, const struct node *n);
/*
 * What name in folder parent is: its kind, group, raw value (malloc'd)
 * and, for names inside a task, its attributes (st_mode 0: not filled).
 * 0, -ENOENT (absent), or another -errno.
 */
int ns_lookup(struct fs *fs, struct node *parent, const char *name,
	      enum nkind *kind, int *group, char **value, struct stat *st);
/*
 * Extended attributes: user.mixpeek.task_id, .task_type and .status on
 * every node in a task (the record's values, raw: no request but what
 * the task's data needs). xattr_get: name's value into out; -ENODATA for
 * another user.* name, -EOPNOTSUPP for other namespaces (no ACLs, no
 * labels). xattr_list: the names, each ending in a NUL (none outside a
 * task). May block on HTTP (a stale task record).
 */
int xattr_get(struct fs *fs, struct node *n, const char *name, struct buf *out);
int xattr_list(const struct node *n, struct buf *out);

/* ---- dirsnap.c: a folder's entries as of one readdir ---- */

struct dent {
	char *name;
	enum nkind kind;
	int group;
	char *value;
	struct stat st; /* st_mode 0: ask node_stat */
	double keep;	/* < 0: ask keep_for */
};

/*
 * A folder's snapshots kept for readers in the middle of a readdir: each
 * offset handed out names its snapshot (gen in the high 32 bits, the
 * entry in the low), so that a reader goes on with the one it began with
 * while another reader's readdir makes a newer one (a listing replaced
 * meanwhile would show it a name twice, or miss one).
 */
#define SNAP_KEEP 8
#define SNAP_KEEP_SECS 60	 /* ... while a reader took it this lately */
#define SNAP_GEN_MAX 0x7fffffffu /* offsets stay positive */

struct dirsnap;
void *dirsnap_ref(void *d);
void dirsnap_unref(void *d);
/*
 * The snapshot to read from at off: a new one at offset 0 (the newest
 * again when its listing is the same), else the one off names; *from:
 * the entry to start at. May block on HTTP.
 */
int snap_get(struct fs *fs, struct node *n, off_t off, struct dirsnap **out,
	     size_t *from);
/* The offset of entry i of d (. and .. are 0 and 1). */
off_t snap_off(const struct dirsnap *d, size_t i);
/* A reader read d of n to the end (n may let it go). */
void snap_read_all(struct fs *fs, struct node *n, struct dirsnap *d);
size_t dirsnap_count(const struct dirsnap *d);
/* Entry i of dir; false for a task that has left dir meanwhile. */
bool dirsnap_entry(struct fs *fs, struct node *dir, const struct dirsnap *d,
		   size_t i, char *name, struct dent *out);

/*
 * The .jsonl or .tsv of listing folder n: its attributes and bytes (the
 * node's snapshot, or a new one: the listing is fetched if stale). A read
 * at offset 0 takes a new snapshot if the listing or a task changed; a
 * read past it goes on with the node's. May block on HTTP.
 */
int vsnap_stat(struct fs *fs, struct node *n, struct stat *st);
/*
 * The bytes of the views' texts kept on their nodes (counted in
 * cache_size with the nodes). A stat keeps the text it rendered only
 * while they are within cache_size / VIEW_TEXT_SHARE; a read keeps it
 * until its last byte is read. Never blocks.
 */
#define VIEW_TEXT_SHARE 8
size_t views_bytes(void);
int vsnap_read(struct fs *fs, struct node *n, size_t size, off_t off,
	       struct buf *out);

/* ---- lview.c: a listing's .jsonl and .tsv ---- */

static inline bool is_view(const struct node *n)
{
	return n->kind == NK_JSONL || n->kind == NK_TSV;
}

/* NK_JSONL or NK_TSV for those names in a listing folder, else NK_ROOT. */
enum nkind view_kind(const struct node *parent, const char *name);
/*
 * The bytes of view kind of listing folder dir, as of listing l and the
 * task records held now, appended to out; *newest: the latest time of
 * the listing and its tasks. No request, but for a task the store let
 * go of (cache_size), which is fetched again.
 */
int lview_render(const struct node *dir, const struct listing *l,
		 enum nkind kind, struct buf *out, time_t *newest);

/* ---- vfile.c: README, .refresh, .mixpeekfs/ ---- */

extern const char vfile_readme[];
extern const char *const vfile_meta_names[];
#define VFILE_META_COUNT 3
/*
 * The bytes of .mixpeekfs/NAME. for_stat: they are rendered for a stat
 * (the size the kernel is told); otherwise for a READ, which for stats
 * gets the text that the last stat rendered, if that was at most
 * STATS_KEPT_NS ago: the counters move between the two, and the kernel
 * cuts a read at the size it was told.
 */
int vfile_meta_render(struct fs *fs, const char *name, bool for_stat,
		      struct buf *out);
/* Free what vfile keeps (fs_free). */
void vfile_release(struct fs *fs);
/* What <folder>/.refresh reads, and the time of the last refresh. */
int vfile_refresh_render(struct fs *fs, struct buf *out, struct timespec *ts);
void vfile_refreshed_now(struct fs *fs);

/* ---- kcache.c: telling the kernel outside requests ---- */

/* Start and stop the helper thread; hook it to the store's changes. */
void kcache_start(struct fs *fs);
void kcache_stop(struct fs *fs);
/* SIGHUP: have the helper refresh everything. */
void kcache_hup(struct fs *fs);
/* Stop the helper and wait until it has stopped (shutdown): false if it
 * was stopping already. */
bool kcache_quiesce(struct fs *fs);
/* Queue file n, held by the caller, for its bytes to be pushed. */
void push_add(struct fs *fs, struct node *n);
/* Remember that name was not found in parent (for a later refresh). */
void neg_add(struct fs *fs, struct node *parent, const char *name);
/* Have the helper drop the names not found in parent (NULL: anywhere). */
void neg_due(struct fs *fs, const struct node *parent);
/* How long the kernel may keep a name absent that keep (ttl) would say. */
#define NEG_KEEP_BROKEN 1.0
double neg_keep(struct fs *fs, double keep);
/* Wait until the helper has done the work queued so far (bounded). */
void notifier_flush(struct fs *fs);
/* Drop the kernel's caches of tasks ids[0..n) and free the ids. */
void invalidate_changed(struct fs *fs, char **ids, size_t n, bool entries);
/* Drop the kernel's attributes and pages of n (safe in a request). */
void kcache_inval_node(struct fs *fs, struct node *n);
/* Everything stale, in the store and in the kernel. */
void refresh_all(struct fs *fs);
/*
 * The lookup of <folder>/.refresh: fetch n's listing (or task) now and
 * drop what the kernel kept of it; at the root, everything. May block on
 * HTTP.
 */
int kcache_refresh(struct fs *fs, struct node *n);

/* ---- wait.c: <task>/.wait, reading it waits for the task to end ---- */

/* "COMPLETED_WITH_ERRORS\n", the longest answer, and room */
#define WAIT_TEXT_MAX 32
/*
 * The size .wait shows while its task runs: at least the longest answer
 * (a READ answered shorter tells the kernel the true size). It and the
 * mtime stay the same until the task ends.
 */
#define WAIT_SIZE 22
/* How long the kernel keeps .wait's entry and attributes: longer than any
 * wait (wait_max), so none of them changes while a READ is kept. */
#define WAIT_KEEP (30.0 * 86400)
/*
 * The answer for a task already in a terminal status ("FAILED\n") into
 * text, its length returned, and its time in *when (if not NULL); 0 if
 * the store holds no terminal record. Never blocks.
 */
int wait_text(const char *id, char *text, size_t cap, time_t *when);
/* The READ of .wait node n: answered now if the task has ended, else kept
 * and answered from wait.c's threads. Never blocks. */
void wait_read(struct fs *fs, fuse_req_t req, struct node *n, size_t size,
	       off_t off);
/* "waits N\nwaited_tasks N\n": the reads kept, the tasks polled. */
int wait_stats(struct fs *fs, struct buf *out);
/* The store's change hook (called by kcache's, under the store's lock). */
void wait_changed(struct fs *fs, const char *id);
/* Start the threads; stop them once the loop has ended and the change
 * hook is gone, answering every kept read (EIO). */
int wait_start(struct fs *fs);
void wait_stop(struct fs *fs);
/* SIGTERM, while the loop still runs: answer every kept read EIO, and
 * the kernel's second try of each (bounded: a second). */
void wait_shutdown(struct fs *fs);

/* ---- fop.c: FUSE requests that wait for the API off the FUSE workers ---- */

enum fop_phase { FOP_REGISTERING, FOP_QUEUED, FOP_RUNNING };

/*
 * One FUSE request, as its handler (fs_ops.c) sees it: on the FUSE
 * worker (fop_run; name borrowed), or kept for a runner thread (a copy;
 * name owned, the node held). A handler replies through fop_reply_*, or
 * returns -EINPROGRESS without replying when it needs the API (only on
 * the FUSE worker: the store says so in nofetch mode).
 */
struct fop {
	struct fs *fs;
	fuse_req_t req; /* never dereferenced once it may be answered */
	fuse_ino_t ino; /* the node it is about (a lookup's parent) */
	char *name;	/* a lookup's or getxattr's */
	size_t size;	/* of the reply buffer */
	off_t off;
	bool plus; /* readdirplus */
	int (*fn)(struct fop *f);
	/* kept ones (fop.c) */
	bool kept;
	int state;	      /* atomic: whether it was answered */
	enum fop_phase phase; /* under fop.c's lock */
	bool interrupted;     /* under fop.c's lock */
	uint64_t serial;
	struct cancel cancel;
	struct node *held;
	struct fop *next;
	UT_hash_handle hh;
};

/* Run fn for f on this FUSE worker from memory; keep f for a runner if
 * it needs the API. Never blocks on HTTP. */
void fop_run(struct fop *f, int (*fn)(struct fop *));
/* Replies, sent only by whoever answers f first (the runner, or the
 * interrupt's EINTR); -EINTR when that was not this call. */
int fop_reply_err(struct fop *f, int err);
int fop_reply_entry(struct fop *f, const struct fuse_entry_param *e);
int fop_reply_attr(struct fop *f, const struct stat *st, double timeout);
int fop_reply_buf(struct fop *f, const char *buf, size_t size);
int fop_reply_xattr(struct fop *f, size_t size);
/* Start before the loop; stop once it has ended (joins the runners). */
int fop_start(struct fs *fs);
void fop_stop(struct fs *fs);
/* "requests_waiting N\nrequests_queued N\nrunners N\n" */
int fop_stats(struct fs *fs, struct buf *out);

/* ---- fs_ops.c ---- */

extern const struct fuse_lowlevel_ops fs_ops;

#endif
