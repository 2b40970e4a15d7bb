// SPDX-License-Identifier: MIT
/* mem: the only user of <malloc.h>'s tuning calls. */
#include <malloc.h>

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
