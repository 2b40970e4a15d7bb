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

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

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
	/* absent for as long as what says so is fresh */
	e.attr_timeout = e.entry_timeout = keep_for(fs, parent);
	if (res == -ENOENT) {
		/* before the reply: after it the parent may be forgotten */
		neg_add(fs, parent, name);
		fuse_reply_entry(req, &e); /* cached as absent for ttl */
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
	res = e.attr.st_mode ? 0 : stat_of(fs, n, &e.attr);
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
	res = stat_of(fs, n, &st);
	if (res)
		fuse_reply_err(req, -res);
	else
		fuse_reply_attr(req, &st, keep_for(fs, n));
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

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       bool plus)
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
			n = node_child(&fs->nodes, dir, name, de.kind, de.group,
				       de.value);
			if (!n)
				break;
			e.attr = de.st;
			if (!e.attr.st_mode && node_stat(fs, n, &e.attr)) {
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

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
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

/* A read of a listing's .jsonl or .tsv: a slice of its snapshot. */
static void view_reply(fuse_req_t req, struct fs *fs, struct node *n,
		       size_t size, off_t off)
{
	struct buf b = BUF_INIT(RENDER_MAX);
	int res = vsnap_read(fs, n, size, off, &b);

	if (res)
		fuse_reply_err(req, -res);
	else
		fuse_reply_buf(req, b.data, b.len);
	buf_release(&b);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *n = node_get(&fs->nodes, ino);
	struct buf b = BUF_INIT(RENDER_MAX);
	time_t when;
	int res;

	(void)fi;
	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (is_view(n)) {
		view_reply(req, fs, n, size, off);
		return;
	}
	if (n->kind == NK_WAIT) {
		wait_read(fs, req, n, size, off); /* replies now or later */
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
static void xattr_reply(fuse_req_t req, int res, const struct buf *b,
			size_t size)
{
	if (res)
		fuse_reply_err(req, res == -EFBIG ? E2BIG : -res);
	else if (size == 0)
		fuse_reply_xattr(req, b->len);
	else if (size < b->len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, b->data, b->len);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct fs *fs = fs_of(req);
	struct node *n = node_get(&fs->nodes, ino);
	struct buf b = BUF_INIT(XATTR_SIZE_MAX);

	xattr_reply(req, n ? xattr_get(fs, n, name, &b) : -ESTALE, &b, size);
	buf_release(&b);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = fs_of(req);
	struct node *n = node_get(&fs->nodes, ino);
	struct buf b = BUF_INIT(XATTR_LIST_MAX);

	xattr_reply(req, n ? xattr_list(n, &b) : -ESTALE, &b, size);
	buf_release(&b);
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
