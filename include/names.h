/* SPDX-License-Identifier: MIT */
/*
 * names: how a raw name (a JSON member name, a task id, a status, a type)
 * becomes a file name, and back; and percent-decoding, which query values
 * use too. Pure functions: thread-safe, never block, no I/O.
 *
 * The functions keep the tree_ prefix they had when they lived in tree.c,
 * so their callers did not change.
 */
#ifndef MIXPEEKFS_NAMES_H
#define MIXPEEKFS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* The longest file name shown (NAME_MAX), without its NUL. */
#define TREE_NAME_MAX 255

/* The hidden files a task id or a key could collide with. */
#define REFRESH_NAME ".refresh" /* in every folder */
#define WAIT_NAME ".wait"	/* in a task folder */
/* in every listing folder, never listed: its tasks in one file */
#define JSONL_NAME ".jsonl"
#define TSV_NAME ".tsv"

/*
 * Whether raw is the name of one of those hidden files (which an escaped
 * name must not take).
 */
bool tree_name_reserved(const char *raw);

/*
 * Escape a raw name into a valid file name (out: TREE_NAME_MAX + 1 bytes):
 * '%' -> %25, '/' -> %2F; "." -> %2E, ".." -> %2E%2E, "" -> %00; the
 * names of hidden files (tree_name_reserved) -> their leading dot as %2E
 * (".wait" -> %2Ewait); an escaped
 * name longer than 255 bytes keeps its first 200 bytes (never splitting an
 * escape or a UTF-8 sequence), then "%~" and 16 hex digits of the FNV-1a
 * 64-bit hash of the raw name.
 */
void tree_name_escape(const char *raw, char *out);

/*
 * Undo tree_name_escape into a malloc'd string (*raw). -EINVAL when name
 * is a hashed long name, which cannot be reversed without the original.
 */
int tree_name_unescape(const char *name, char **raw);
/*
 * Percent-decode [s, s + len) into a malloc'd *out: -EINVAL for a bad or
 * cut escape and for %00 (no NUL inside a name or value), -ENOMEM.
 */
int tree_percent_decode(const char *s, size_t len, char **out);

/* The value of hex digit c, or -1. */
int tree_hexval(char c);

#endif
