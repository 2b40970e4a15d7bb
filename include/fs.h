/* SPDX-License-Identifier: MIT */
/*
 * fs: the FUSE side as main.c sees it: one mount's lifecycle (session.c).
 * The files behind it share src/fs_i.h; they and opts.c (the option
 * table) are the only ones that include libfuse. Not thread-safe: main's
 * thread only.
 */
#ifndef MIXPEEKFS_FS_H
#define MIXPEEKFS_FS_H

#include "opts.h"

struct fs;

/*
 * Parse argv into o and FUSE's flags. Returns 0 to go on, 1 when --help
 * or --version was served (nothing more to do), or -errno: -EINVAL for a
 * bad command line, -ENOMEM (message printed).
 */
int fs_new(int argc, char **argv, struct options *o, struct fs **out);

const char *fs_mountpoint(const struct fs *fs);
int fs_foreground(const struct fs *fs);

/* Create the session and mount. 0 or -errno (message printed). */
int fs_mount(struct fs *fs);

/* Go to the background unless -f; then log to syslog. 0 or -errno. */
int fs_daemonize(struct fs *fs);

/* Serve requests until unmounted or signalled. 0 or -errno. */
int fs_run(struct fs *fs);

/* Unmount and free. NULL is fine. */
void fs_free(struct fs *fs);

#endif
