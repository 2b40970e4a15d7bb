// SPDX-License-Identifier: MIT
/*
 * session: the lifecycle of one mount: the command line (ours through
 * opts.c, FUSE's own here), help, fsname, log routing, mounting, going
 * to the background, the sigwait thread and the request loop.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "config.h"
#include "fs.h"
#include "fs_i.h"
#include "http.h"
#include "log.h"
#include "scheduler.h"
#include "text.h"

__attribute__((format(printf, 2, 0))) static void fuse_log_to_ours(
	enum fuse_log_level level, const char *fmt, va_list ap)
{
	static const char unknown[] = "fuse: unknown option(s): `";
	static const char bad_mnt[] = "fuse: bad mount point `";
	/* libfuse writes some lines in pieces: one line per thread */
	static _Thread_local char line[512];
	static _Thread_local size_t len;
	char shown[512];
	char *opt;

	/*
	 * libfuse's debug lines (-d) trace each FUSE request; -d means the
	 * HTTP requests here (the man page), and those lines are not ours.
	 */
	if (level == FUSE_LOG_DEBUG)
		return;
	vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	len = strlen(line);
	if (len < sizeof(line) - 1 && (!len || line[len - 1] != '\n'))
		return; /* the rest is to come */
	if (len && line[len - 1] == '\n')
		line[len - 1] = '\0';
	len = 0;
	if (!strncmp(line, bad_mnt, sizeof(bad_mnt) - 1)) {
		/* "fuse: bad mount point `/x': No such file or directory" */
		char *q;

		opt = line + sizeof(bad_mnt) - 1;
		q = strstr(opt, "': ");
		if (q) /* the closing quote goes */
			memmove(q, q + 1, strlen(q + 1) + 1);
		text_escape(shown, sizeof(shown), opt, strlen(opt));
		fprintf(stderr, "mixpeekfs: mountpoint %s\n", shown);
		return;
	}
	if (strncmp(line, unknown, sizeof(unknown) - 1)) {
		log_msg((int)level, "%s", line);
		return;
	}
	/* "fuse: unknown option(s): `-o bogus=1'": say it our way */
	opt = line + sizeof(unknown) - 1;
	if (!strncmp(opt, "-o ", 3))
		opt += 3;
	if (*opt && opt[strlen(opt) - 1] == '\'')
		opt[strlen(opt) - 1] = '\0';
	text_escape(shown, sizeof(shown), opt, strlen(opt));
	fprintf(stderr,
		"mixpeekfs: unknown option%s '%s' (see mixpeekfs "
		"--help)\n",
		strpbrk(opt, ", ") ? "s" : "", shown);
}

int fs_new(int argc, char **argv, struct options *o, struct fs **out)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	struct fuse_args a = FUSE_ARGS_INIT(argc, argv);
	struct fuse_args trial = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	int i, res;

	if (!fs)
		return -ENOMEM;
	fuse_set_log_func(fuse_log_to_ours);
	fs->args = a;
	fs->opts = o;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->started = time(NULL);
	pthread_mutex_init(&fs->note.lock, NULL);
	pthread_mutex_init(&fs->stats_lock, NULL);
	pthread_cond_init(&fs->note.wake, NULL);
	pthread_cond_init(&fs->note.idle, NULL);
	*out = fs;
	if (node_table_init(&fs->nodes, dirsnap_unref)) {
		fprintf(stderr, "mixpeekfs: out of memory\n");
		return -ENOMEM;
	}
	res = opts_parse(&fs->args, o);
	if (res)
		return res;
	if (fuse_parse_cmdline(&fs->args, &fs->cmd))
		return -EINVAL;
	if (fs->cmd.show_help) {
		opts_print_help();
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		return 1;
	}
	if (fs->cmd.show_version) {
		printf("mixpeekfs version %s\n", PACKAGE_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		return 1;
	}
	if (!fs->cmd.mountpoint) {
		fprintf(stderr,
			"mixpeekfs: no mountpoint given "
			"(see mixpeekfs --help)\n");
		return -EINVAL;
	}
	if (text_control_str(fs->cmd.mountpoint) >= 0) {
		/* it is logged and shown in .mixpeekfs/config */
		fprintf(stderr,
			"mixpeekfs: the mountpoint must not contain "
			"control characters\n");
		return -EINVAL;
	}
	if (fs->cmd.debug)
		o->debug = 1;
	/*
	 * libfuse checks its own options only when it makes the session,
	 * after the API probe: make one now and drop it, so that an unknown
	 * option is refused first (fuse_log_to_ours says which).
	 */
	for (i = 0; i < fs->args.argc; i++)
		if (fuse_opt_add_arg(&trial, fs->args.argv[i])) {
			fuse_opt_free_args(&trial);
			fprintf(stderr, "mixpeekfs: out of memory\n");
			return -ENOMEM;
		}
	se = fuse_session_new(&trial, &fs_ops, sizeof(fs_ops), fs);
	fuse_opt_free_args(&trial);
	if (!se)
		return -EINVAL;
	fuse_session_destroy(se);
	return 0;
}

const char *fs_mountpoint(const struct fs *fs)
{
	return fs->cmd.mountpoint;
}

int fs_foreground(const struct fs *fs)
{
	return fs->cmd.foreground;
}

/*
 * The kernel runs the LOOKUPs and READDIRs of one folder one at a time
 * unless the INIT reply carries FUSE_PARALLEL_DIROPS. libfuse before 3.17
 * takes the wish (fs_init asks for it) but never copies it into the reply
 * (libfuse PR #861; 3.17 sends it when asked, PR #880), so one lookup
 * waiting on the API would hold every other lookup in its folder. Its
 * custom-io hook sees each reply on the way to the kernel: the first
 * reply after fs_init is the INIT reply (the kernel sends nothing else
 * before it is answered), and gets the bit.
 */
static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *data)
{
	struct fs *fs = data;
	const struct fuse_out_header *h = iov[0].iov_base;
	struct fuse_init_out init;
	const size_t least = offsetof(struct fuse_init_out, flags) +
		sizeof(init.flags);
	struct iovec v[2];

	if (count != 2 || iov[0].iov_len != sizeof(*h) || !h->unique ||
	    h->error || iov[1].iov_len < least ||
	    iov[1].iov_len > sizeof(init) ||
	    !__atomic_exchange_n(&fs->dirops_due, false, __ATOMIC_ACQ_REL))
		return writev(fd, iov, count);
	memcpy(&init, iov[1].iov_base, iov[1].iov_len);
	init.flags |= FUSE_PARALLEL_DIROPS;
	v[0] = iov[0];
	v[1].iov_base = &init;
	v[1].iov_len = iov[1].iov_len;
	return writev(fd, v, 2);
}

static ssize_t dev_read(int fd, void *buf, size_t len, void *data)
{
	(void)data;
	return read(fd, buf, len);
}

/* Whether the running libfuse is older than 3.17 (see dev_writev). */
static bool fuse_drops_dirops(void)
{
	int major = 0, minor = 0;

	return sscanf(fuse_pkgversion(), "%d.%d", &major, &minor) == 2 &&
		(major < 3 || (major == 3 && minor < 17));
}

static void dirops_hook(struct fs *fs)
{
	static const struct fuse_custom_io io = { .writev = dev_writev,
						  .read = dev_read };
	int res;

	if (!fuse_drops_dirops())
		return;
	res = fuse_session_custom_io(fs->se, &io, fuse_session_fd(fs->se));
	if (res)
		log_warn("lookups in one folder will run one at a time: %s",
			 strerror(-res));
	else
		fs->dirops_hook = true;
}

int fs_mount(struct fs *fs)
{
	const char *host = fs->opts->host;
	char *name = NULL, *fsopts = NULL;
	int res;

	/*
	 * The fstab source names the mount, so mount -a knows it is mounted;
	 * without one, mixpeekfs:HOST.
	 */
	res = !host ||
		(fs->opts->source ?
			 asprintf(&name, "fsname=%s", fs->opts->source) :
			 asprintf(&name, "fsname=mixpeekfs:%s", host)) < 0 ||
		fuse_opt_add_opt(&fsopts,
				 "ro,nosuid,nodev,default_permissions,"
				 "subtype=mixpeekfs") ||
		fuse_opt_add_opt_escaped(&fsopts, name) ||
		fuse_opt_add_arg(&fs->args, "-o") ||
		fuse_opt_add_arg(&fs->args, fsopts);
	free(name);
	free(fsopts);
	if (res) {
		fprintf(stderr, "mixpeekfs: out of memory\n");
		return -ENOMEM;
	}
	fs->se = fuse_session_new(&fs->args, &fs_ops, sizeof(fs_ops), fs);
	if (!fs->se)
		return -EINVAL;
	if (fuse_set_signal_handlers(fs->se))
		return -EIO;
	if (fuse_session_mount(fs->se, fs->cmd.mountpoint))
		return -EIO;
	fs->mounted = true;
	dirops_hook(fs);
	return 0;
}

int fs_daemonize(struct fs *fs)
{
	if (!fs->cmd.foreground)
		log_background_prepare();
	if (fuse_daemonize(fs->cmd.foreground))
		return -EIO;
	if (!fs->cmd.foreground)
		log_background_start();
	return 0;
}

/* The loop returns the signal that ended it: those are a clean exit. */
static int loop_result(int res)
{
	return res == 0 || res == SIGTERM || res == SIGINT || res == SIGHUP ?
		0 :
		res < 0 ? res :
			  -EIO;
}

/* The signals the sigwait thread takes; blocked in every thread. */
static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

static void wake_only(int sig)
{
	(void)sig; /* SIGUSR1: interrupts the loop's wait, nothing else */
}

/*
 * SIGHUP refreshes everything. SIGTERM and SIGINT end transfers in
 * flight, stop the helper while the loop still answers the requests it
 * may be waiting behind, and only then end the loop (its main thread
 * waits interruptibly; a SIGUSR1 wakes it to see the session has exited).
 */
static void *signal_main(void *arg)
{
	struct fs *fs = arg;
	sigset_t set;
	int sig;

	signal_set(&set);
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (__atomic_load_n(&fs->sig_stop, __ATOMIC_RELAXED))
			return NULL;
		if (sig == SIGHUP) {
			kcache_hup(fs);
			continue;
		}
		wait_shutdown(fs); /* reads of .wait end while the loop runs */
		sched_abort();	   /* requests waiting on the API give up */
		if (kcache_quiesce(fs)) {
			fuse_session_exit(fs->se);
			pthread_kill(fs->main_thread, SIGUSR1);
		}
		return NULL;
	}
}

/* Signals go to the sigwait thread; libfuse's handlers if it won't start. */
static void signals_start(struct fs *fs)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_only; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	fs->main_thread = pthread_self();
	signal_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	fs->sig_running = !pthread_create(&fs->sig_thread, NULL, signal_main,
					  fs);
	if (!fs->sig_running) {
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		log_warn("no signal thread: SIGHUP ends the mount");
	}
}

static void signals_stop(struct fs *fs)
{
	if (!fs->sig_running)
		return;
	__atomic_store_n(&fs->sig_stop, true, __ATOMIC_RELAXED);
	pthread_kill(fs->sig_thread, SIGHUP); /* gone already: harmless */
	pthread_join(fs->sig_thread, NULL);
	fs->sig_running = false;
}

static int run_loop(struct fs *fs)
{
	struct fuse_loop_config *cfg;
	int res;

	if (fs->cmd.singlethread)
		return fuse_session_loop(fs->se);
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)fs->cmd.clone_fd);
	/* (unsigned)-1 means "not given": keep libfuse's defaults */
	if (fs->cmd.max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(cfg, fs->cmd.max_idle_threads);
	if (fs->cmd.max_threads != UINT_MAX && fs->cmd.max_threads > 0)
		fuse_loop_cfg_set_max_threads(cfg, fs->cmd.max_threads);
	res = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return res;
}

int fs_run(struct fs *fs)
{
	int res;

	signals_start(fs); /* first: every thread after it blocks them */
	if (fop_start(fs))
		log_warn("no memory for requests that wait: they fail (EIO)");
	wait_start(fs); /* before kcache_start hooks it to the store */
	kcache_start(fs);
	res = run_loop(fs);
	signals_stop(fs);
	sched_abort(); /* what still waits for the API gives up */
	fop_stop(fs);
	kcache_stop(fs);
	wait_stop(fs); /* answers the reads of .wait still kept */
	return loop_result(res);
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	if (fs->se) {
		if (fs->mounted)
			fuse_session_unmount(fs->se);
		fuse_remove_signal_handlers(fs->se);
		fuse_session_destroy(fs->se);
	}
	node_table_release(&fs->nodes);
	pthread_cond_destroy(&fs->note.wake);
	pthread_cond_destroy(&fs->note.idle);
	pthread_mutex_destroy(&fs->note.lock);
	vfile_release(fs);
	pthread_mutex_destroy(&fs->stats_lock);
	free(fs->cmd.mountpoint);
	fuse_opt_free_args(&fs->args);
	free(fs);
}
