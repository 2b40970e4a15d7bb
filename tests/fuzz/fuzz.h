/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the libFuzzer targets: invariant checks on escaped
 * names and on whole task trees. A violated invariant prints what failed
 * and traps, which libFuzzer reports as a crash with the input saved.
 */
#ifndef MIXPEEKFS_FUZZ_H
#define MIXPEEKFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "tree.h"

/* The libFuzzer entry point, declared for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fuzz_fail(const char *what, const char *file, int line)
	__attribute__((noreturn));

#define FUZZ_CHECK(cond)                                      \
	do {                                                  \
		if (!(cond))                                  \
			fuzz_fail(#cond, __FILE__, __LINE__); \
	} while (0)

/* A NUL-terminated copy of data (which may itself hold NULs); never NULL. */
char *fuzz_strndup(const uint8_t *data, size_t size);

/* name is a valid file name: non-empty, <= 255 bytes, no '/', not . or .. */
void fuzz_check_name(const char *name);

/*
 * name is exactly what tree_name_escape must give for raw: the full
 * escape when it fits, else the cut-and-hash form; and it unescapes back
 * to raw unless it is hashed.
 */
void fuzz_check_escaped(const char *raw, const char *name);

/* Escape raw with tree_name_escape and check the result. */
void fuzz_check_escape(const char *raw);

/*
 * Check name against tree_name_unescape: the result matches an
 * independent decoder, and escaping it again is consistent.
 */
void fuzz_check_unescape(const char *name);

/*
 * Walk a tree as the filesystem shows it (tnode_next_shown, recursively
 * up to max_depth levels below root), checking every name, every lookup
 * and every rendered file.
 */
void fuzz_check_tree(const struct tnode *root, unsigned max_depth);

/* Same shape, keys, types and texts (numbers as written), byte for byte. */
int fuzz_tree_equal(const struct tnode *a, const struct tnode *b);

/* The first member of an object node with this raw key, or NULL. */
const struct tnode *fuzz_member(const struct tnode *obj, const char *key);

#endif
