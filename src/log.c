// SPDX-License-Identifier: MIT
/* log: stderr, syslog or a file, with a level prefix; thread-safe. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "text.h"

static bool debug_on;
static bool to_syslog;
static unsigned repeat_window;	     /* seconds; set before threads start */
static __thread const char *context; /* the folder a thread works for */

/* The lines that log_once printed lately: hashes and when. */
#define RECENT_MAX 64
static struct {
	unsigned long hash;
	time_t when;
} recent[RECENT_MAX];	    /* protected by last_lock */
static unsigned recent_pos; /* protected by last_lock */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_line[LOG_LINE_MAX]; /* protected by last_lock */
static time_t last_time;	     /* protected by last_lock */

void log_set_debug(bool on)
{
	debug_on = on;
}

bool log_debugging(void)
{
	return debug_on;
}

void log_set_repeat_window(unsigned seconds)
{
	repeat_window = seconds;
}

const char *log_context(void)
{
	return context;
}

void log_set_context(const char *what)
{
	context = what;
}

static unsigned long hash_line(const char *s)
{
	unsigned long h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

/* Whether line was printed by log_once within the window; notes it. */
static bool repeated(const char *line)
{
	unsigned long h = hash_line(line);
	time_t now = time(NULL);
	bool seen = false;
	unsigned i;

	pthread_mutex_lock(&last_lock);
	for (i = 0; i < RECENT_MAX && !seen; i++)
		seen = recent[i].when && recent[i].hash == h &&
			now - recent[i].when < (time_t)repeat_window;
	if (!seen) {
		recent[recent_pos].hash = h;
		recent[recent_pos].when = now;
		recent_pos = (recent_pos + 1) % RECENT_MAX;
	}
	pthread_mutex_unlock(&last_lock);
	return seen;
}

/* Where messages go in the background: log_background_prepare's. */
static int bg_fd = -1;
static bool bg_syslog;

/* ${XDG_STATE_HOME:-$HOME/.local/state}/mixpeekfs.log, its folders made. */
static int state_file(char *path, size_t size)
{
	const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	int n;

	if (state && state[0] == '/') {
		n = snprintf(path, size, "%s/mixpeekfs.log", state);
	} else if (home && home[0] == '/') {
		n = snprintf(path, size, "%s/.local", home);
		if (n > 0 && (size_t)n < size)
			mkdir(path, 0700);
		n = snprintf(path, size, "%s/.local/state", home);
		if (n > 0 && (size_t)n < size)
			mkdir(path, 0700);
		n = snprintf(path, size, "%s/.local/state/mixpeekfs.log", home);
	} else {
		return -ENOENT;
	}
	return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

void log_background_prepare(void)
{
	char path[PATH_MAX];
	struct stat sb;

	bg_syslog = !stat("/dev/log", &sb) && S_ISSOCK(sb.st_mode);
	if (bg_syslog) {
		log_info("in the background from now on; messages go to "
			 "syslog (journalctl -t mixpeekfs)");
		return;
	}
	if (!state_file(path, sizeof(path)))
		bg_fd = open(path,
			     O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
				     O_CLOEXEC,
			     0600);
	if (bg_fd >= 0)
		log_info("in the background from now on; there is no syslog "
			 "here (no /dev/log): messages go to %s",
			 path);
	else
		log_warn("in the background from now on; there is no syslog "
			 "here (no /dev/log) and no log file: messages are "
			 "lost (run with -f to see them)");
}

void log_background_start(void)
{
	if (bg_syslog) {
		openlog("mixpeekfs", LOG_PID, LOG_DAEMON);
		to_syslog = true;
	} else if (bg_fd >= 0) {
		dup2(bg_fd, STDERR_FILENO);
		close(bg_fd);
		bg_fd = -1;
	}
}

static const char *prio_name(int prio)
{
	switch (prio) {
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_INFO: return "info";
	case LOG_DEBUG: return "debug";
	default: return "notice";
	}
}

/*
 * Every message is one line: whatever a server, a user or the
 * environment put into it, control bytes are escaped here (\n, \x1b).
 * Errors and warnings name the folder the thread works for, if any.
 */
__attribute__((format(printf, 3, 0))) static void log_va(int prio, bool once,
							 const char *fmt,
							 va_list ap)
{
	char raw[LOG_LINE_MAX], line[LOG_LINE_MAX];
	int n;

	if (prio == LOG_DEBUG && !debug_on)
		return;
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	if (n < 0)
		return;
	if (context && prio <= LOG_WARNING && (size_t)n < sizeof(raw))
		snprintf(raw + n, sizeof(raw) - (size_t)n, " (in %s)", context);
	text_escape(line, sizeof(line), raw, strlen(raw));
	if (once && repeated(line))
		return;
	if (prio <= LOG_WARNING) {
		pthread_mutex_lock(&last_lock);
		memcpy(last_line, line, sizeof(line));
		last_time = time(NULL);
		pthread_mutex_unlock(&last_lock);
	}
	if (to_syslog) {
		syslog(prio, "%s", line);
		return;
	}
	fprintf(stderr, "mixpeekfs: %s: %s\n", prio_name(prio), line);
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(prio, false, fmt, ap);
	va_end(ap);
}

void log_once(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(prio, true, fmt, ap);
	va_end(ap);
}

time_t log_last_problem(char *line, size_t size)
{
	time_t when;

	pthread_mutex_lock(&last_lock);
	snprintf(line, size, "%s", last_line);
	when = last_time;
	pthread_mutex_unlock(&last_lock);
	return when;
}
