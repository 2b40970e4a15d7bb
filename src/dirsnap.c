// SPDX-License-Identifier: MIT
/*
 * dirsnap: a folder's entries as of one readdir from offset 0, kept on
 * the node so later offsets see the same list (the kernel sends no
 * OPENDIR, so there is no handle to keep it on); and the same for a
 * listing's .jsonl and .tsv: their bytes as of one read from offset 0
 * (lview.c renders them). No libfuse calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

struct dirsnap {
	unsigned refs; /* atomic */
	uint32_t gen;  /* in the offsets it hands out */
	time_t used;   /* atomic: when a reader last took it */
	/*
	 * A ring (what a folder's node keeps, immutable once made): not a
	 * snapshot, but the folder's snapshots in use, newest first, for
	 * readers in the middle of one (references; NULL: none).
	 */
	bool ring;
	struct dirsnap *kept[SNAP_KEEP];
	struct listing *listing; /* NK_LISTING: the entries; a view: its
				  * listing */
	struct dent *ents;	 /* other folders */
	size_t n;
	/* a view (.jsonl, .tsv), as of listing and of the records then */
	unsigned long changes; /* fs->changes when it was made */
	struct buf text;       /* its bytes; dropped once read to the end */
	size_t counted;	       /* of them in view_bytes */
	size_t len;
	struct timespec mtime;
};

/* The bytes of views' texts kept on their nodes (atomic): see views_bytes. */
static size_t view_bytes;

size_t views_bytes(void)
{
	return __atomic_load_n(&view_bytes, __ATOMIC_RELAXED);
}

/* Free a view's text, and count it no more. */
static void text_release(struct dirsnap *d)
{
	__atomic_sub_fetch(&view_bytes, d->counted, __ATOMIC_RELAXED);
	d->counted = 0;
	buf_release(&d->text);
}

void *dirsnap_ref(void *p)
{
	struct dirsnap *d = p;

	__atomic_add_fetch(&d->refs, 1, __ATOMIC_RELAXED);
	return d;
}

void dirsnap_unref(void *p)
{
	struct dirsnap *d = p;
	size_t i;

	if (!d || __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (i = 0; i < SNAP_KEEP; i++)
		dirsnap_unref(d->kept[i]);
	if (d->listing)
		listing_unref(d->listing);
	for (i = 0; d->ents && i < d->n; i++) {
		free(d->ents[i].name);
		free(d->ents[i].value);
	}
	free(d->ents);
	text_release(d);
	free(d);
}

/* A folder of fixed names: the root, or .mixpeekfs/. */
static int snap_names(struct fs *fs, struct node *n, struct dirsnap *d)
{
	static const char *const root[] = { "README", "by-status", "by-type",
					    "tasks", META_NAME };
	const char *const *names = n->kind == NK_ROOT ? root : vfile_meta_names;
	size_t i, count = n->kind == NK_ROOT ? 5 : VFILE_META_COUNT;

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
		struct buf b = BUF_INIT(RENDER_MAX);

		tnode_name(c, name);
		if (n->kind == NK_TASK && !strcmp(name, TASK_JSON))
			continue; /* the whole-task file wins */
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
	case NK_META: res = snap_names(fs, n, d); break;
	case NK_GROUP: res = snap_group(fs, n, d); break;
	case NK_LISTING: res = node_listing(n, true, &d->listing); break;
	case NK_TASK:
	case NK_FIELD: res = snap_task(fs, n, d); break;
	default: res = -ENOTDIR; break;
	}
	if (res) {
		dirsnap_unref(d);
		return res;
	}
	*out = d;
	return 0;
}

/* Whether a reader took s lately: one may still be in the middle of it. */
static bool in_use(const struct dirsnap *s, time_t now)
{
	return s &&
		now - __atomic_load_n(&s->used, __ATOMIC_RELAXED) <
		SNAP_KEEP_SECS;
}

static void taken(struct dirsnap *s)
{
	__atomic_store_n(&s->used, time(NULL), __ATOMIC_RELAXED);
}

/*
 * Make d n's newest snapshot: a new ring of d and those of ring (NULL:
 * none) still in use, SNAP_KEEP in all at most. -ENOMEM leaves n's.
 */
static int snap_link(struct fs *fs, struct node *n, struct dirsnap *d,
		     const struct dirsnap *ring)
{
	static uint32_t gens; /* atomic: never the same twice, nearly */
	struct dirsnap *r = calloc(1, sizeof(*r));
	time_t now = time(NULL);
	size_t i, k = 0;

	if (!r)
		return -ENOMEM;
	r->refs = 1;
	r->ring = true;
	d->gen = __atomic_add_fetch(&gens, 1, __ATOMIC_RELAXED) & SNAP_GEN_MAX;
	d->used = now;
	r->kept[k++] = dirsnap_ref(d);
	for (i = 0; ring && i < SNAP_KEEP && k < SNAP_KEEP; i++)
		if (in_use(ring->kept[i], now))
			r->kept[k++] = dirsnap_ref(ring->kept[i]);
	dirsnap_unref(node_swap_cache(&fs->nodes, n, r));
	return 0;
}

int snap_get(struct fs *fs, struct node *n, off_t off, struct dirsnap **out,
	     size_t *from)
{
	struct dirsnap *ring = node_get_cache(&fs->nodes, n, dirsnap_ref), *d;
	struct dirsnap *newest = ring && ring->ring ? ring->kept[0] : NULL;
	uint32_t gen = (uint32_t)((uint64_t)off >> 32);
	size_t i;
	int res;

	*from = (size_t)((uint64_t)off & 0xffffffffu);
	if (off > 0 && newest) {
		/* the snapshot this reader began with, if kept; else the
		 * newest: the same for most folders */
		for (i = 0; i < SNAP_KEEP && ring->kept[i]; i++)
			if (ring->kept[i]->gen == gen)
				newest = ring->kept[i];
		*out = dirsnap_ref(newest);
		taken(newest);
		dirsnap_unref(ring);
		return 0;
	}
	res = snap_new(fs, n, &d);
	if (!res && newest && d->listing && d->listing == newest->listing) {
		/* the same listing: the same entries and offsets */
		dirsnap_unref(d);
		d = dirsnap_ref(newest);
		taken(d);
	} else if (!res) {
		res = snap_link(fs, n, d, newest ? ring : NULL);
		if (res)
			dirsnap_unref(d);
	}
	dirsnap_unref(ring);
	if (!res)
		*out = d;
	return res;
}

/*
 * A reader read d to the end: the kernel has it all. n keeps it no more
 * if it is n's only snapshot and no listing's (a task folder's, read
 * once by find: made again the same if need be); a listing's stay for
 * readers still in them (the store holds the listing anyway).
 */
void snap_read_all(struct fs *fs, struct node *n, struct dirsnap *d)
{
	struct dirsnap *ring = node_get_cache(&fs->nodes, n, dirsnap_ref);
	struct dirsnap *old;

	if (ring && ring->ring && ring->kept[0] == d && !ring->kept[1] &&
	    !d->listing) {
		old = node_swap_cache(&fs->nodes, n, NULL);
		if (old && old != ring) /* a newer one meanwhile: it stays */
			dirsnap_unref(node_swap_cache(&fs->nodes, n, old));
		else
			dirsnap_unref(old);
	}
	dirsnap_unref(ring);
}

off_t snap_off(const struct dirsnap *d, size_t i)
{
	return (off_t)(((uint64_t)d->gen << 32) | (uint64_t)(i + 1));
}

size_t dirsnap_count(const struct dirsnap *d)
{
	return d->listing ? d->listing->n : d->n;
}

/*
 * Entry i of folder dir: its name, node fields and (when known)
 * attributes. False for a task that has left dir since its listing was
 * fetched (the store has seen its new status).
 */
bool dirsnap_entry(struct fs *fs, struct node *dir, const struct dirsnap *d,
		   size_t i, char *name, struct dent *out)
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

/* ---- .jsonl and .tsv ---- */

/* FNV-1a over 8-byte words: a view's mtime moves when its bytes do. */
static uint64_t text_hash(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u, w;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x100000001b3u;
	}
	while (len--)
		h = (h ^ (unsigned char)*p++) * 0x100000001b3u;
	return h;
}

/* A new snapshot of view n, from listing l (the reference is taken). */
static int view_new(struct node *n, struct listing *l, unsigned long changes,
		    struct dirsnap **out)
{
	struct dirsnap *d = calloc(1, sizeof(*d));
	time_t newest;
	int res;

	if (!d) {
		listing_unref(l);
		return -ENOMEM;
	}
	d->refs = 1;
	d->listing = l;
	d->changes = changes;
	buf_init(&d->text, RENDER_MAX);
	res = lview_render(n->parent, l, n->kind, &d->text, &newest);
	if (res) {
		dirsnap_unref(d);
		return res;
	}
	d->len = d->text.len;
	d->mtime.tv_sec = newest;
	d->mtime.tv_nsec = (long)(text_hash(buf_str(&d->text), d->len) %
				  1000000000u);
	d->counted = d->text.alloc;
	__atomic_add_fetch(&view_bytes, d->counted, __ATOMIC_RELAXED);
	*out = d;
	return 0;
}

/*
 * The snapshot of view file n (.jsonl or .tsv): the node's while it
 * stands for the folder's listing as it is now (fetched if stale, as
 * the folder's readdir would) and no task changed since; else a new one.
 * With text, one that has its bytes. With keep, the node's whenever it
 * has them (a read past offset 0 goes on with what the first read saw).
 * May block on HTTP.
 */
static int view_get_snap(struct fs *fs, struct node *n, bool text, bool keep,
			 struct dirsnap **out)
{
	struct dirsnap *d = node_get_cache(&fs->nodes, n, dirsnap_ref);
	unsigned long changes;
	struct listing *l;
	int res;

	if (d && keep && d->text.data) {
		*out = d;
		return 0;
	}
	res = node_listing(n->parent, true, &l);
	/* after the fetch: what it changed, the render below shows */
	changes = __atomic_load_n(&fs->changes, __ATOMIC_ACQUIRE);
	if (!res && d && d->listing == l && d->changes == changes &&
	    (d->text.data || !text)) {
		listing_unref(l);
		*out = d;
		return 0;
	}
	dirsnap_unref(d);
	if (res)
		return res;
	res = view_new(n, l, changes, &d);
	if (res)
		return res;
	/*
	 * For a stat, its size is all it needs: the text is kept for the
	 * read that usually follows only while the views' kept texts are
	 * within an eighth of cache_size (60 stats of 60 views hold none).
	 */
	if (!text && views_bytes() > fs->opts->cache_size / VIEW_TEXT_SHARE)
		text_release(d);
	dirsnap_unref(node_swap_cache(&fs->nodes, n, dirsnap_ref(d)));
	*out = d;
	return 0;
}

int vsnap_stat(struct fs *fs, struct node *n, struct stat *st)
{
	struct dirsnap *d;
	int res = view_get_snap(fs, n, false, false, &d);

	if (res)
		return res;
	fill_file(fs, st, (off_t)d->len, d->mtime.tv_sec);
	st->st_mtim = st->st_ctim = d->mtime;
	st->st_ino = node_ino(&fs->nodes, n);
	dirsnap_unref(d);
	return 0;
}

/*
 * Once the last byte of a view is read, the kernel holds it all: keep
 * only what stat needs (a snapshot without the text), unless the node
 * has a newer one meanwhile.
 */
static void view_drop_text(struct fs *fs, struct node *n, struct dirsnap *d)
{
	struct dirsnap *lean = calloc(1, sizeof(*lean)), *cur;

	if (!lean)
		return;
	lean->refs = 1;
	lean->listing = listing_ref(d->listing);
	lean->changes = d->changes;
	lean->len = d->len;
	lean->mtime = d->mtime;
	buf_init(&lean->text, RENDER_MAX);
	cur = node_get_cache(&fs->nodes, n, dirsnap_ref);
	if (cur == d) {
		dirsnap_unref(node_swap_cache(&fs->nodes, n, lean));
		lean = NULL;
	}
	dirsnap_unref(cur);
	dirsnap_unref(lean);
}

int vsnap_read(struct fs *fs, struct node *n, size_t size, off_t off,
	       struct buf *out)
{
	struct dirsnap *d;
	int res = view_get_snap(fs, n, true, off > 0, &d);

	if (res)
		return res;
	if (off < 0 || (size_t)off >= d->len)
		size = 0;
	else if (size > d->len - (size_t)off)
		size = d->len - (size_t)off;
	res = size ? buf_add(out, d->text.data + off, size) : 0;
	if (!res && (size_t)off + size >= d->len)
		view_drop_text(fs, n, d);
	dirsnap_unref(d);
	return res;
}
