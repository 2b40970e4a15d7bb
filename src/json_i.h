/* SPDX-License-Identifier: MIT */
/*
 * json_i: what json.c and json_text.c share, and nobody else: a scanner
 * over JSON text that steps over tokens as cJSON reads them, without
 * parsing. Each takes [p, end) and gives a position in it, or NULL when
 * the text is not what it should be there. Pure functions.
 */
#ifndef MIXPEEKFS_JSON_I_H
#define MIXPEEKFS_JSON_I_H

#include <stdbool.h>
#include <stddef.h>

/* Past the whitespace at p (as cJSON: any control byte or space). */
const char *json_skip_ws(const char *p, const char *end);

/* Where the value of a whole document starts: past a UTF-8 BOM, as cJSON. */
const char *json_doc_start(const char *p, const char *end);

/* Just past the string whose opening quote is at p. */
const char *json_string_end(const char *p, const char *end);

/* Just past the value that starts at p. */
const char *json_value_end(const char *p, const char *end);

/* Just past the number or literal that starts at p. */
const char *json_token_end(const char *p, const char *end);

/* Whether x starts with four hex digits. */
bool json_is_hex4(const char *x);
/* The code unit of the four hex digits at x, or -1 (stops at the first
 * byte that is not one: a NUL ends it). */
long json_hex4(const char *x);

/*
 * The bytes cJSON decodes as one at p, in a string literal whose closing
 * quote is at q: a byte, an escape, or \u and the four bytes after it.
 */
size_t json_unit_len(const char *p, const char *q);

#endif
