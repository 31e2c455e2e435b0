/*
 * conn.c - the libwebsockets side of avdctl: one client connection (a
 * WebSocket session or an HTTP GET) on one lws loop, no threads.
 *
 * Signals arrive through a signalfd adopted into the same loop, as in the
 * daemon, so no code of ours runs in signal context and a SIGINT that lands
 * just before poll() cannot be lost.
 *
 * Ownership: conn_run_ws() and conn_http_get() own their struct conn (on
 * their stack) and the lws context; the conn owns the outbound queue and
 * the reassembly buffer.  The target and the driver belong to the caller.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sigprocmask, signalfd */
#endif

#include <errno.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "conn.h"

/* avd's own inbound limit is 1 MiB by default, but what it sends us (a
 * result of avd.sessions with thousands of sessions, a backend's reply
 * when the limit was raised) can be larger.  Past this, a message is
 * dropped instead of growing without bound. */
#define RX_LIMIT_MIN ((size_t)64 << 20)
/* An HTTP body larger than this is not /healthz. */
#define HTTP_BODY_LIMIT ((size_t)1 << 20)
/* How long a clean WebSocket close may take before we just leave. */
#define CLOSE_GRACE_MS 1000

/* One serialised message waiting for WRITEABLE; LWS_PRE bytes of headroom
 * in front of the payload, as lws_write() wants. */
struct out {
	struct out *next;
	size_t len;
	unsigned char buf[];
};

struct conn {
	const struct target *t;	     /* borrowed from the caller */
	const struct conn_driver *d; /* borrowed; NULL for HTTP */
	void *arg;		     /* the driver's, opaque here */
	struct lws_context *ctx;     /* owned: created and destroyed here */
	struct lws *wsi;	     /* lws's; NULL once it is destroyed */
	int status;		     /* exit status, -1 until decided */
	bool done;		     /* leave the loop */
	bool destroying;	     /* context teardown: no more reports */
	bool established; /* WebSocket upgrade (or HTTP reply) done */
	bool welcomed;	  /* avd said welcome */
	bool finishing;	  /* close once the queue is empty */

	struct out *out_head, **out_tail; /* owned FIFO */

	/* Message reassembly: fragments of one message collect in rx. */
	char *rx; /* owned */
	size_t rx_len, rx_cap, rx_limit;
	bool rx_in_msg, rx_oversize, rx_binary;

	/* What the peer said when it closed, for messages. */
	int close_code;
	char close_reason[124];

	lws_sorted_usec_list_t connect_sul;  /* handshake bound */
	lws_sorted_usec_list_t deadline_sul; /* the driver's deadline */
	lws_sorted_usec_list_t close_sul;    /* clean-close bound */
	void (*deadline_fn)(struct conn *c);
	int connect_ms;

	/* HTTP GET */
	struct http_result *res; /* the caller's; body owned by it once done */
	size_t body_cap;
	bool http_done;

	int sigfd; /* owned; -1 when none */
};

/* ---- small helpers ------------------------------------------------------ */

static struct conn *
conn_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

/* Ends the loop at its next turn; lws_cancel_service() wakes a poll() that
 * would otherwise sleep until the next socket event. */
static void
stop_loop(struct conn *c)
{
	c->done = true;
	if (c->ctx)
		lws_cancel_service(c->ctx);
}

static void
set_status(struct conn *c, int status)
{
	if (c->status < 0)
		c->status = status;
}

static void
close_grace_fire(lws_sorted_usec_list_t *sul)
{
	struct conn *c = lws_container_of(sul, struct conn, close_sul);

	stop_loop(c);
}

void
conn_finish(struct conn *c, int status)
{
	set_status(c, status);
	if (c->finishing) {
		/* A second request (say, another SIGINT) does not wait again.
		 */
		stop_loop(c);
		return;
	}
	c->finishing = true;
	lws_sul_cancel(&c->deadline_sul);
	lws_sul_cancel(&c->connect_sul);
	if (c->wsi && c->established && !c->res) {
		/* Flush what is queued, then a close frame (see writeable()).
		 */
		lws_callback_on_writable(c->wsi);
		lws_sul_schedule(c->ctx, 0, &c->close_sul, close_grace_fire,
				 (lws_usec_t)CLOSE_GRACE_MS * LWS_US_PER_MS);
	} else {
		stop_loop(c);
	}
}

void *
conn_arg(struct conn *c)
{
	return c->arg;
}

static void
deadline_fire(lws_sorted_usec_list_t *sul)
{
	struct conn *c = lws_container_of(sul, struct conn, deadline_sul);

	if (c->deadline_fn)
		c->deadline_fn(c);
}

void
conn_deadline(struct conn *c, long long ms, void (*fn)(struct conn *c))
{
	c->deadline_fn = fn;
	if (ms < 0) {
		lws_sul_cancel(&c->deadline_sul);
		return;
	}
	lws_sul_schedule(c->ctx, 0, &c->deadline_sul, deadline_fire,
			 (lws_usec_t)(ms ? ms : 1) * LWS_US_PER_MS);
}

int
conn_send(struct conn *c, json_t *msg)
{
	size_t len = json_dumpb(msg, NULL, 0, JSON_COMPACT);
	struct out *o;

	if (!len)
		return -1;
	o = malloc(sizeof(*o) + LWS_PRE + len);
	if (!o) {
		fputs("avdctl: out of memory\n", stderr);
		return -1;
	}
	o->next = NULL;
	o->len = json_dumpb(msg, (char *)o->buf + LWS_PRE, len, JSON_COMPACT);
	if (o->len != len) {
		free(o);
		return -1;
	}
	*c->out_tail = o;
	c->out_tail = &o->next;
	if (c->wsi && c->established)
		lws_callback_on_writable(c->wsi);
	return 0;
}

static void
free_queue(struct conn *c)
{
	while (c->out_head) {
		struct out *o = c->out_head;

		c->out_head = o->next;
		free(o);
	}
	c->out_tail = &c->out_head;
}

/* ---- reporting failures -------------------------------------------------- */

/* The connection never became a session: no TCP, no 101, or lws gave up. */
static void
connect_failed(struct conn *c, struct lws *wsi, const char *why)
{
	unsigned http = wsi ? lws_http_client_http_response(wsi) : 0;

	if (c->destroying || c->status >= 0)
		return;
	set_status(c, ST_CONNECT);
	/* lws 4.1 says "HS: ws upgrade unauthorized" and keeps the status. */
	if (http == 401 || (why && strstr(why, "unauthorized"))) {
		/* The token in the URL (?token=) was checked at the upgrade. */
		fprintf(stderr,
			"avdctl: avd at %s refused the token in the URL "
			"(HTTP 401 Unauthorized)\n",
			c->t->url);
	} else if (http == 403) {
		fprintf(stderr,
			"avdctl: avd at %s refused the connection "
			"(HTTP 403 Forbidden)\n",
			c->t->url);
	} else if (http == 503) {
		fprintf(stderr,
			"avdctl: avd at %s is full or stopping "
			"(HTTP 503 Service Unavailable)\n",
			c->t->url);
	} else if (http && http != 101 && http != 200) {
		fprintf(stderr,
			"avdctl: %s answered HTTP %u, not a WebSocket "
			"upgrade\n",
			c->t->url, http);
	} else {
		fprintf(stderr, "avdctl: cannot connect to %s: %s\n",
			c->res ? c->t->hostport : c->t->url,
			why && *why ? why : "connection failed");
	}
	stop_loop(c);
}

/* lws has let go of the connection; whatever has not been decided yet is
 * decided by how far the session got. */
static void
wsi_gone(struct conn *c)
{
	c->wsi = NULL;
	if (c->destroying)
		return;
	if (c->status < 0) {
		char why[160] = "";

		if (c->close_code)
			snprintf(why, sizeof(why), " (close %d%s%s)",
				 c->close_code, c->close_reason[0] ? ": " : "",
				 c->close_reason);
		if (!c->established) {
			set_status(c, ST_CONNECT);
			fprintf(stderr, "avdctl: cannot connect to %s\n",
				c->t->url);
		} else if (!c->welcomed) {
			set_status(c, ST_CONNECT);
			fprintf(stderr,
				"avdctl: avd at %s closed the connection "
				"before "
				"welcome%s\n",
				c->t->url, why);
		} else {
			set_status(c, ST_LOST);
			fprintf(stderr,
				"avdctl: connection to avd at %s lost%s\n",
				c->t->url, why);
		}
	}
	stop_loop(c);
}

static void
connect_timeout_fire(lws_sorted_usec_list_t *sul)
{
	struct conn *c = lws_container_of(sul, struct conn, connect_sul);

	if (c->status >= 0)
		return;
	fprintf(stderr, "avdctl: no %s from avd at %s within %d ms\n",
		c->res ? "reply" : "welcome",
		c->res ? c->t->hostport : c->t->url, c->connect_ms);
	conn_finish(c, c->res ? ST_TIMEOUT : ST_CONNECT);
}

/* A typed error before welcome: avd would not start the session. */
static void
refused(struct conn *c, json_t *err)
{
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *text = json_string_value(json_object_get(err, "message"));

	if (!code)
		code = "ERROR";
	if (!text)
		text = "";
	if (!strcmp(code, "UNAUTHORIZED") && !c->t->token)
		fprintf(stderr,
			"avdctl: avd at %s wants a token and none was found "
			"(give --token, set AVD_TOKEN, or check avd's runtime "
			"directory) (UNAUTHORIZED: %s)\n",
			c->t->url, text);
	else if (!strcmp(code, "UNAUTHORIZED"))
		fprintf(stderr,
			"avdctl: avd at %s refused the token from %s "
			"(UNAUTHORIZED: %s)\n",
			c->t->url, c->t->token_source, text);
	else
		fprintf(stderr,
			"avdctl: avd at %s refused the session (%s: %s)\n",
			c->t->url, code, text);
	conn_finish(c, ST_CONNECT);
}

/* ---- the WebSocket session ----------------------------------------------- */

static void
send_hello(struct conn *c)
{
	json_t *h = json_pack("{s:s, s:i, s:s, s:s}", "type", "hello",
			      "schema_version", 1, "role", "frontend", "name",
			      "avdctl");

	if (c->t->token)
		json_object_set_new(h, "token", json_string(c->t->token));
	if (conn_send(c, h))
		conn_finish(c, ST_CONNECT);
	json_decref(h);
}

static void
got_welcome(struct conn *c, json_t *welcome)
{
	json_t *max = json_object_get(json_object_get(welcome, "config"),
				      "maxMessageBytes");

	c->welcomed = true;
	lws_sul_cancel(&c->connect_sul);
	/* Leave room for avd's framing around a payload at its own limit. */
	if (json_is_integer(max) && json_integer_value(max) > 0 &&
	    (size_t)json_integer_value(max) < (SIZE_MAX - 65536) / 2 &&
	    (size_t)json_integer_value(max) * 2 + 65536 > c->rx_limit)
		c->rx_limit = (size_t)json_integer_value(max) * 2 + 65536;
	c->d->welcome(c, welcome);
}

static void
dispatch(struct conn *c, json_t *msg)
{
	const char *type = json_string_value(json_object_get(msg, "type"));

	if (c->finishing)
		return;
	if (c->welcomed) {
		c->d->message(c, msg);
		return;
	}
	if (type && !strcmp(type, "welcome"))
		got_welcome(c, msg);
	else if (type && !strcmp(type, "error"))
		refused(c, json_object_get(msg, "error"));
	/* Nothing else is expected before welcome; ignore it. */
}

/* Collects the fragments of one message; lws hands a message over in
 * pieces of at most the rx buffer size, and a peer may fragment it too. */
static int
receive(struct conn *c, struct lws *wsi, const void *in, size_t len)
{
	if (!c->rx_in_msg) {
		c->rx_in_msg = true;
		c->rx_len = 0;
		c->rx_oversize = false;
		c->rx_binary = lws_frame_is_binary(wsi);
	}
	if (!c->rx_oversize && len > c->rx_limit - c->rx_len) {
		c->rx_oversize = true;
	} else if (!c->rx_oversize) {
		if (c->rx_len + len + 1 > c->rx_cap) {
			size_t cap = c->rx_cap ? c->rx_cap : 4096;
			char *p;

			while (cap < c->rx_len + len + 1)
				cap *= 2;
			p = realloc(c->rx, cap);
			if (!p) {
				fputs("avdctl: out of memory\n", stderr);
				conn_finish(c, ST_FAILED);
				return -1;
			}
			c->rx = p;
			c->rx_cap = cap;
		}
		memcpy(c->rx + c->rx_len, in, len);
		c->rx_len += len;
	}
	if (!lws_is_final_fragment(wsi))
		return 0;
	c->rx_in_msg = false;

	if (c->rx_oversize) {
		fprintf(stderr,
			"avdctl: avd sent a message over %zu bytes; dropped "
			"it\n",
			c->rx_limit);
		conn_finish(c, ST_FAILED);
		return 0;
	}
	if (c->rx_binary)
		return 0; /* avd speaks text only; nothing of ours is binary */

	json_error_t jerr;
	json_t *msg = json_loadb(c->rx, c->rx_len, JSON_ALLOW_NUL, &jerr);

	if (!json_is_object(msg)) {
		fprintf(stderr, "avdctl: avd sent something that is not a JSON "
				"object; giving up\n");
		json_decref(msg);
		conn_finish(c, ST_FAILED);
		return 0;
	}
	dispatch(c, msg);
	json_decref(msg);
	return 0;
}

/* One lws_write() per WRITEABLE: lws keeps any part the kernel did not
 * take and holds back the next WRITEABLE until it is out. */
static int
writeable(struct conn *c, struct lws *wsi)
{
	struct out *o = c->out_head;

	if (!o) {
		if (c->finishing) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
			return -1;
		}
		return 0;
	}
	c->out_head = o->next;
	if (!c->out_head)
		c->out_tail = &c->out_head;
	int n = lws_write(wsi, o->buf + LWS_PRE, o->len, LWS_WRITE_TEXT);

	free(o);
	if (n < 0) {
		if (c->status < 0)
			fprintf(stderr, "avdctl: writing to avd at %s failed\n",
				c->t->url);
		set_status(c, c->welcomed ? ST_LOST : ST_CONNECT);
		return -1;
	}
	if (c->out_head || c->finishing)
		lws_callback_on_writable(wsi);
	return 0;
}

static int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	    void *in, size_t len)
{
	struct conn *c = conn_of(wsi);

	if (!c || c->res)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		connect_failed(c, wsi, in);
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		c->wsi = wsi;
		c->established = true;
		send_hello(c);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return receive(c, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return writeable(c, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/* Two bytes of close code, then the reason. */
		if (len >= 2) {
			const unsigned char *p = in;
			size_t rl = len - 2;

			c->close_code = p[0] << 8 | p[1];
			if (rl >= sizeof(c->close_reason))
				rl = sizeof(c->close_reason) - 1;
			memcpy(c->close_reason, p + 2, rl);
			c->close_reason[rl] = '\0';
		}
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		/* Only ours: lws may bind internal wsis to protocols[0]. */
		if (!c->wsi || wsi == c->wsi)
			wsi_gone(c);
		return 0;
	default:
		return 0;
	}
}

/* ---- the HTTP GET ------------------------------------------------------- */

static int
http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	      void *in, size_t len)
{
	struct conn *c = conn_of(wsi);

	if (!c || !c->res)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		connect_failed(c, wsi, in);
		return 0;
	case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
		/* The status is only readable now; lws drops the headers later.
		 */
		c->established = true;
		c->res->status = lws_http_client_http_response(wsi);
		return 0;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
		if (c->res->len + len + 1 > HTTP_BODY_LIMIT)
			return -1;
		if (c->res->len + len + 1 > c->body_cap) {
			size_t cap = c->res->len + len + 1 + 1024;
			char *p = realloc(c->res->body, cap);

			if (!p)
				return -1;
			c->res->body = p;
			c->body_cap = cap;
		}
		memcpy(c->res->body + c->res->len, in, len);
		c->res->len += len;
		c->res->body[c->res->len] = '\0';
		return 0;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
		/* lws wants us to pull the body through its reader, which
		 * calls back with RECEIVE_CLIENT_HTTP_READ for each piece. */
		char buf[LWS_PRE + 4096];
		char *p = buf + LWS_PRE;
		int n = (int)(sizeof(buf) - LWS_PRE);

		return lws_http_client_read(wsi, &p, &n) < 0 ? -1 : 0;
	}
	case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
		c->http_done = true;
		conn_finish(c, ST_OK);
		return 0;
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		/* A body without a length ends when the connection does. */
		if (c->established && c->res->status)
			conn_finish(c, ST_OK);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if (c->wsi && wsi != c->wsi)
			return 0;
		if (!c->destroying && c->status < 0 && c->established &&
		    c->res->status) {
			set_status(c, ST_OK);
		} else if (!c->destroying && c->status < 0) {
			set_status(c, ST_CONNECT);
			fprintf(stderr,
				"avdctl: %s closed the connection without a "
				"reply\n",
				c->t->hostport);
		}
		c->wsi = NULL;
		stop_loop(c);
		return 0;
	default:
		return 0;
	}
}

/* ---- signals ------------------------------------------------------------ */

static int
signal_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		void *in, size_t len)
{
	struct conn *c = conn_of(wsi);
	struct signalfd_siginfo si;

	if (!c || reason != LWS_CALLBACK_RAW_RX_FILE)
		return 0;
	while (read(c->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int signo = (int)si.ssi_signo;

		if (signo != SIGINT && signo != SIGTERM)
			continue;
		if (c->finishing)
			stop_loop(c); /* asked twice: leave now */
		else if (c->d && c->d->interrupted)
			c->d->interrupted(c, signo);
		else
			conn_finish(c, 128 + signo);
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	/* The name is the subprotocol offered to avd, and lws binds the
	 * upgraded connection to the protocol of the name avd picked. */
	{"avd.v1", ws_callback, 0, 0, 0, NULL, 0},
	{"avdctl-http", http_callback, 0, 0, 0, NULL, 0},
	{"avdctl-signal", signal_callback, 0, 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}};

/* ---- the loop ----------------------------------------------------------- */

static int
loop_open(struct conn *c)
{
	struct lws_context_creation_info info;
	lws_sock_file_fd_type fd;
	sigset_t mask;

	c->status = -1;
	c->sigfd = -1;
	c->out_tail = &c->out_head;
	c->rx_limit = RX_LIMIT_MIN;

	lws_set_log_level(0, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = c;
	info.gid = -1;
	info.uid = -1;
	/* A handful of fds is all we use; the default sizes tables by the
	 * process's fd limit, which can be a million. */
	info.fd_limit_per_thread = 32;
	c->ctx = lws_create_context(&info);
	if (!c->ctx) {
		fputs("avdctl: cannot create the libwebsockets context\n",
		      stderr);
		return -1;
	}
	/* Writing to a closed stdout should end us quietly, as it does any
	 * filter; lws may have set SIGPIPE to be ignored for its sockets,
	 * which it writes with MSG_NOSIGNAL anyway. */
	signal(SIGPIPE, SIG_DFL);

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	c->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	fd.filefd = c->sigfd;
	if (c->sigfd < 0 ||
	    !lws_adopt_descriptor_vhost(
		    lws_get_vhost_by_name(c->ctx, "default"),
		    LWS_ADOPT_RAW_FILE_DESC, fd, "avdctl-signal", NULL)) {
		fputs("avdctl: cannot watch signals\n", stderr);
		return -1;
	}
	return 0;
}

static void
loop_run(struct conn *c)
{
	while (!c->done)
		if (lws_service(c->ctx, 0) < 0)
			break;
}

static void
loop_close(struct conn *c)
{
	c->destroying = true;
	if (c->ctx) {
		lws_sul_cancel(&c->connect_sul);
		lws_sul_cancel(&c->deadline_sul);
		lws_sul_cancel(&c->close_sul);
		lws_context_destroy(c->ctx);
		c->ctx = NULL;
	}
	if (c->sigfd >= 0)
		close(c->sigfd);
	c->sigfd = -1;
	free_queue(c);
	free(c->rx);
	c->rx = NULL;
}

static void
fill_connect_info(struct conn *c, struct lws_client_connect_info *ci)
{
	memset(ci, 0, sizeof(*ci));
	ci->context = c->ctx;
	ci->address = c->t->host;
	ci->port = c->t->port;
	ci->host = c->t->hostport;
	ci->origin = NULL; /* not a browser: avd's Origin check lets us in */
	ci->ssl_connection = 0;
	ci->ietf_version_or_minus_one = -1;
	ci->pwsi = &c->wsi;
}

int
conn_run_ws(const struct target *t, const struct conn_driver *d, void *arg,
	    int connect_ms)
{
	struct conn c;
	struct lws_client_connect_info ci;

	memset(&c, 0, sizeof(c));
	c.t = t;
	c.d = d;
	c.arg = arg;
	c.connect_ms = connect_ms;
	if (loop_open(&c)) {
		loop_close(&c);
		return ST_FAILED;
	}
	fill_connect_info(&c, &ci);
	ci.path = t->path;
	ci.protocol = "avd.v1";
	if (connect_ms > 0)
		lws_sul_schedule(c.ctx, 0, &c.connect_sul, connect_timeout_fire,
				 (lws_usec_t)connect_ms * LWS_US_PER_MS);
	if (!lws_client_connect_via_info(&ci) && c.status < 0)
		connect_failed(&c, NULL, NULL);
	loop_run(&c);
	loop_close(&c);
	return c.status < 0 ? ST_FAILED : c.status;
}

int
conn_http_get(const struct target *t, const char *path, int timeout_ms,
	      struct http_result *res)
{
	struct conn c;
	struct lws_client_connect_info ci;

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	c.t = t;
	c.res = res;
	c.connect_ms = timeout_ms;
	if (loop_open(&c)) {
		loop_close(&c);
		return ST_FAILED;
	}
	fill_connect_info(&c, &ci);
	ci.path = path;
	ci.method = "GET";
	ci.local_protocol_name = "avdctl-http";
	if (timeout_ms > 0) /* else: as long as it takes */
		lws_sul_schedule(c.ctx, 0, &c.connect_sul, connect_timeout_fire,
				 (lws_usec_t)timeout_ms * LWS_US_PER_MS);
	if (!lws_client_connect_via_info(&ci) && c.status < 0)
		connect_failed(&c, NULL, NULL);
	loop_run(&c);
	loop_close(&c);
	if (c.status != ST_OK) {
		free(res->body);
		res->body = NULL;
		res->len = 0;
	}
	return c.status < 0 ? ST_FAILED : c.status;
}
