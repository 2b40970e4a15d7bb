// SPDX-License-Identifier: MIT
/*
 * dirsnap: a folder's entries as of one readdir from offset 0, kept on
 * the node so later offsets see the same list (the kernel sends no
 * OPENDIR, so there is no handle to keep it on). No libfuse calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

struct dirsnap {
	unsigned refs;		 /* atomic */
	struct listing *listing; /* NK_LISTING: the entries */
	struct dent *ents;	 /* other folders */
	size_t n;
};

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

/* The snapshot to read from: a new one at offset 0, else the node's. */
int snap_get(struct fs *fs, struct node *n, off_t off, struct dirsnap **out)
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
