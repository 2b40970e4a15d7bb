/* SPDX-License-Identifier: MIT */
/*
 * text: the one place that decides which bytes may reach an HTTP header,
 * a log line or a file of the mount's own. Values from a user, the
 * environment or a server are either refused when they hold a control
 * byte (text_control) or written with those bytes escaped (text_escape).
 * Pure functions: thread-safe, never block.
 */
#ifndef MIXPEEKFS_TEXT_H
#define MIXPEEKFS_TEXT_H

#include <stddef.h>

#include "buf.h"

/* Index of the first control byte (0x00-0x1f, 0x7f) in s[0..len), or -1. */
long text_control(const char *s, size_t len);

/* The same for a NUL-terminated string. */
long text_control_str(const char *s);

/*
 * Copy in[0..len) to out (size bytes, always NUL-terminated, cut if it
 * does not fit) with control bytes and backslashes escaped as \n, \r, \t,
 * \\ and \xNN. Returns the length written.
 */
size_t text_escape(char *out, size_t size, const char *in, size_t len);

/*
 * The same escapes appended to out, whole (for a file of the mount's own,
 * such as a listing's .tsv): 0, -ENOMEM or -EFBIG (out is then released).
 */
int text_escape_buf(struct buf *out, const char *in, size_t len);

/* A short name for byte c ("a space", "a tab", "a NUL byte", ...). */
const char *text_byte_name(unsigned char c);

#endif
