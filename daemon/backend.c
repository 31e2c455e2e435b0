/*
 * backend.c - supervised backends: child processes that speak the hub's
 * protocol as newline-delimited JSON on their stdin and stdout (AuroraView's
 * "packed mode").
 *
 * Each child is a session like any other, on a transport made of its three
 * pipes, all watched by the one event loop.  This file owns the life of the
 * process around that session: spawning it in a process group of its own,
 * the ready timeout, turning stdout lines into messages and stderr lines into
 * events, reporting its exit, restarting it with backoff, giving up, and
 * stopping it (stdin closed, then SIGTERM, then SIGKILL, always to the whole
 * group so a /bin/sh -c wrapper never leaves its child behind).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "avd.h"

#define TAIL_LINES 50
#define STDERR_LINE_MAX 4096 /* longer stderr lines are split, on a character */
#define READ_CHUNK 65536
#define STOP_GRACE_MS 2000
#define STABLE_MS 10000 /* ready this long: the restart backoff resets */
#define RESTART_WINDOW_MS 60000
#define REPORT_EVERY_MS 1000

extern char **environ;

/* Bytes of one pipe waiting for their newline. */
struct linebuf {
	char *buf;
	size_t len, cap;
	bool overflow; /* the current line passed the limit and is being skipped */
};

enum bstate {
	B_RUNNING,  /* process alive (ready or not yet) */
	B_STOPPING, /* stop sequence under way */
	B_WAITING,  /* not running; a restart is scheduled */
	B_DONE,     /* not running and will not be restarted */
};

struct backend {
	struct backend_conf *conf; /* new: its own copy, so a reload can go on */
	struct backend_conf *next_conf; /* new: replaces conf once it stopped */
	bool removed;              /* dropped by a reload: never restart */
	enum bstate state;
	pid_t pid;                 /* the child we spawned; 0 once reaped */
	pid_t pgid;                /* its process group, which may outlive it */
	bool lingering;            /* leader gone, group still being stopped */
	struct session *s;         /* its session while stdout is open */
	char session_id[24];       /* the latest session's id, for reports */
	struct fdwatch *in, *out, *err;
	int out_fd, err_fd;        /* the read ends, while watched */
	struct frame *wframe;      /* frame being written to stdin */
	size_t woff;
	struct linebuf out_line, err_line;
	char *tail[TAIL_LINES];    /* last stderr lines, new */
	unsigned tail_next, tail_n;
	bool ready, stop_was_failure, report_exit;
	int stop_stage;            /* 1 stdin closed, 2 SIGTERM, 3 SIGKILL */
	uint64_t backoff_ms;
	uint64_t *restarts;        /* clock_ms of recent restarts (ring) */
	unsigned nrestarts;
	uint64_t bad_lines;        /* stdout lines not yet reported */
	bool line_repaired;        /* the line being handled had bad UTF-8 */
	bool line_reported;        /* ... and was counted already */
	char bad_what[160];
	uint64_t last_report_ms;
	struct timer ready_timer, restart_timer, stop_timer, stable_timer,
		report_timer;
};

static struct ptrvec backends; /* struct backend * */

static void spawn_backend(struct backend *b);
static void stop_backend(struct backend *b, bool failure);
static void end_session(struct backend *b, const char *reason);

/* ---- reports --------------------------------------------------------- */

static json_t *
backend_data(struct backend *b)
{
	return json_pack("{s:i, s:s, s:s}", "schema_version", AVD_SCHEMA_VERSION,
			 "backend", b->conf->name, "session", b->session_id);
}

static void
report_error(struct backend *b, const char *source, bool fatal, json_t *extra,
	     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
report_error(struct backend *b, const char *source, bool fatal, json_t *extra,
	     const char *fmt, ...)
{
	char message[300];
	json_t *d = backend_data(b);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	json_object_set_new(d, "message", json_string(message));
	json_object_set_new(d, "source", json_string(source));
	json_object_set_new(d, "fatal", json_boolean(fatal));
	if (extra) {
		json_object_update(d, extra);
		json_decref(extra);
	}
	log_msg(fatal ? LOG_WARN : LOG_INFO, "backend %s: %s (%s)", b->conf->name,
		message, source);
	pubsub_system("backend_error", d, true);
}

static void
flush_bad_lines(struct backend *b)
{
	if (!b->bad_lines)
		return;
	report_error(b, "stdout", false,
		     json_pack("{s:I}", "count", (json_int_t)b->bad_lines),
		     "%llu stdout line%s unusable or repaired (last: %s)",
		     (unsigned long long)b->bad_lines, b->bad_lines == 1 ? "" : "s",
		     b->bad_what);
	b->bad_lines = 0;
	b->last_report_ms = clock_ms();
}

static void
report_timer_fired(struct timer *t)
{
	flush_bad_lines(container_of(t, struct backend, report_timer));
}

/* A bad stdout line: count it, and report at most once a second. */
static void
bad_line(struct backend *b, const char *what)
{
	uint64_t now = clock_ms();

	b->bad_lines++;
	snprintf(b->bad_what, sizeof(b->bad_what), "%s", what);
	if (now - b->last_report_ms >= REPORT_EVERY_MS)
		flush_bad_lines(b);
	else if (!timer_armed(&b->report_timer))
		timer_arm(&b->report_timer, REPORT_EVERY_MS - (now - b->last_report_ms),
			  report_timer_fired);
}

/* Close a pipe's watch and forget it at once, so a restart can watch new
 * pipes before the old watch's close callback arrives. */
static void
close_watch(struct fdwatch **w)
{
	if (*w) {
		server_fd_close(*w);
		*w = NULL;
	}
}

/* ---- the stdio transport --------------------------------------------- */

static void
stdio_kick(struct session *s)
{
	struct backend *b = s->tx;

	if (b->in)
		server_fd_want_write(b->in);
}

static void
stdio_close(struct session *s, int code, const char *reason, bool discard)
{
	struct backend *b = s->tx;

	/* Flush what is queued (cancels, EVENT_LOOP_CLOSED answers are not
	 * for the child, but its own calls' cancels are), then stop it. */
	log_info("backend %s: stopping (%s)", b->conf->name, reason);
	if (b->state == B_RUNNING)
		stop_backend(b, code == 1008);
}

static void
stdio_bad_input(struct session *s, struct avd_err *err)
{
	struct backend *b = s->tx;
	char what[160];

	snprintf(what, sizeof(what), "%s: %.120s", err_code_str(err->code),
		 err->message);
	bad_line(b, what);
	b->line_reported = true;
	err_clear(err);
}

/* A ready line whose methods another session owns: the child cannot
 * start as configured, which is a start-up failure, not a bad line. */
static void
stdio_ready_refused(struct session *s, struct avd_err *err)
{
	struct backend *b = s->tx;

	b->line_reported = true;
	report_error(b, "startup", true,
		     json_pack("{s:s}", "code", err_code_str(err->code)),
		     "ready refused: %s", err->message);
	b->report_exit = false;
	stop_backend(b, true);
}

static void
stable_fired(struct timer *t)
{
	struct backend *b = container_of(t, struct backend, stable_timer);

	b->backoff_ms = b->conf->restart_backoff_ms;
}

static void
stdio_ready(struct session *s)
{
	struct backend *b = s->tx;

	if (b->ready)
		return;
	b->ready = true;
	timer_cancel(&b->ready_timer);
	timer_arm(&b->stable_timer, STABLE_MS, stable_fired);
}

static const struct transport_ops stdio_ops = {
	.name = "stdio",
	.kick = stdio_kick,
	.close = stdio_close,
	.bad_input = stdio_bad_input,
	.ready = stdio_ready,
	.ready_refused = stdio_ready_refused,
	.reports_exit = true,
};

/* Write queued frames to the child's stdin until it would block. */
static void
write_stdin(struct backend *b, int fd)
{
	for (;;) {
		ssize_t n;
		size_t total;

		if (!b->wframe) {
			if (!b->s || !(b->wframe = session_next_frame(b->s)))
				break;
			b->woff = 0;
		}
		total = b->wframe->len + 1; /* the JSON and its newline */
		n = write(fd, frame_data(b->wframe) + b->woff, total - b->woff);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				server_fd_want_write(b->in);
				return;
			}
			/* EPIPE, EBADF, EINVAL: the child closed its stdin or is
			 * gone; its exit is reported when it is reaped. */
			log_info("backend %s: stdin: %s", b->conf->name, strerror(errno));
			frame_unref(b->wframe);
			b->wframe = NULL;
			close_watch(&b->in);
			end_session(b, "stdin closed");
			return;
		}
		b->woff += (size_t)n;
		if (b->woff < total) {
			server_fd_want_write(b->in);
			return;
		}
		frame_unref(b->wframe);
		b->wframe = NULL;
	}
	/* Everything is written; a stop waits for exactly this moment. */
	if (b->state == B_STOPPING && b->stop_stage == 0) {
		b->stop_stage = 1;
		close_watch(&b->in);
	}
}

/* ---- reading lines ----------------------------------------------------- */

static void
lb_append(struct linebuf *lb, const char *p, size_t n)
{
	if (lb->len + n > lb->cap) {
		size_t cap = lb->cap ? lb->cap : 4096;
		while (cap < lb->len + n)
			cap *= 2;
		lb->buf = xrealloc(lb->buf, cap);
		lb->cap = cap;
	}
	memcpy(lb->buf + lb->len, p, n);
	lb->len += n;
}

static void
lb_free(struct linebuf *lb)
{
	free(lb->buf);
	memset(lb, 0, sizeof(*lb));
}

/* One complete stdout line: a message for the hub. */
static void
stdout_line(struct backend *b, char *line, size_t len)
{
	char *fixed = NULL;

	if (len && line[len - 1] == '\r')
		len--;
	if (!len || !b->s)
		return;
	b->line_repaired = b->line_reported = false;
	if (!utf8_valid((unsigned char *)line, len)) {
		fixed = utf8_repair((unsigned char *)line, len, &len);
		line = fixed;
		b->line_repaired = true;
	}
	session_on_message(b->s, line, len);
	/* A repaired line counts once, whether it was then used or not. */
	if (b->line_repaired && !b->line_reported && b->s)
		bad_line(b, "invalid UTF-8 replaced by U+FFFD; the line was used");
	free(fixed);
}

static void
push_tail(struct backend *b, const char *line)
{
	free(b->tail[b->tail_next]);
	b->tail[b->tail_next] = xstrdup(line);
	b->tail_next = (b->tail_next + 1) % TAIL_LINES;
	if (b->tail_n < TAIL_LINES)
		b->tail_n++;
}

/* One stderr line (never more than STDERR_LINE_MAX bytes, whole characters). */
static void
stderr_line(struct backend *b, const char *line, size_t len)
{
	size_t n;
	char *text;

	if (len && line[len - 1] == '\r')
		len--;
	text = utf8_repair((const unsigned char *)line, len, &n);
	push_tail(b, text);
	log_debug("backend %s stderr: %s", b->conf->name, text);
	pubsub_system("backend:stderr",
		      json_pack("{s:s, s:s, s:s}", "backend", b->conf->name, "line",
				text, "session", b->session_id),
		      false);
	free(text);
}

/* Split buffered stdout bytes into lines; keep the unfinished rest. */
static void
drain_stdout(struct backend *b)
{
	struct linebuf *lb = &b->out_line;
	size_t start = 0;
	char *nl;

	if (!lb->len)
		return; /* nothing buffered (and maybe no buffer yet) */
	while ((nl = memchr(lb->buf + start, '\n', lb->len - start))) {
		size_t len = (size_t)(nl - (lb->buf + start));
		if (lb->overflow) {
			lb->overflow = false; /* the end of a line already reported */
		} else if (len > hub.cfg->max_message_bytes) {
			bad_line(b, "line longer than max_message_bytes dropped");
		} else {
			stdout_line(b, lb->buf + start, len);
		}
		start += len + 1;
	}
	memmove(lb->buf, lb->buf + start, lb->len - start);
	lb->len -= start;
	if (lb->len > hub.cfg->max_message_bytes) {
		/* No newline in sight: drop what we have and skip to the next. */
		if (!lb->overflow)
			bad_line(b, "line longer than max_message_bytes dropped");
		lb->overflow = true;
		lb->len = 0;
	}
}

static void
drain_stderr(struct backend *b, bool at_exit)
{
	struct linebuf *lb = &b->err_line;
	size_t start = 0;
	char *nl;

	if (!lb->len)
		return;
	for (;;) {
		size_t avail = lb->len - start, len;
		nl = memchr(lb->buf + start, '\n', avail);
		if (nl) {
			len = (size_t)(nl - (lb->buf + start));
			if (len > STDERR_LINE_MAX) {
				len = utf8_boundary((unsigned char *)lb->buf + start,
						    STDERR_LINE_MAX);
				stderr_line(b, lb->buf + start, len);
				start += len;
				continue;
			}
			stderr_line(b, lb->buf + start, len);
			start += len + 1;
		} else if (avail > STDERR_LINE_MAX) {
			len = utf8_boundary((unsigned char *)lb->buf + start, STDERR_LINE_MAX);
			stderr_line(b, lb->buf + start, len ? len : STDERR_LINE_MAX);
			start += len ? len : STDERR_LINE_MAX;
		} else {
			if (at_exit && avail)
				stderr_line(b, lb->buf + start, avail);
			else
				break;
			start += avail;
			break;
		}
	}
	memmove(lb->buf, lb->buf + start, lb->len - start);
	lb->len -= start;
}

/* Read what the pipe holds now; returns false at end of file. */
static bool
read_pipe(int fd, struct linebuf *lb)
{
	char buf[READ_CHUNK];

	for (int i = 0; i < 16; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			lb_append(lb, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		return false;
	}
	return true;
}

/* stdout and stderr alike: read, split into lines; at EOF flush and close. */
static void
on_output(struct fdwatch *w, int fd, int what, void *arg)
{
	struct backend *b = arg;
	bool is_out = w == b->out, eof;

	/* Watches avd closed itself were forgotten already and match nothing. */
	if (!is_out && w != b->err)
		return;
	/* lws closes a watch by itself when the child's end hangs up, maybe
	 * before the last bytes were read; fd is still open here, so that is
	 * handled as end of file, after reading what is left. */
	eof = !read_pipe(fd, is_out ? &b->out_line : &b->err_line) ||
	      what == FDW_CLOSED;
	if (is_out)
		drain_stdout(b);
	else
		drain_stderr(b, eof);
	if (eof) {
		if (what == FDW_CLOSED)
			*(is_out ? &b->out : &b->err) = NULL; /* lws closes it */
		else
			close_watch(is_out ? &b->out : &b->err);
		if (is_out)
			end_session(b, "stdout closed");
	}
}

static void
on_stdin(struct fdwatch *w, int fd, int what, void *arg)
{
	struct backend *b = arg;

	if (w != b->in)
		return;
	if (what == FDW_CLOSED)
		b->in = NULL; /* the child's end is gone: lws closed it */
	else if (what == FDW_WRITE)
		write_stdin(b, fd);
}

/* ---- the session's end ---------------------------------------------------- */

/* The child can no longer answer: settle its calls and drop its session. */
static void
end_session(struct backend *b, const char *reason)
{
	struct session *s = b->s;

	if (!s)
		return;
	log_debug("backend %s: session %s ends: %s", b->conf->name, s->id, reason);
	router_fail_callee(s, AVD_E_BACKEND_UNAVAILABLE, "exited");
	flush_bad_lines(b);
	b->s = NULL;
	session_gone(s);
}

/* ---- spawning ----------------------------------------------------------- */

static char **
child_env(struct backend *b)
{
	struct ptrvec v = { 0 };
	char buf[512];
	const char *key;
	json_t *val;

	for (char **e = environ; *e; e++) {
		/* Ours below override the inherited ones of the same name. */
		static const char *const ours[] = {
			"AURORAVIEW_PACKED=", "AVD_BACKEND_NAME=", "AVD_URL=",
			"PYTHONUNBUFFERED=", "PYTHONIOENCODING=",
		};
		bool skip = false;
		for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
			if (!strncmp(*e, ours[i], strlen(ours[i])))
				skip = true;
		if (b->conf->env) {
			const char *eq = strchr(*e, '=');
			if (eq && json_object_getn(b->conf->env, *e, (size_t)(eq - *e)))
				skip = true;
		}
		if (!skip)
			ptrvec_push(&v, xstrdup(*e));
	}
	ptrvec_push(&v, xstrdup("AURORAVIEW_PACKED=1"));
	snprintf(buf, sizeof(buf), "AVD_BACKEND_NAME=%s", b->conf->name);
	ptrvec_push(&v, xstrdup(buf));
	snprintf(buf, sizeof(buf), "AVD_URL=ws://%s%s%s:%d/ws",
		 strchr(hub.cfg->listen, ':') ? "[" : "", hub.cfg->listen,
		 strchr(hub.cfg->listen, ':') ? "]" : "", server_port());
	ptrvec_push(&v, xstrdup(buf));
	ptrvec_push(&v, xstrdup("PYTHONUNBUFFERED=1"));
	ptrvec_push(&v, xstrdup("PYTHONIOENCODING=utf-8"));
	json_object_foreach(b->conf->env, key, val) {
		size_t n = strlen(key) + json_string_length(val) + 2;
		char *e = xmalloc(n);
		snprintf(e, n, "%s=%s", key, json_string_value(val));
		ptrvec_push(&v, e);
	}
	ptrvec_push(&v, NULL);
	return (char **)v.v;
}

static void
free_env(char **env)
{
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
}

static void ready_timeout(struct timer *t);

static void
spawn_failed(struct backend *b, const char *what, int err)
{
	report_error(b, "startup", true, NULL, "cannot start: %s: %s", what,
		     strerror(err));
	b->state = B_DONE;
}

static void
spawn_backend(struct backend *b)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, deflt;
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", b->conf->command, NULL };
	char **env;
	pid_t pid;
	int rc;

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
		int e = errno;
		for (int i = 0; i < 2; i++) {
			if (in[i] >= 0) close(in[i]);
			if (out[i] >= 0) close(out[i]);
			if (errp[i] >= 0) close(errp[i]);
		}
		spawn_failed(b, "pipe", e);
		return;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	/* lws does not mark every socket close-on-exec: close them all, or a
	 * child would hold clients' connections open. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (b->conf->cwd)
		posix_spawn_file_actions_addchdir_np(&fa, b->conf->cwd);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	sigaddset(&deflt, SIGTERM);
	sigaddset(&deflt, SIGINT);
	sigaddset(&deflt, SIGHUP);
	sigaddset(&deflt, SIGCHLD);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &deflt);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						POSIX_SPAWN_SETSIGDEF);
	env = child_env(b);
	rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, env);
	free_env(env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(in[0]);
	close(out[1]);
	close(errp[1]);
	if (rc) {
		close(in[1]);
		close(out[0]);
		close(errp[0]);
		spawn_failed(b, "posix_spawn", rc);
		return;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	b->pid = b->pgid = pid;
	b->state = B_RUNNING;
	b->ready = false;
	b->stop_stage = 0;
	b->stop_was_failure = false;
	b->report_exit = true;
	b->out_line.len = b->err_line.len = 0;
	b->out_line.overflow = false;
	b->s = session_new_backend(&stdio_ops, b, b->conf->name);
	snprintf(b->session_id, sizeof(b->session_id), "%s", b->s->id);
	b->out_fd = out[0];
	b->err_fd = errp[0];
	b->in = server_fd_watch(in[1], on_stdin, b);
	b->out = server_fd_watch(out[0], on_output, b);
	b->err = server_fd_watch(errp[0], on_output, b);
	if (!b->in || !b->out || !b->err) {
		log_error("backend %s: cannot watch its pipes", b->conf->name);
		stop_backend(b, true);
	}
	log_info("backend %s: started pid %d: %s", b->conf->name, (int)pid,
		 b->conf->command);
	timer_arm(&b->ready_timer, b->conf->ready_timeout_ms, ready_timeout);
}

/* ---- stopping ------------------------------------------------------------ */

static void
stop_step(struct timer *t)
{
	struct backend *b = container_of(t, struct backend, stop_timer);

	if (!b->pid && !b->lingering)
		return;
	if (b->stop_stage < 2) {
		b->stop_stage = 2;
		log_info("backend %s: still running %d ms after stdin closed: SIGTERM",
			 b->conf->name, STOP_GRACE_MS);
		kill(-b->pgid, SIGTERM);
		timer_arm(&b->stop_timer, STOP_GRACE_MS, stop_step);
	} else {
		b->stop_stage = 3;
		log_warn("backend %s: ignored SIGTERM for %d ms: SIGKILL", b->conf->name,
			 STOP_GRACE_MS);
		kill(-b->pgid, SIGKILL);
		b->lingering = false;
	}
}

/* Close stdin (once queued frames are written), then TERM, then KILL. */
static void
stop_backend(struct backend *b, bool failure)
{
	if (b->state != B_RUNNING)
		return;
	b->state = B_STOPPING;
	b->stop_was_failure = failure;
	timer_cancel(&b->ready_timer);
	timer_cancel(&b->stable_timer);
	timer_arm(&b->stop_timer, STOP_GRACE_MS, stop_step);
	if (b->in && !b->wframe && (!b->s || outq_empty(&b->s->q))) {
		b->stop_stage = 1;
		close_watch(&b->in);
	} else if (b->in) {
		server_fd_want_write(b->in);
	}
}

static void
ready_timeout(struct timer *t)
{
	struct backend *b = container_of(t, struct backend, ready_timer);

	report_error(b, "startup", true,
		     json_pack("{s:I}", "ready_timeout_ms",
			       (json_int_t)b->conf->ready_timeout_ms),
		     "backend ready timeout");
	b->report_exit = false; /* its exit is the consequence, not news */
	stop_backend(b, true);
}

/* ---- exits and restarts --------------------------------------------------- */

static void restart_fired(struct timer *t);

static unsigned
recent_restarts(struct backend *b, uint64_t now)
{
	unsigned n = 0;

	for (unsigned i = 0; i < b->nrestarts; i++)
		if (now - b->restarts[i] < RESTART_WINDOW_MS)
			n++;
	return n;
}

static void
schedule_restart(struct backend *b)
{
	uint64_t now = clock_ms();
	unsigned recent = recent_restarts(b, now);

	if (recent >= b->conf->max_restarts) {
		b->state = B_DONE;
		report_error(b, "startup", true,
			     json_pack("{s:i}", "restarts", (int)recent),
			     "gave up after %u restarts within 60 s", recent);
		return;
	}
	b->state = B_WAITING;
	log_info("backend %s: restarting in %llu ms", b->conf->name,
		 (unsigned long long)b->backoff_ms);
	timer_arm(&b->restart_timer, b->backoff_ms, restart_fired);
	b->backoff_ms *= 2;
	if (b->backoff_ms > b->conf->restart_backoff_max_ms)
		b->backoff_ms = b->conf->restart_backoff_max_ms;
	if (b->backoff_ms == 0)
		b->backoff_ms = 1;
}

static void
restart_fired(struct timer *t)
{
	struct backend *b = container_of(t, struct backend, restart_timer);
	uint64_t now = clock_ms();
	unsigned keep = 0;

	if (hub.shutting_down)
		return;
	/* Remember restarts of the last minute only. */
	for (unsigned i = 0; i < b->nrestarts; i++)
		if (now - b->restarts[i] < RESTART_WINDOW_MS)
			b->restarts[keep++] = b->restarts[i];
	b->restarts = xrealloc(b->restarts, (keep + 1) * sizeof(*b->restarts));
	b->restarts[keep] = now;
	b->nrestarts = keep + 1;
	hub.st.backend_restarts++;
	spawn_backend(b);
}

static json_t *
tail_json(struct backend *b)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < b->tail_n; i++) {
		unsigned k = (b->tail_next + TAIL_LINES - b->tail_n + i) % TAIL_LINES;
		json_array_append_new(a, json_string(b->tail[k]));
	}
	return a;
}

static void
exited(struct backend *b, int status)
{
	bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	json_t *extra;

	b->pid = 0;
	timer_cancel(&b->ready_timer);
	timer_cancel(&b->stable_timer);
	/* The leader may have been a shell whose children are still in the
	 * group: a stop goes on against the group; after a crash nothing of
	 * the old backend may survive to fight the new one. */
	if (kill(-b->pgid, 0) == 0) {
		if (b->state == B_STOPPING && b->stop_stage < 3) {
			b->lingering = true;
		} else {
			kill(-b->pgid, SIGKILL);
			timer_cancel(&b->stop_timer);
		}
	} else {
		timer_cancel(&b->stop_timer);
	}
	/* Lines written just before the exit are still in the pipes. */
	if (b->out) {
		read_pipe(b->out_fd, &b->out_line);
		drain_stdout(b);
	}
	if (b->err) {
		read_pipe(b->err_fd, &b->err_line);
		drain_stderr(b, true);
	}
	end_session(b, "exited");
	close_watch(&b->out);
	close_watch(&b->err);
	close_watch(&b->in);
	frame_unref(b->wframe);
	b->wframe = NULL;
	if (b->report_exit && !hub.shutting_down) {
		extra = json_pack("{s:o}", "stderr_tail", tail_json(b));
		if (WIFEXITED(status)) {
			json_object_set_new(extra, "exit_code",
					    json_integer(WEXITSTATUS(status)));
			report_error(b, "crash", true, extra, "backend exited with code %d",
				     WEXITSTATUS(status));
		} else {
			int sig = WTERMSIG(status);
			const char *abbrev = sigabbrev_np(sig);
			json_object_set_new(extra, "signal",
					    json_sprintf("SIG%s", abbrev ? abbrev : "UNKNOWN"));
			report_error(b, "crash", true, extra, "backend killed by signal %s",
				     strsignal(sig));
		}
	}
	if (hub.shutting_down || b->state == B_DONE || b->removed) {
		b->state = B_DONE;
		return;
	}
	if (b->next_conf) {
		/* A reload changed how it runs: start the new one at once. */
		config_backend_free(b->conf);
		b->conf = b->next_conf;
		b->next_conf = NULL;
		b->backoff_ms = b->conf->restart_backoff_ms;
		b->nrestarts = 0;
		spawn_backend(b);
		return;
	}
	if (b->stop_was_failure)
		failed = true;
	if (b->conf->restart == RESTART_ALWAYS ||
	    (b->conf->restart == RESTART_ON_FAILURE && failed))
		schedule_restart(b);
	else
		b->state = B_DONE;
}

void
backend_reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (uint32_t i = 0; i < backends.n; i++) {
			struct backend *b = backends.v[i];
			if (b->pid == pid) {
				exited(b, status);
				break;
			}
		}
	}
}

/* ---- the module's entry points -------------------------------------------- */

static struct backend *
add_backend(const struct backend_conf *conf)
{
	struct backend *b = xcalloc(1, sizeof(*b));

	b->conf = config_backend_dup(conf);
	b->backoff_ms = b->conf->restart_backoff_ms;
	ptrvec_push(&backends, b);
	spawn_backend(b);
	return b;
}

void
backend_start_all(struct config *c)
{
	for (uint32_t i = 0; i < c->backends.n; i++)
		add_backend(c->backends.v[i]);
}

static struct backend *
find_backend(const char *name)
{
	for (uint32_t i = 0; i < backends.n; i++) {
		struct backend *b = backends.v[i];
		if (!b->removed && !strcmp(b->conf->name, name))
			return b;
	}
	return NULL;
}

static void
note(json_t *report, const char *what, const char *name)
{
	json_t *a = json_object_get(report, what);

	if (!a)
		json_object_set_new(report, what, a = json_array());
	json_array_append_new(a, json_string(name));
}

void
backend_reconcile(const struct ptrvec *confs, json_t *report)
{
	/* Backends no longer configured stop for good. */
	for (uint32_t i = 0; i < backends.n; i++) {
		struct backend *b = backends.v[i];
		bool kept = false;
		if (b->removed)
			continue;
		for (uint32_t k = 0; k < confs->n; k++)
			if (!strcmp(((struct backend_conf *)confs->v[k])->name, b->conf->name))
				kept = true;
		if (kept)
			continue;
		b->removed = true;
		b->report_exit = false; /* stopped on purpose, not news */
		timer_cancel(&b->restart_timer);
		if (b->state == B_WAITING)
			b->state = B_DONE;
		stop_backend(b, false);
		note(report, "stopped", b->conf->name);
	}
	for (uint32_t k = 0; k < confs->n; k++) {
		const struct backend_conf *conf = confs->v[k];
		struct backend *b = find_backend(conf->name);

		if (!b) {
			add_backend(conf);
			note(report, "started", conf->name);
		} else if (!config_backend_equal(b->conf, conf)) {
			config_backend_free(b->next_conf);
			b->next_conf = config_backend_dup(conf);
			note(report, "restarted", conf->name);
			if (b->state == B_RUNNING) {
				b->report_exit = false;
				stop_backend(b, false);
			} else if (b->state != B_STOPPING) {
				/* Waiting or given up: start the new one now. */
				timer_cancel(&b->restart_timer);
				config_backend_free(b->conf);
				b->conf = b->next_conf;
				b->next_conf = NULL;
				b->backoff_ms = b->conf->restart_backoff_ms;
				b->nrestarts = 0;
				spawn_backend(b);
			}
		}
	}
}

void
backend_shutdown(void)
{
	for (uint32_t i = 0; i < backends.n; i++) {
		struct backend *b = backends.v[i];
		timer_cancel(&b->restart_timer);
		timer_cancel(&b->report_timer);
		if (b->state == B_WAITING)
			b->state = B_DONE;
		/* Running ones are stopped by hub_shutdown closing their session,
		 * after EVENT_LOOP_CLOSED has gone to every pending call. */
		if (b->state == B_RUNNING && !b->s)
			stop_backend(b, false);
	}
}

unsigned
backend_running(void)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < backends.n; i++) {
		struct backend *b = backends.v[i];
		if (b->pid || b->lingering)
			n++;
	}
	return n;
}

void
backend_kill_all(void)
{
	for (uint32_t i = 0; i < backends.n; i++) {
		struct backend *b = backends.v[i];
		int status;
		if (b->pgid && (b->pid || b->lingering))
			kill(-b->pgid, SIGKILL);
		b->lingering = false;
		if (b->pid && waitpid(b->pid, &status, 0) == b->pid) {
			b->report_exit = false;
			exited(b, status);
		}
	}
	/* As a subreaper avd inherited the groups' orphans: reap what died. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

void
backend_free_all(void)
{
	for (uint32_t i = 0; i < backends.n; i++) {
		struct backend *b = backends.v[i];
		timer_cancel(&b->ready_timer);
		timer_cancel(&b->restart_timer);
		timer_cancel(&b->stop_timer);
		timer_cancel(&b->stable_timer);
		timer_cancel(&b->report_timer);
		for (unsigned k = 0; k < TAIL_LINES; k++)
			free(b->tail[k]);
		lb_free(&b->out_line);
		lb_free(&b->err_line);
		frame_unref(b->wframe);
		free(b->restarts);
		config_backend_free(b->conf);
		config_backend_free(b->next_conf);
		free(b);
	}
	ptrvec_free(&backends);
}
