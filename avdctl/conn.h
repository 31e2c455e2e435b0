/*
 * conn.h - avdctl's one connection to avd: a WebSocket session (hello,
 * welcome, JSON messages both ways) or a single HTTP GET, each run on its
 * own libwebsockets loop in the calling thread.
 *
 * The command logic (avdctl.c) plugs into the session through a small
 * driver: it is told when avd said welcome and about every message after
 * that, and ends the run with conn_finish().  Everything about sockets,
 * framing, the handshake, signals and the process's exit status for
 * transport failures stays in conn.c.
 */
#ifndef AVDCTL_CONN_H
#define AVDCTL_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Exit statuses; the man page and --help list the same numbers. */
enum {
	ST_OK = 0,     /* done */
	ST_FAILED = 1, /* avd or the callee answered with an error; unhealthy */
	ST_USAGE = 2,  /* bad command line */
	ST_CONNECT = 3, /* no connection, refused upgrade, token refused */
	ST_TIMEOUT = 4, /* avd's TIMEOUT, or avdctl's own wait ran out */
	ST_LOST = 5,	/* the session was up, then the connection dropped */
};

/* Where avd is and how to get in; filled by avdctl.c, read-only here. */
struct target {
	char *url;	/* the WebSocket URL as resolved, for messages */
	char *host;	/* host name or address, IPv6 without brackets */
	char *hostport; /* what goes in the Host: header */
	int port;
	char *path;		  /* request path with its query, e.g. "/ws" */
	char *token;		  /* token for hello, or NULL to send none */
	const char *token_source; /* where the token came from, for messages */
};

struct conn;

struct conn_driver {
	/* avd said welcome; send the command's first messages.  welcome is
	 * borrowed for the duration of the call. */
	void (*welcome)(struct conn *c, json_t *welcome);
	/* Every message that arrives after welcome (borrowed). */
	void (*message)(struct conn *c, json_t *msg);
	/* SIGINT or SIGTERM arrived; NULL means finish with 128 + signo. */
	void (*interrupted)(struct conn *c, int signo);
};

/* Runs one WebSocket session to its end and returns the exit status:
 * what the driver passed to conn_finish(), or a transport status
 * (ST_CONNECT, ST_LOST, ST_TIMEOUT) with a message already on stderr.
 * connect_ms bounds the time from the first SYN to welcome. */
int conn_run_ws(const struct target *t, const struct conn_driver *d, void *arg,
		int connect_ms);

/* The driver's argument given to conn_run_ws(). */
void *conn_arg(struct conn *c);

/* Queues msg (borrowed: serialised at once) for sending.  Returns -1 when
 * it cannot be encoded. */
int conn_send(struct conn *c, json_t *msg);

/* Ends the session with this exit status once queued messages are out.
 * The first status given wins. */
void conn_finish(struct conn *c, int status);

/* (Re-)arms the one driver deadline: after ms milliseconds fn runs; a
 * negative ms cancels it. */
void conn_deadline(struct conn *c, long long ms, void (*fn)(struct conn *c));

/* A finished HTTP GET. */
struct http_result {
	unsigned status; /* HTTP status code */
	char *body;	 /* malloc'd, NUL-terminated; the caller frees it */
	size_t len;
};

/* GETs path from the target's host and port.  Returns ST_OK with *res
 * filled (whatever the HTTP status), else a transport status with a message
 * already on stderr. */
int conn_http_get(const struct target *t, const char *path, int timeout_ms,
		  struct http_result *res);

#endif
