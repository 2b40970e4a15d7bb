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
 * (parsing a listing, building many trees) has left it full of holes,
 * and once start-up is over. */
void mem_trim(void);

#endif
