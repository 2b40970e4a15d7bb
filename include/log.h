/* SPDX-License-Identifier: MIT */
/*
 * log: one sink for every message. stderr in the foreground, syslog once
 * the daemon is in the background. Messages never carry the API key, and
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
/* Route further messages to syslog (after daemonizing). */
void log_use_syslog(void);

void log_msg(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The last error or warning logged and its time (0 if none). */
time_t log_last_problem(char *line, size_t size);

#define log_err(...)	log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	\
	do { if (log_debugging()) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
