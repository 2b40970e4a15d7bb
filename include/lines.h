/* SPDX-License-Identifier: MIT */
/*
 * lines: one task as one line of a listing's .jsonl or .tsv file, from
 * the task's JSON (the API's own bytes, as a record keeps them).
 *
 *   .jsonl  the JSON on one line (json_line): parses back to the task
 *   .tsv    task_id, task_type, status and the error text, tab-separated;
 *           in each value a tab, a newline, a backslash and any other
 *           control byte are written \t, \n, \\, \r or \xNN (text.c), so
 *           a line never breaks early and the escapes undo exactly.
 *
 * The error text is what the first of error, error_message and
 * additional_data/error that shows as a file with something in it holds
 * (as `cat` shows it, without its last newline); empty when none does.
 * Pure functions: thread-safe, never block, no I/O.
 */
#ifndef MIXPEEKFS_LINES_H
#define MIXPEEKFS_LINES_H

#include <stddef.h>

#include "buf.h"

/* The .tsv header, with its newline. */
#define LINES_TSV_HEADER "task_id\ttask_type\tstatus\terror\n"

/* Append the .jsonl line of a task's JSON. 0, -EIO (not JSON) or -errno. */
int lines_jsonl(const char *json, size_t len, struct buf *out);

/*
 * Append the .tsv line of a task: its id, type and status (the record's)
 * and the error text from its JSON. 0, -EIO (not JSON) or -errno.
 */
int lines_tsv(const char *id, const char *type, const char *status,
	      const char *json, size_t len, struct buf *out);

/* The error text of a task's JSON, appended to out (nothing if none). */
int lines_error(const char *json, size_t len, struct buf *out);

#endif
