/*
 * avdctl.c - the command line of avdctl: options, finding avd, and what
 * each command sends and prints.  The connection itself is conn.c.
 *
 *   avdctl [--url URL] [--token T] [--timeout MS] COMMAND ...
 *
 * Output rules, kept in one place so scripts can rely on them: results go
 * to stdout as JSON; an error object from avd or a callee goes to stderr as
 * JSON; avdctl's own diagnostics are plain lines starting with "avdctl:".
 * The help text below and avdctl.1 say the same things.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "conn.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#define DEFAULT_URL "ws://127.0.0.1:7700/ws"
/* avd's default callTimeoutMs, used when welcome does not say. */
#define AVD_CALL_TIMEOUT_MS 30000
/* avdctl's own wait for a call ends this long after avd's would, so the
 * error users see is avd's TIMEOUT (PROTOCOL.md section 11). */
#define CALL_GRACE_MS 1000
/* TCP connect, upgrade and hello/welcome together. */
#define CONNECT_MS 5000
/* Wait for avd's answer where no call timeout applies (emit, sub, health). */
#define DEFAULT_WAIT_MS 10000
#define MAX_TIMEOUT_MS 2147483647LL

/* clang-format off: one source line per line of output */
static const char usage_text[] =
	"Usage: avdctl [OPTION]... COMMAND [ARG]...\n"
	"Talk to a running avd: call methods, publish and watch events.\n"
	"\n"
	"Commands:\n"
	"  call METHOD [JSON]  call METHOD with JSON (any JSON value) as its "
	"params,\n"
	"                      '-' reads them from stdin; print the result.  "
	"Chunks\n"
	"                      of a streamed result come first, one line\n"
	"                      {\"chunk\":DATA} each\n"
	"  emit EVENT [JSON]   publish EVENT with JSON as its data; waits "
	"until avd\n"
	"                      has taken it, so a bad name is reported (status "
	"1)\n"
	"  sub PATTERN...      subscribe to each PATTERN (NAME, PREFIX*, or *) "
	"and\n"
	"                      print every matching event as one line\n"
	"                      {\"event\":E,\"data\":D,\"from\":SESSION} until "
	"SIGINT or\n"
	"                      SIGTERM (status 0) or the connection drops "
	"(status 5);\n"
	"                      \"from\" is null for avd's own system events\n"
	"  sessions            print avd's sessions (avd.sessions)\n"
	"  methods             print the registered methods (avd.methods)\n"
	"  stats               print avd's counters (avd.stats)\n"
	"  health              GET /healthz (no token needed) and print it; "
	"status 0\n"
	"                      when avd answers HTTP 200 with "
	"\"status\":\"ok\", else 1\n"
	"\n"
	"Options:\n"
	"  --url URL       avd's WebSocket URL, ws://HOST:PORT/ws; the\n"
	"                  http://HOST:PORT/?token=T that avd prints works "
	"too\n"
	"  --token T       the token to present in hello\n"
	"  --timeout MS    call, sessions, methods, stats: sent as timeout_ms\n"
	"                  (0 = none) and avdctl waits 1000 ms longer, so the "
	"error\n"
	"                  you see is avd's TIMEOUT; every chunk starts the "
	"wait\n"
	"                  again; default: avd's callTimeoutMs.  emit, sub, "
	"health:\n"
	"                  how long to wait for avd's answer (default 10000; 0 "
	"= no\n"
	"                  limit).  Connecting and hello/welcome have 5 s of "
	"their own\n"
	"  --pretty        indent JSON results (the default on a terminal)\n"
	"  --compact       JSON results on one line (the default otherwise); "
	"chunks\n"
	"                  and events are always one line each\n"
	"  -h, --help      show this help and exit\n"
	"  -V, --version   show the version and exit\n"
	"Options may come before or after COMMAND; '--' ends them (for a JSON\n"
	"argument that starts with '-').\n"
	"\n"
	"Finding avd, URL and token each on its own, first found wins:\n"
	"  1. --url and --token\n"
	"  2. $AVD_URL and $AVD_TOKEN\n"
	"  3. the files url and token in $XDG_RUNTIME_DIR/avd (/tmp/avd-$UID "
	"when\n"
	"     XDG_RUNTIME_DIR is unset), which avd writes when it starts; a "
	"directory\n"
	"     that is not yours and private (mode 0700) is ignored\n"
	"  4. ws://127.0.0.1:7700/ws and no token\n"
	"\n"
	"Output: results go to stdout as JSON.  An error from avd or the "
	"callee goes\n"
	"to stderr as its JSON error object "
	"{\"code\",\"name\",\"message\",\"data\"};\n"
	"avdctl's own messages are lines starting with \"avdctl:\".\n"
	"\n"
	"Exit status:\n"
	"  0    success\n"
	"  1    avd or the callee answered with an error; health: avd is not "
	"ok\n"
	"  2    usage error\n"
	"  3    cannot connect: avd is not running, refused the upgrade (HTTP "
	"401)\n"
	"       or the token (UNAUTHORIZED)\n"
	"  4    timeout: avd's TIMEOUT error, or no answer in time\n"
	"  5    the connection to avd was lost after the session started\n"
	"  130  interrupted by SIGINT (143: SIGTERM); sub exits 0 instead\n";
/* clang-format on */

enum cmd { CMD_CALL, CMD_EMIT, CMD_SUB, CMD_HEALTH };

/* What one run of avdctl does; argv strings are borrowed, JSON values
 * owned. */
struct job {
	enum cmd cmd;
	const char *method; /* call */
	const char *event;  /* emit */
	json_t *params;	    /* call params or emit data; NULL = none */
	char **patterns;    /* sub */
	int npatterns;
	bool has_timeout;
	long long timeout_ms;
	long long wait_ms; /* avdctl's own current wait; -1 = none */
	bool pretty_out, pretty_err;
};

/* ---- output ------------------------------------------------------------- */

static void
print_json(FILE *f, json_t *v, bool pretty)
{
	char *s = json_dumps(
		v, JSON_ENCODE_ANY | (pretty ? JSON_INDENT(2) : JSON_COMPACT));

	if (s) {
		fputs(s, f);
		fputc('\n', f);
		free(s);
	}
	fflush(f);
}

/* One JSON line, whatever --pretty says: a stream must stay one value a
 * line to be read by line-oriented tools. */
static void
print_line(json_t *v)
{
	print_json(stdout, v, false);
}

static int
error_status(json_t *err)
{
	const char *code = json_string_value(json_object_get(err, "code"));

	return code && !strcmp(code, "TIMEOUT") ? ST_TIMEOUT : ST_FAILED;
}

static void
print_error(struct job *j, json_t *err)
{
	print_json(stderr, err, j->pretty_err);
}

static bool
is_our_id(json_t *id)
{
	return json_is_integer(id) && json_integer_value(id) == 1;
}

/* ---- call (and sessions, methods, stats) -------------------------------- */

/* Queue m on c; a message that cannot be encoded ends the job as failed. */
static int
send_or_fail(struct conn *c, json_t *m, const char *what)
{
	if (conn_send(c, m) == 0)
		return 0;
	fprintf(stderr, "avdctl: cannot encode the %s\n", what);
	conn_finish(c, ST_FAILED);
	return -1;
}

static void
call_expired(struct conn *c)
{
	struct job *j = conn_arg(c);

	fprintf(stderr, "avdctl: no answer to %s from avd within %lld ms\n",
		j->method, j->wait_ms);
	conn_finish(c, ST_TIMEOUT);
}

static void
call_welcome(struct conn *c, json_t *welcome)
{
	struct job *j = conn_arg(c);
	json_t *m = json_pack("{s:i, s:s}", "id", 1, "method", j->method);
	long long t;

	if (!m) {
		fprintf(stderr, "avdctl: method name is not valid UTF-8\n");
		conn_finish(c, ST_USAGE);
		return;
	}
	if (j->params)
		json_object_set(m, "params", j->params);
	if (j->has_timeout)
		json_object_set_new(m, "timeout_ms",
				    json_integer(j->timeout_ms));
	send_or_fail(c, m, "call");
	json_decref(m);

	if (j->has_timeout) {
		t = j->timeout_ms;
	} else {
		json_t *v = json_object_get(json_object_get(welcome, "config"),
					    "callTimeoutMs");

		t = json_is_integer(v) && json_integer_value(v) >= 0
			    ? (long long)json_integer_value(v)
			    : AVD_CALL_TIMEOUT_MS;
	}
	/* timeout 0 means none at avd, so none here either. */
	j->wait_ms = t > 0 ? t + CALL_GRACE_MS : -1;
	conn_deadline(c, j->wait_ms, call_expired);
}

static void
call_message(struct conn *c, json_t *msg)
{
	struct job *j = conn_arg(c);
	const char *type = json_string_value(json_object_get(msg, "type"));
	json_t *id = json_object_get(msg, "id");

	if (type && !strcmp(type, "chunk")) {
		if (!is_our_id(id))
			return;
		json_t *data = json_object_get(msg, "data");
		json_t *line =
			json_pack("{s:O}", "chunk", data ? data : json_null());

		print_line(line);
		json_decref(line);
		/* avd re-arms its timeout on every chunk; so do we. */
		conn_deadline(c, j->wait_ms, call_expired);
		return;
	}
	if (type && !strcmp(type, "error")) {
		/* Only our call can have caused it (too large, bad request). */
		json_t *err = json_object_get(msg, "error");

		print_error(j, err ? err : msg);
		conn_finish(c, error_status(err));
		return;
	}
	if ((type && strcmp(type, "call")) || !is_our_id(id) ||
	    json_object_get(msg, "method"))
		return; /* events, cancels: not for us */

	json_t *ok = json_object_get(msg, "ok");
	json_t *err = json_object_get(msg, "error");

	if (json_is_true(ok) || (!ok && !err)) {
		json_t *result = json_object_get(msg, "result");

		print_json(stdout, result ? result : json_null(),
			   j->pretty_out);
		conn_finish(c, ST_OK);
	} else {
		print_error(j, json_is_object(err) ? err : msg);
		conn_finish(c, error_status(err));
	}
}

/* ---- emit --------------------------------------------------------------- */

static void
wait_expired(struct conn *c)
{
	struct job *j = conn_arg(c);

	fprintf(stderr, "avdctl: no answer from avd within %lld ms\n",
		j->wait_ms);
	conn_finish(c, ST_TIMEOUT);
}

static void
emit_welcome(struct conn *c, json_t *welcome)
{
	struct job *j = conn_arg(c);
	json_t *ev =
		json_pack("{s:s, s:s}", "type", "event", "event", j->event);
	/* Events get no reply; a call sent right behind the event is
	 * answered only after avd has taken the event, and any error about
	 * the event comes first (control messages lead each session's queue).
	 * unsubscribe of nothing changes nothing. */
	json_t *barrier = json_pack("{s:i, s:s, s:{s:[]}}", "id", 1, "method",
				    "avd.unsubscribe", "params", "events");

	if (!ev) {
		fprintf(stderr, "avdctl: event name is not valid UTF-8\n");
		json_decref(barrier);
		conn_finish(c, ST_USAGE);
		return;
	}
	if (j->params)
		json_object_set(ev, "data", j->params);
	if (send_or_fail(c, ev, "event") == 0)
		send_or_fail(c, barrier, "event");
	json_decref(ev);
	json_decref(barrier);
	conn_deadline(c, j->wait_ms, wait_expired);
}

static void
emit_message(struct conn *c, json_t *msg)
{
	struct job *j = conn_arg(c);
	const char *type = json_string_value(json_object_get(msg, "type"));

	if (type && !strcmp(type, "error")) {
		json_t *err = json_object_get(msg, "error");

		print_error(j, err ? err : msg);
		conn_finish(c, error_status(err));
		return;
	}
	if (type || !is_our_id(json_object_get(msg, "id")))
		return;
	if (json_is_true(json_object_get(msg, "ok"))) {
		conn_finish(c, ST_OK);
	} else {
		json_t *err = json_object_get(msg, "error");

		print_error(j, json_is_object(err) ? err : msg);
		conn_finish(c, ST_FAILED);
	}
}

/* ---- sub ---------------------------------------------------------------- */

/* avd's own pattern forms: exact name, PREFIX*, or *.  Frontends get
 * backend_ready, backend_health and backend_error unasked, and events sent
 * "to" them; sub shows only what its patterns ask for. */
static bool
pattern_match(const char *pat, const char *name)
{
	size_t n = strlen(pat);

	if (n && pat[n - 1] == '*')
		return !strncmp(pat, name, n - 1);
	return !strcmp(pat, name);
}

static void
sub_welcome(struct conn *c, json_t *welcome)
{
	struct job *j = conn_arg(c);
	json_t *events = json_array();
	json_t *m;

	for (int i = 0; i < j->npatterns; i++)
		if (json_array_append_new(events,
					  json_string(j->patterns[i]))) {
			fprintf(stderr, "avdctl: pattern is not valid UTF-8\n");
			json_decref(events);
			conn_finish(c, ST_USAGE);
			return;
		}
	m = json_pack("{s:i, s:s, s:{s:o}}", "id", 1, "method", "avd.subscribe",
		      "params", "events", events);
	send_or_fail(c, m, "subscription");
	json_decref(m);
	conn_deadline(c, j->wait_ms, wait_expired);
}

static void
sub_message(struct conn *c, json_t *msg)
{
	struct job *j = conn_arg(c);
	const char *type = json_string_value(json_object_get(msg, "type"));

	if (type && !strcmp(type, "event")) {
		const char *name =
			json_string_value(json_object_get(msg, "event"));
		json_t *data = json_object_get(msg, "data");
		json_t *from = json_object_get(msg, "from");
		bool match = false;

		for (int i = 0; name && i < j->npatterns && !match; i++)
			match = pattern_match(j->patterns[i], name);
		if (!match)
			return;
		/* from is null for avd's own system events. */
		json_t *line =
			json_pack("{s:s, s:o, s:O}", "event", name, "data",
				  data ? json_incref(data) : json_object(),
				  "from", from ? from : json_null());
		print_line(line);
		json_decref(line);
		return;
	}
	if (type && !strcmp(type, "error")) {
		/* Nothing we send after subscribing can cause one; show it and
		 * keep listening. */
		json_t *err = json_object_get(msg, "error");

		print_error(j, err ? err : msg);
		return;
	}
	if (type || !is_our_id(json_object_get(msg, "id")))
		return;
	if (json_is_true(json_object_get(msg, "ok"))) {
		conn_deadline(c, -1, NULL); /* subscribed; now wait forever */
	} else {
		json_t *err = json_object_get(msg, "error");

		print_error(j, json_is_object(err) ? err : msg);
		conn_finish(c, ST_FAILED);
	}
}

/* Stopping a subscription is its normal end. */
static void
sub_interrupted(struct conn *c, int signo)
{
	conn_finish(c, ST_OK);
}

static const struct conn_driver call_driver = {call_welcome, call_message,
					       NULL};
static const struct conn_driver emit_driver = {emit_welcome, emit_message,
					       NULL};
static const struct conn_driver sub_driver = {sub_welcome, sub_message,
					      sub_interrupted};

/* ---- health ------------------------------------------------------------- */

static int
run_health(struct job *j, const struct target *t)
{
	struct http_result res;
	int st = conn_http_get(t, "/healthz", (int)j->wait_ms, &res);
	json_t *body;
	json_error_t jerr;

	if (st != ST_OK)
		return st;
	body = json_loadb(res.body ? res.body : "", res.len, 0, &jerr);
	if (body) {
		print_json(stdout, body, j->pretty_out);
	} else {
		/* Not JSON: show it as it came, it is the best clue there is.
		 */
		if (res.len)
			fwrite(res.body, 1, res.len, stdout);
		if (!res.len || res.body[res.len - 1] != '\n')
			fputc('\n', stdout);
		fflush(stdout);
	}
	const char *status = json_string_value(json_object_get(body, "status"));

	if (res.status == 200 && status && !strcmp(status, "ok")) {
		st = ST_OK;
	} else {
		fprintf(stderr,
			"avdctl: avd at %s is not healthy (HTTP %u%s%s)\n",
			t->hostport, res.status, status ? ", status " : "",
			status ? status : "");
		st = ST_FAILED;
	}
	json_decref(body);
	free(res.body);
	return st;
}

/* ---- finding avd -------------------------------------------------------- */

static void
target_free(struct target *t)
{
	free(t->url);
	free(t->host);
	free(t->hostport);
	free(t->path);
	free(t->token);
	memset(t, 0, sizeof(*t));
}

/* The URL as messages show it, with the value of a token= in the query
 * hidden: what avdctl prints on stderr tends to end up in logs.  The
 * caller frees it. */
static char *
display_url(const char *host, int port, bool v6, const char *path)
{
	const char *q = strchr(path, '?');
	const char *tok = NULL;
	char *url;
	int n;

	for (const char *a = q; a; a = strchr(a + 1, '&'))
		if (!strncmp(a + 1, "token=", 6)) {
			tok = a + 7;
			break;
		}
	if (tok)
		n = asprintf(&url,
			     v6 ? "ws://[%s]:%d%.*s***%s"
				: "ws://%s:%d%.*s***%s",
			     host, port, (int)(tok - path), path,
			     tok + strcspn(tok, "&"));
	else
		n = asprintf(&url, v6 ? "ws://[%s]:%d%s" : "ws://%s:%d%s", host,
			     port, path);
	return n < 0 ? NULL : url;
}

/* Splits ws://HOST[:PORT][/PATH][?QUERY] (or http://) into t.  An http://
 * URL with path "/" is avd's console address, as avd prints it at start:
 * its WebSocket endpoint is /ws on the same port. */
static int
parse_url(const char *url, struct target *t)
{
	const char *p, *hs, *he, *rest;
	bool http = false;
	long port = 80;
	char *end;

	if (!strncasecmp(url, "ws://", 5)) {
		p = url + 5;
	} else if (!strncasecmp(url, "http://", 7)) {
		p = url + 7;
		http = true;
	} else if (!strncasecmp(url, "wss://", 6) ||
		   !strncasecmp(url, "https://", 8)) {
		fprintf(stderr,
			"avdctl: %s: TLS is not supported (avd listens on "
			"loopback, without TLS)\n",
			url);
		return -1;
	} else {
		fprintf(stderr,
			"avdctl: %s: the URL must start with ws:// or "
			"http://\n",
			url);
		return -1;
	}
	if (*p == '[') {
		hs = p + 1;
		he = strchr(hs, ']');
		if (!he) {
			fprintf(stderr,
				"avdctl: %s: no ']' after the IPv6 address\n",
				url);
			return -1;
		}
		rest = he + 1;
	} else {
		hs = p;
		he = hs + strcspn(hs, ":/?#");
		rest = he;
	}
	if (he == hs) {
		fprintf(stderr, "avdctl: %s: no host in the URL\n", url);
		return -1;
	}
	if (*rest == ':') {
		errno = 0;
		port = strtol(rest + 1, &end, 10);
		if (end == rest + 1 || errno || port < 1 || port > 65535 ||
		    (*end && !strchr("/?#", *end))) {
			fprintf(stderr, "avdctl: %s: bad port\n", url);
			return -1;
		}
		rest = end;
	} else if (*rest && !strchr("/?#", *rest)) {
		fprintf(stderr, "avdctl: %s: bad URL\n", url);
		return -1;
	}

	size_t rl = strcspn(rest, "#"); /* a fragment never goes on the wire */
	const char *q = memchr(rest, '?', rl);
	size_t pathlen = q ? (size_t)(q - rest) : rl;

	t->host = strndup(hs, (size_t)(he - hs));
	t->port = (int)port;
	if (!t->host) {
		fputs("avdctl: out of memory\n", stderr);
		return -1;
	}
	if (pathlen == 0 || (http && pathlen == 1)) {
		/* no path, or avd's console address: the endpoint is /ws */
		if (asprintf(&t->path, "/ws%.*s", (int)(rl - pathlen),
			     rest + pathlen) < 0)
			t->path = NULL;
	} else {
		t->path = strndup(rest, rl);
	}
	if (asprintf(&t->hostport, *p == '[' ? "[%s]:%d" : "%s:%d", t->host,
		     t->port) < 0)
		t->hostport = NULL;
	if (t->path)
		t->url = display_url(t->host, t->port, *p == '[', t->path);
	if (!t->host || !t->path || !t->hostport || !t->url) {
		fputs("avdctl: out of memory\n", stderr);
		return -1;
	}
	return 0;
}

/* The first line of a small file, trimmed; NULL when absent or empty.
 * The caller frees it. */
static char *
read_line_file(const char *path)
{
	char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	n = strcspn(buf, "\r\n");
	while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	return n ? strdup(buf) : NULL;
}

/* avd's runtime directory holds its address and its token; one that is
 * not ours and private could hand us someone else's avd to send our token
 * to, so such a directory is skipped. */
static bool
private_dir(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st))
		return false;
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
	    (st.st_mode & 022)) {
		fprintf(stderr,
			"avdctl: ignoring %s: not a private directory "
			"owned by you\n",
			dir);
		return false;
	}
	return true;
}

/* Fills t from the options, the environment and avd's runtime files,
 * each setting on its own, in the order the help text gives.  The runtime
 * directory is the one avd itself writes: $XDG_RUNTIME_DIR/avd when that
 * variable is set, else /tmp/avd-$UID.  Returns 0, or ST_USAGE when the
 * URL does not parse. */
static int
resolve_target(const char *opt_url, const char *opt_token, struct target *t)
{
	static char token_src[600];
	const char *env_url = getenv("AVD_URL");
	const char *env_token = getenv("AVD_TOKEN");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char dir[512], path[600];
	char *file_url = NULL;
	const char *url;
	int priv = -1; /* whether dir is private; -1 = not looked at yet */

	if (xdg && *xdg)
		snprintf(dir, sizeof(dir), "%s/avd", xdg);
	else
		snprintf(dir, sizeof(dir), "/tmp/avd-%u", (unsigned)getuid());

	if (opt_url) {
		url = opt_url;
	} else if (env_url && *env_url) {
		url = env_url;
	} else {
		snprintf(path, sizeof(path), "%s/url", dir);
		if (!access(path, F_OK) && (priv = private_dir(dir)))
			file_url = read_line_file(path);
		url = file_url ? file_url : DEFAULT_URL;
	}
	if (parse_url(url, t)) {
		free(file_url);
		return ST_USAGE;
	}
	free(file_url);

	if (opt_token) {
		t->token = strdup(opt_token);
		t->token_source = "--token";
	} else if (env_token && *env_token) {
		t->token = strdup(env_token);
		t->token_source = "$AVD_TOKEN";
	} else {
		snprintf(path, sizeof(path), "%s/token", dir);
		if (!access(path, F_OK) &&
		    (priv >= 0 ? priv : private_dir(dir)))
			t->token = read_line_file(path);
		if (t->token) {
			snprintf(token_src, sizeof(token_src), "%s", path);
			t->token_source = token_src;
		}
	}
	return 0;
}

/* ---- command line ------------------------------------------------------- */

static int
usage_error(const char *fmt, const char *arg)
{
	fputs("avdctl: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'avdctl --help' for more information.\n", stderr);
	return ST_USAGE;
}

/* JSON from an argument, or from stdin for "-"; any JSON value. */
static int
parse_json_arg(const char *arg, const char *what, json_t **out)
{
	json_error_t jerr;
	size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;

	*out = strcmp(arg, "-") ? json_loads(arg, flags, &jerr)
				: json_loadf(stdin, flags, &jerr);
	if (!*out) {
		fprintf(stderr, "avdctl: %s is not valid JSON: %s (at %d:%d)\n",
			what, jerr.text, jerr.line, jerr.column);
		fputs("Try 'avdctl --help' for more information.\n", stderr);
		return ST_USAGE;
	}
	return 0;
}

static int
parse_timeout(const char *s, long long *out)
{
	char *end;

	errno = 0;
	long long v = strtoll(s, &end, 10);

	if (end == s || *end || errno || v < 0 || v > MAX_TIMEOUT_MS)
		return -1;
	*out = v;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"url", required_argument, NULL, 'u'},
		{"token", required_argument, NULL, 't'},
		{"timeout", required_argument, NULL, 'T'},
		{"pretty", no_argument, NULL, 'p'},
		{"compact", no_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}};
	const char *opt_url = NULL, *opt_token = NULL;
	int pretty = -1; /* -1: decide by isatty */
	struct job j;
	struct target t;
	int opt, st;

	memset(&j, 0, sizeof(j));
	memset(&t, 0, sizeof(t));
	opterr = 0; /* our own messages, in our own words */
	while ((opt = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			opt_url = optarg;
			break;
		case 't':
			opt_token = optarg;
			break;
		case 'T':
			if (parse_timeout(optarg, &j.timeout_ms))
				return usage_error(
					"--timeout wants milliseconds "
					"from 0 to 2147483647, not '%s'",
					optarg);
			j.has_timeout = true;
			break;
		case 'p':
			pretty = 1;
			break;
		case 'c':
			pretty = 0;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return fflush(stdout) ? ST_FAILED : ST_OK;
		case 'V':
			printf("avdctl %s\n", PACKAGE_VERSION);
			return fflush(stdout) ? ST_FAILED : ST_OK;
		case ':':
			return usage_error("option '%s' needs a value",
					   argv[optind - 1]);
		default:
			if (optopt) {
				char o[3] = {'-', (char)optopt, '\0'};

				return usage_error("unknown option '%s'", o);
			}
			return usage_error("unknown option '%s'",
					   argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("%s", "no command given");

	const char *cmd = argv[optind++];
	int nargs = argc - optind;
	char **args = argv + optind;
	const char *method = NULL;

	j.pretty_out = pretty >= 0 ? pretty : isatty(STDOUT_FILENO);
	j.pretty_err = pretty >= 0 ? pretty : isatty(STDERR_FILENO);
	j.wait_ms = j.has_timeout ? j.timeout_ms : DEFAULT_WAIT_MS;

	if (!strcmp(cmd, "call")) {
		if (nargs < 1 || nargs > 2)
			return usage_error("%s",
					   "usage: avdctl call METHOD [JSON]");
		j.cmd = CMD_CALL;
		method = args[0];
		if (nargs == 2 &&
		    (st = parse_json_arg(args[1], "params", &j.params)))
			return st;
	} else if (!strcmp(cmd, "emit")) {
		if (nargs < 1 || nargs > 2)
			return usage_error("%s",
					   "usage: avdctl emit EVENT [JSON]");
		j.cmd = CMD_EMIT;
		j.event = args[0];
		if (nargs == 2 &&
		    (st = parse_json_arg(args[1], "data", &j.params)))
			return st;
	} else if (!strcmp(cmd, "sub")) {
		if (nargs < 1)
			return usage_error("%s",
					   "usage: avdctl sub PATTERN...");
		j.cmd = CMD_SUB;
		j.patterns = args;
		j.npatterns = nargs;
	} else if (!strcmp(cmd, "sessions") || !strcmp(cmd, "methods") ||
		   !strcmp(cmd, "stats")) {
		if (nargs)
			return usage_error("%s takes no arguments", cmd);
		j.cmd = CMD_CALL;
		method = !strcmp(cmd, "sessions")  ? "avd.sessions"
			 : !strcmp(cmd, "methods") ? "avd.methods"
						   : "avd.stats";
	} else if (!strcmp(cmd, "health")) {
		if (nargs)
			return usage_error("%s takes no arguments", cmd);
		j.cmd = CMD_HEALTH;
	} else {
		return usage_error("unknown command '%s'", cmd);
	}
	j.method = method;
	if (j.wait_ms == 0 && j.cmd != CMD_CALL)
		j.wait_ms = -1; /* --timeout 0: wait as long as it takes */

	if ((st = resolve_target(opt_url, opt_token, &t))) {
		target_free(&t);
		json_decref(j.params);
		return st;
	}
	switch (j.cmd) {
	case CMD_CALL:
		st = conn_run_ws(&t, &call_driver, &j, CONNECT_MS);
		break;
	case CMD_EMIT:
		st = conn_run_ws(&t, &emit_driver, &j, CONNECT_MS);
		break;
	case CMD_SUB:
		st = conn_run_ws(&t, &sub_driver, &j, CONNECT_MS);
		break;
	case CMD_HEALTH:
		st = run_health(&j, &t);
		break;
	}
	json_decref(j.params);
	target_free(&t);
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "avdctl: writing the output failed: %s\n",
			strerror(errno));
		if (st == ST_OK)
			st = ST_FAILED;
	}
	return st;
}
