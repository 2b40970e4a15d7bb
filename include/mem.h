/* SPDX-License-Identifier: MIT */
/*
 * mem: glibc heap tuning, in one place. Thread-safe; never blocks but on
 * malloc's own locks.
 */
#ifndef MIXPEEKFS_MEM_H
#define MIXPEEKFS_MEM_H

/* Once, in main, before any thread starts and before the first malloc
 * that matters. */
void mem_tune(void);

/* Give the heap's free pages back to the system: after a burst of work
 * (parsing a listing, building many trees) has left it full of holes. */
void mem_trim(void);

/*
 * Once start-up is over (mounted, before serving): give back what
 * start-up alone needed. The heap's free pages go back to the system,
 * and so do this process's mappings of shared library pages that only
 * start-up touched (loading, relocating, libcurl's and OpenSSL's
 * initialisation): pages of read-only file mappings that hold no
 * private copy. They stay in the page cache, shared with every other
 * process, and come back on their next use at the cost of a minor
 * fault. Before any other thread starts. Never blocks on I/O but to
 * read /proc/self/smaps.
 */
void mem_release_startup(void);

#endif
