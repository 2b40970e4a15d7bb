/* SPDX-License-Identifier: MIT */
/*
 * log: one sink for every message. stderr in the foreground, syslog (or
 * a file where there is none) once the daemon is in the background. Messages never carry the API key, and
 * each is one line: control bytes in it are escaped (text.h).
 * Thread-safe; never blocks but on the write itself.
 */
#ifndef MIXPEEKFS_LOG_H
#define MIXPEEKFS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>
#include <time.h>

/* The longest line logged, escapes included; longer ones are cut. */
#define LOG_LINE_MAX 1024

void log_set_debug(bool on);
bool log_debugging(void);
/*
 * Before going to the background: decide where messages will go (syslog
 * when there is one, /dev/log; else ${XDG_STATE_HOME:-~/.local/state}/
 * mixpeekfs.log, opened now) and say so on stderr. After it, with
 * log_background_start: route further messages there. Before threads.
 */
void log_background_prepare(void);
void log_background_start(void);

void log_msg(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* log_msg, unless the same line was logged by log_once within the
 * repeat window (a malformed folder looked up again and again). */
void log_once(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The repeat window of log_once, in seconds (ttl). Before threads. */
void log_set_repeat_window(unsigned seconds);
/*
 * Name the folder this thread works for (borrowed; NULL: none): errors
 * and warnings it logs say "(in FOLDER)".
 */
void log_set_context(const char *what);
/* This thread's context, or NULL (borrowed). */
const char *log_context(void);

/* The last error or warning logged and its time (0 if none). */
time_t log_last_problem(char *line, size_t size);

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                   \
	do {                                             \
		if (log_debugging())                     \
			log_msg(LOG_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
