// SPDX-License-Identifier: MIT
/*
 * fs_ops: the FUSE low-level operations, and only those: find the node,
 * ask ns.c (or dirsnap.c) what it is, reply. Every path is a node
 * (node.c); nothing here outlives the task data it came from.
 *
 * Caching is left to the kernel: no OPEN or OPENDIR round trips
 * (FUSE_CAP_NO_OPEN_SUPPORT / NO_OPENDIR_SUPPORT), which makes the kernel
 * keep file pages and folder entries until a node's mtime moves;
 * entries and attributes are trusted for what is left of the data's ttl.
 * A task's mtime is when mixpeekfs saw it change, so a refresh that
 * changes nothing keeps the kernel's pages of its files; a listing
 * folder's moves with each fetch and each time it goes stale
 * (ns.c:listing_stat), so the kernel never trusts its entries past the
 * ttl.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/limits.h>
#include <sys/statvfs.h>

#include "fs_i.h"

/* node_stat, or for a listing's .jsonl and .tsv their snapshot's. */
static int stat_of(struct fs *fs, struct node *n, struct stat *st)
{
	return is_view(n) ? vsnap_stat(fs, n, st) : node_stat(fs, n, st);
}

/* <task>/.wait: not listed, like .refresh; reading it waits (wait.c). */
static bool is_wait(const struct node *parent, const char *name)
{
	return parent->kind == NK_TASK && !strcmp(name, WAIT_NAME);
}

static int op_lookup(struct fop *f)
{
	struct fs *fs = f->fs;
	struct node *parent = node_get(&fs->nodes, f->ino), *n;
	const char *name = f->name;
	struct fuse_entry_param e;
	enum nkind kind = NK_FIELD;
	char *value = NULL;
	int group = 0, res;

	if (!parent)
		return fop_reply_err(f, ESTALE), 0;
	memset(&e, 0, sizeof(e));
	if (!strcmp(name, REFRESH_NAME) &&
	    (parent->kind == NK_ROOT || parent->kind == NK_LISTING ||
	     parent->kind == NK_TASK)) {
		kind = NK_REFRESH; /* looking it up is the refresh */
		res = kcache_refresh(fs, parent);
	} else if ((kind = view_kind(parent, name)) != NK_ROOT) {
		res = 0; /* a listing's .jsonl or .tsv: stat says the rest */
	} else if (is_wait(parent, name)) {
		kind = NK_WAIT;
		res = 0;
	} else {
		res = ns_lookup(fs, parent, name, &kind, &group, &value,
				&e.attr);
	}
	if (res == -EINPROGRESS)
		return res; /* a runner will ask */
	/* absent for as long as what says so is fresh */
	e.attr_timeout = e.entry_timeout = keep_for(fs, parent);
	if (res == -ENOENT) {
		e.attr_timeout = e.entry_timeout = neg_keep(fs,
							    e.entry_timeout);
		/* before the reply: after it the parent may be forgotten */
		neg_add(fs, parent, name);
		fop_reply_entry(f, &e); /* cached as absent for ttl */
		goto out;
	}
	if (res) {
		fop_reply_err(f, -res);
		goto out;
	}
	n = node_child(&fs->nodes, parent, name, kind, group, value);
	if (!n) {
		fop_reply_err(f, ENOMEM);
		goto out;
	}
	/* a lookup inside a task has the attributes already */
	res = e.attr.st_mode ? 0 : stat_of(fs, n, &e.attr);
	if (res == -EINPROGRESS) {
		node_forget(&fs->nodes, n, 1);
		free(value);
		return res;
	}
	e.attr_timeout = e.entry_timeout = keep_for(fs, n);
	e.ino = node_ino(&fs->nodes, n);
	e.attr.st_ino = e.ino;
	if (res) {
		node_forget(&fs->nodes, n, 1);
		fop_reply_err(f, -res);
	} else {
		/* held before the reply: after it the kernel may forget n */
		bool push = (kind == NK_FIELD || kind == NK_TASKJSON) &&
			S_ISREG(e.attr.st_mode) && e.attr.st_size > 0 &&
			e.attr.st_size <= PUSH_MAX;

		if (push)
			node_hold(&fs->nodes, n);
		if (fop_reply_entry(f, &e)) {
			node_forget(&fs->nodes, n, push ? 2 : 1);
		} else if (push) {
			push_add(fs, n);
		}
	}
out:
	free(value);
	return 0;
}

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* A FUSE request for handler fn, from memory or kept (fop.c). */
static void run(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size,
		off_t off, bool plus, int (*fn)(struct fop *))
{
	struct fop f = { .fs = fs_of(req),
			 .req = req,
			 .ino = ino,
			 .name = (char *)name,
			 .size = size,
			 .off = off,
			 .plus = plus };

	fop_run(&f, fn);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t pino, const char *name)
{
	run(req, pino, name, 0, 0, false, op_lookup);
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

static int op_getattr(struct fop *f)
{
	struct fs *fs = f->fs;
	struct node *n = node_get(&fs->nodes, f->ino);
	struct stat st;
	int res;

	if (!n)
		return fop_reply_err(f, ESTALE), 0;
	res = stat_of(fs, n, &st);
	if (res == -EINPROGRESS)
		return res;
	if (res)
		fop_reply_err(f, -res);
	else
		fop_reply_attr(f, &st, keep_for(fs, n));
	return 0;
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)fi;
	run(req, ino, NULL, 0, 0, false, op_getattr);
}

static mode_t kind_mode(enum nkind kind)
{
	switch (kind) {
	case NK_README:
	case NK_TASKJSON:
	case NK_METAFILE:
	case NK_REFRESH:
	case NK_WAIT: return S_IFREG;
	case NK_FIELD: return 0; /* file or folder: unknown without the task */
	default: return S_IFDIR;
	}
}

/* The nodes a readdirplus reply hands out: undone if it is not sent. */
struct handed {
	struct node **v;
	size_t n, cap;
};

static bool hand_out(struct handed *h, struct node *n)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		struct node **v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return false;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n++] = n;
	return true;
}

static void take_back(struct fs *fs, struct handed *h)
{
	while (h->n)
		node_forget(&fs->nodes, h->v[--h->n], 1);
}

static int op_readdir(struct fop *f)
{
	struct fs *fs = f->fs;
	struct node *dir = node_get(&fs->nodes, f->ino);
	char name[TREE_NAME_MAX + 1], *buf;
	struct handed handed = { 0 };
	size_t used = 0, total, i, from, size = f->size;
	struct dirsnap *d;
	int res;

	if (!dir)
		return fop_reply_err(f, ESTALE), 0;
	res = snap_get(fs, dir, f->off, &d, &from);
	if (res == -EINPROGRESS)
		return res;
	if (res)
		return fop_reply_err(f, -res), 0;
	buf = malloc(size);
	if (!buf) {
		dirsnap_unref(d);
		return fop_reply_err(f, ENOMEM), 0;
	}
	total = dirsnap_count(d) + 2;
	for (i = from; i < total; i++) {
		struct fuse_entry_param e;
		struct node *n = NULL;
		struct dent de;
		size_t len;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			strcpy(name, i ? ".." : ".");
			fill_dir(fs, &e.attr, fs->started);
			e.attr.st_ino = i ? FUSE_ROOT_ID : f->ino;
		} else if (!dirsnap_entry(fs, dir, d, i - 2, name, &de)) {
			continue;
		} else if (f->plus) {
			n = node_child(&fs->nodes, dir, name, de.kind, de.group,
				       de.value);
			if (!n || !hand_out(&handed, n)) {
				if (n)
					node_forget(&fs->nodes, n, 1);
				break;
			}
			e.attr = de.st;
			res = e.attr.st_mode ? 0 : node_stat(fs, n, &e.attr);
			if (res == -EINPROGRESS)
				break; /* all again, on a runner */
			if (res) {
				handed.n--;
				node_forget(&fs->nodes, n, 1);
				continue; /* gone meanwhile: leave out */
			}
			e.attr.st_ino = node_ino(&fs->nodes, n);
			e.ino = node_ino(&fs->nodes, n);
			e.attr_timeout = e.entry_timeout = de.keep >= 0 ?
				de.keep :
				keep_for(fs, n);
		} else {
			e.attr.st_mode = de.st.st_mode ? de.st.st_mode :
							 kind_mode(de.kind);
			/* any non-zero number: d_ino 0 reads as deleted */
			e.attr.st_ino = (ino_t)-1 - i;
		}
		if (f->plus)
			len = fuse_add_direntry_plus(f->req, buf + used,
						     size - used, name, &e,
						     snap_off(d, i));
		else
			len = fuse_add_direntry(f->req, buf + used, size - used,
						name, &e.attr, snap_off(d, i));
		if (len > size - used) {
			if (n) {
				handed.n--;
				node_forget(&fs->nodes, n, 1);
			}
			break;
		}
		used += len;
	}
	if (res == -EINPROGRESS) {
		take_back(fs, &handed);
	} else if (fop_reply_buf(f, buf, used)) {
		take_back(fs, &handed); /* the kernel did not get them */
	} else if (used == 0 && f->off > 0) {
		snap_read_all(fs, dir, d); /* the kernel has it all */
	}
	free(handed.v);
	free(buf);
	dirsnap_unref(d);
	return res == -EINPROGRESS ? res : 0;
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	run(req, ino, NULL, size, off, false, op_readdir);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	run(req, ino, NULL, size, off, true, op_readdir);
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

static int op_read(struct fop *f)
{
	struct fs *fs = f->fs;
	struct node *n = node_get(&fs->nodes, f->ino);
	struct buf b = BUF_INIT(RENDER_MAX);
	size_t size = f->size;
	time_t when;
	int res;

	if (!n)
		return fop_reply_err(f, ESTALE), 0;
	if (n->kind == NK_WAIT) {
		/* replies now or later, never waits: see wait.c */
		wait_read(fs, f->req, n, f->size, f->off);
		return 0;
	}
	if (n->kind == NK_REFRESH) {
		/* returns once the kernel's caches are dropped: may wait */
		if (!f->kept)
			return -EINPROGRESS;
		notifier_flush(fs);
	}
	if (is_view(n)) {
		/* a listing's .jsonl or .tsv: a slice of its snapshot */
		res = vsnap_read(fs, n, f->size, f->off, &b);
		if (!res)
			fop_reply_buf(f, b.data, b.len);
	} else {
		res = node_render(fs, n, &b, &when);
		if (!res) {
			if (f->off < 0 || (size_t)f->off >= b.len)
				size = 0;
			else if (size > b.len - (size_t)f->off)
				size = b.len - (size_t)f->off;
			fop_reply_buf(f, size ? buf_str(&b) + f->off : NULL,
				      size);
		}
	}
	buf_release(&b);
	if (res && res != -EINPROGRESS)
		fop_reply_err(f, -res);
	return res == -EINPROGRESS ? res : 0;
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)fi;
	run(req, ino, NULL, size, off, false, op_read);
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)ino;
	(void)attr;
	(void)to_set;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent;
	(void)name;
	(void)mode;
	fuse_reply_err(req, EROFS);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EROFS);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)parent;
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

/*
 * Extended attributes (ns.c: xattr_get, xattr_list). size 0 asks for the
 * length; a smaller buffer than the value is ERANGE.
 */
static void xattr_reply(struct fop *f, int res, const struct buf *b)
{
	if (res)
		fop_reply_err(f, res == -EFBIG ? E2BIG : -res);
	else if (f->size == 0)
		fop_reply_xattr(f, b->len);
	else if (f->size < b->len)
		fop_reply_err(f, ERANGE);
	else
		fop_reply_buf(f, b->data, b->len);
}

static int op_getxattr(struct fop *f)
{
	struct node *n = node_get(&f->fs->nodes, f->ino);
	struct buf b = BUF_INIT(XATTR_SIZE_MAX);
	int res = n ? xattr_get(f->fs, n, f->name, &b) : -ESTALE;

	if (res != -EINPROGRESS)
		xattr_reply(f, res, &b);
	buf_release(&b);
	return res == -EINPROGRESS ? res : 0;
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	run(req, ino, name, size, 0, false, op_getxattr);
}

static int op_listxattr(struct fop *f)
{
	struct node *n = node_get(&f->fs->nodes, f->ino);
	struct buf b = BUF_INIT(XATTR_LIST_MAX);

	xattr_reply(f, n ? xattr_list(n, &b) : -ESTALE, &b);
	buf_release(&b);
	return 0;
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	run(req, ino, NULL, size, 0, false, op_listxattr);
}

/* The mount is read-only: the kernel answers EROFS itself (ro), and so
 * does this, should it ever ask. */
static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
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
	/*
	 * Reads are sent as the reader's own requests, never in the
	 * background: a kept READ of .wait (wait.c) must get the kernel's
	 * FUSE_INTERRUPT when its reader is interrupted, and must not take
	 * one of the few background slots that other reads need.
	 */
	conn->want &= ~(unsigned)FUSE_CAP_ASYNC_READ;
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
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) {
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
		/* before 3.17 libfuse drops it: session.c puts it back */
		__atomic_store_n(&fs->dirops_due, fs->dirops_hook,
				 __ATOMIC_RELEASE);
	}
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_unlink,
	.rename = fs_rename,
	.create = fs_create,
	.open = fs_open,
	.read = fs_read,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
};
