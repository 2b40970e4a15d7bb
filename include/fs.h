/* SPDX-License-Identifier: MIT */
/*
 * fs: the FUSE side, on the low-level API: command line parsing of FUSE's
 * own flags, the session lifecycle and the operations. The only module
 * (with opts.c's option table) that includes libfuse.
 */
#ifndef MIXPEEKFS_FS_H
#define MIXPEEKFS_FS_H

#include "opts.h"

struct fs;

/*
 * Parse argv into o and FUSE's flags. Returns 0 to go on, 1 when --help
 * or --version was served, -1 on a bad command line (message printed).
 */
int fs_new(int argc, char **argv, struct options *o, struct fs **out);

const char *fs_mountpoint(const struct fs *fs);
int fs_foreground(const struct fs *fs);

/* Create the session and mount. 0 or -1 (message printed). */
int fs_mount(struct fs *fs);

/* Go to the background unless -f; then log to syslog. */
int fs_daemonize(struct fs *fs);

/* Serve requests until unmounted or signalled. 0 or -1. */
int fs_run(struct fs *fs);

/* Unmount and free. NULL is fine. */
void fs_free(struct fs *fs);

#endif
