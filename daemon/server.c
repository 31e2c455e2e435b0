/*
 * server.c - libwebsockets glue: the listener, HTTP replies, the WebSocket
 * transport of sessions, signals and the loop itself.
 *
 * Everything runs in lws's single service thread.  Signals arrive through
 * a signalfd adopted into the same loop, so no code runs in signal context
 * at all.  Timers of the whole daemon share one lws scheduler entry that
 * always points at the earliest deadline in timer.c's heap.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "avd.h"

_Static_assert(LWS_PRE <= FRAME_HEADROOM, "frame headroom must fit LWS_PRE");

/* Per-connection state; lws allocates and zeroes it. */
struct pss {
	struct session *s;
	/* WebSocket message reassembly */
	char *rx;
	size_t rx_len, rx_cap, rx_total;
	bool rx_binary, rx_oversize;
	bool kicked;    /* a writable callback is already requested */
	bool ping_due;  /* keep-alive: the next writable callback sends a ping */
	bool ping_out;  /* keep-alive: pinged, and nothing heard since */
	bool rx_queued; /* on rx_more: read again before the loop sleeps */
	bool tx_queued; /* on tx_now: written before the loop sleeps */
	uint32_t rx_turn;       /* the loop turn rx_turn_bytes counts */
	uint32_t rx_turn_bytes; /* payload read in that turn */
	/* closing */
	int close_code;
	char close_reason[64];
	/* keep-alive (ws_alive_check); last_rx fills what would be padding */
	uint32_t last_rx; /* clock_ms() of the last frame in, wrapping */
	struct timer alive;
	/* HTTP */
	struct http_reply reply;
	bool reply_pending;
};

static struct lws_context *ctx;
static struct ev_loop *evloop; /* NULL: lws's own poll() loop */
static struct lws_vhost *vhost;
static struct config *cfg;
static int listen_port;
static lws_sorted_usec_list_t timer_sul;
static struct timer shutdown_timer;
static int sigfd = -1;
static bool stop_requested, shutdown_started, loop_done, destroying;

/* ---- timers ----------------------------------------------------------- */

/* On the libev loop the heap is driven by one ev_timer; lws's own
 * scheduler does not wake a foreign loop for entries made outside its
 * callbacks.  The poll() fallback uses lws's scheduler. */
static ev_timer ev_tick;

static void sul_fire(lws_sorted_usec_list_t *sul);
static void ev_fire(struct ev_loop *loop, ev_timer *w, int revents);

static void
sul_resched(void)
{
	int64_t in = timer_next_in();

	if (evloop) {
		ev_timer_stop(evloop, &ev_tick);
		if (in >= 0) {
			ev_timer_set(&ev_tick, (double)in / 1000.0, 0.0);
			ev_timer_start(evloop, &ev_tick);
		}
	} else if (in < 0) {
		lws_sul_cancel(&timer_sul);
	} else {
		lws_sul_schedule(ctx, 0, &timer_sul, sul_fire,
				 (lws_usec_t)(in ? in : 1) * LWS_US_PER_MS);
	}
}

static void
timers_fired(void)
{
	timer_run_due();
	sul_resched();
	/* lws runs timers before it polls, so without a wake-up the loop would
	 * only notice a finished shutdown after the next poll times out. */
	if (shutdown_started)
		lws_cancel_service(ctx);
}

static void
sul_fire(lws_sorted_usec_list_t *sul)
{
	timers_fired();
}

static void
ev_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_now_update(loop); /* clock_ms() and libev's clock must agree */
	timers_fired();
}

/*
 * lws's own timers (HTTP timeouts, the deadline of a close handshake, the
 * asynchronous close server_fd_close asks for) are only reliably serviced
 * when lws handles an event of its own; on a quiet libev loop an HTTP client
 * that sends half a request is never timed out.  One wake-up a second,
 * through lws's cancel pipe, keeps those second-granularity deadlines
 * honest.  WebSocket keep-alive does not depend on it: it runs on avd's own
 * timers.
 */
static ev_timer ev_lws_tick;

static void
ev_lws_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	lws_cancel_service(ctx);
}

/* ---- WebSocket transport ---------------------------------------------- */

/*
 * Two things happen at the end of each loop turn, before it sleeps, from
 * one ev_prepare watcher that runs only when there is work for it:
 *
 * Reading a backlog.  lws reads a WebSocket at most one rx buffer (1 KiB,
 * kept small for idle sessions' sake) per readable event, so a publisher
 * with a backlog would be read 1 KiB per turn while every subscriber is
 * written once per turn: one 4 KiB event per send() instead of many.
 * Sessions whose read came near the buffer's size are serviced again,
 * each read queueing the next, up to RX_MORE_MAX reads a turn (a lone
 * publisher's 64 KiB), so the writes that follow carry many frames each.
 *
 * Writing at once.  A session with frames to send would wait a turn: lws
 * asks the loop to watch for writability (an epoll_ctl), the next poll
 * reports it, lws calls back, and after the write lws stops watching
 * (another epoll_ctl).  A socket with room in its buffer is writable now,
 * so the sessions kicked in this turn are serviced as writable before the
 * loop sleeps; libev has not applied the watcher change yet, and the stop
 * cancels it.  lws still writes only from its writable callback, and a
 * socket that is in fact full takes lws's ordinary partial-write path.
 *
 * Both lists hold connections, removed when they close, and are bounded;
 * what does not fit simply waits for the poll as before.
 */
#define RX_MORE_MAX 64
#define RX_MORE_BYTES 768
#define TX_NOW_MAX 1024
static struct lws *rx_more[RX_MORE_MAX], *tx_now[TX_NOW_MAX];
static unsigned rx_more_n, tx_now_n;
static uint32_t rx_seq; /* which of turn_end's re-reads runs, 0 outside them */
static ev_prepare ev_turn_end;

static void
turn_end_needed(void)
{
	if (!ev_is_active(&ev_turn_end))
		ev_prepare_start(evloop, &ev_turn_end);
}

/* Forget a closing connection; lists are short, and closes are rarer than
 * messages. */
static void
turn_end_forget(struct lws *wsi, struct pss *pss)
{
	if (pss->rx_queued)
		for (unsigned i = 0; i < rx_more_n; i++)
			if (rx_more[i] == wsi)
				rx_more[i] = NULL;
	if (pss->tx_queued)
		for (unsigned i = 0; i < tx_now_n; i++)
			if (tx_now[i] == wsi)
				tx_now[i] = NULL;
}

static void
ws_note_rx(struct lws *wsi, struct pss *pss, size_t len)
{
	uint32_t turn;

	if (!evloop)
		return;
	turn = (uint32_t)ev_iteration(evloop) * (RX_MORE_MAX + 1) + rx_seq;
	if (pss->rx_turn != turn) {
		pss->rx_turn = turn;
		pss->rx_turn_bytes = 0;
	}
	pss->rx_turn_bytes += (uint32_t)len;
	if (!pss->rx_queued && pss->rx_turn_bytes >= RX_MORE_BYTES &&
	    rx_more_n < RX_MORE_MAX) {
		pss->rx_queued = true;
		rx_more[rx_more_n++] = wsi;
		turn_end_needed();
	}
}

static void
service(struct lws *wsi, short ev)
{
	struct lws_pollfd pfd = { .fd = lws_get_socket_fd(wsi), .events = ev,
				  .revents = ev };

	lws_service_fd(ctx, &pfd);
}

/* In place, not from a copy: servicing one connection may close another,
 * and turn_end_forget clears closed ones from these arrays. */
static void
turn_end(struct ev_loop *loop, ev_prepare *w, int revents)
{
	/* Under a flood the poll serves writers better: their watchers stay
	 * armed from turn to turn, while writing each turn's frames at once
	 * would drain queues and make the watchers flap (measured: an
	 * epoll_ctl per write instead of none). */
	bool flooded = rx_more_n > 0;
	unsigned n;

	/* Each re-read may queue its session again (at the end), until the
	 * array is full: at most RX_MORE_MAX reads a turn. */
	for (unsigned i = 0; i < rx_more_n; i++) {
		struct lws *wsi = rx_more[i];

		if (!wsi)
			continue;
		rx_more[i] = NULL;
		((struct pss *)lws_wsi_user(wsi))->rx_queued = false;
		rx_seq = i + 1;
		service(wsi, LWS_POLLIN);
	}
	rx_more_n = 0;
	rx_seq = 0;
	/* One pass.  A session that still has frames after its write asked
	 * lws for writability again, which the poll will now report: it is
	 * left to the poll, as is everything queued behind the pass. */
	n = flooded ? 0 : tx_now_n;
	for (unsigned i = 0; i < n; i++) {
		struct lws *wsi = tx_now[i];
		struct pss *pss;

		if (!wsi)
			continue;
		tx_now[i] = NULL;
		pss = lws_wsi_user(wsi);
		pss->tx_queued = false;
		if (pss->kicked)
			service(wsi, LWS_POLLOUT);
	}
	for (unsigned i = n; i < tx_now_n; i++)
		if (tx_now[i]) /* NULL: closed meanwhile */
			((struct pss *)lws_wsi_user(tx_now[i]))->tx_queued = false;
	tx_now_n = 0;
	ev_prepare_stop(loop, w);
}

/* Ask lws for a writable callback once, however many frames are queued:
 * a fan-out queues on many sessions per message. */
static void
ws_want_write(struct lws *wsi, struct pss *pss)
{
	if (!pss->kicked && !destroying) {
		pss->kicked = true;
		lws_callback_on_writable(wsi);
		if (evloop && !pss->tx_queued && tx_now_n < TX_NOW_MAX) {
			pss->tx_queued = true;
			tx_now[tx_now_n++] = wsi;
			turn_end_needed();
		}
	}
}

static void
ws_kick(struct session *s)
{
	ws_want_write(s->tx, lws_wsi_user(s->tx));
}

/*
 * Keep-alive.  A peer silent for a ping interval gets a WebSocket ping; one
 * that stays silent for the hang-up window after it is dropped.  Every
 * connection has one timer in timer.c's heap, and a frame in only stores its
 * time: the timer, when it fires, finds the peer was heard from and re-arms
 * for the rest of the interval.  So a session costs O(log n) per interval
 * however much it sends.  (lws's own idle policy keeps its timers in one
 * sorted list, O(n) per re-arm: with 10 000 sessions that stalled the loop.)
 */

/* The ping interval is --heartbeat-timeout-ms, at least 1 s; it is read at
 * every use so that a reload applies. */
static uint32_t
ws_ping_ms(void)
{
	uint32_t ms = cfg->heartbeat_timeout_ms;

	return ms > 1000 ? ms : 1000;
}

/* After the interval of silence that led to the ping, two more and 5 s:
 * about 3 intervals + 5 s from the last frame in all, so a peer that is
 * slow to answer, not gone, is not dropped. */
static uint32_t
ws_hangup_ms(uint32_t every)
{
	return 2 * every + 5000;
}

/* Up to a quarter interval more before a new connection's first look, so
 * that sessions which arrived together (reconnects after a restart) are not
 * all pinged in the same turn of the loop.  A golden-ratio sequence spreads
 * any number of them evenly over that range. */
static uint32_t
ws_spread_ms(uint32_t every)
{
	static uint32_t seq;

	seq += 2654435769u;
	return (uint32_t)(((uint64_t)seq * (every / 4)) >> 32);
}

static void
ws_alive_check(struct timer *t)
{
	struct pss *pss = container_of(t, struct pss, alive);
	struct lws *wsi = pss->s->tx;
	uint32_t every = ws_ping_ms();
	uint32_t idle = (uint32_t)clock_ms() - pss->last_rx;

	if (pss->ping_out) {
		/* Not a frame since the ping.  A peer that reads nothing may
		 * have filled the socket, so there is no close handshake: lws
		 * drops the connection, and its close callback ends the
		 * session. */
		log_info("session %s: silent for %u ms, a WebSocket ping "
			 "unanswered; dropping the connection",
			 pss->s->id, idle);
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK,
				LWS_TO_KILL_ASYNC);
		/* lws acts on that when it next runs; from outside its
		 * callbacks this makes it run now. */
		lws_cancel_service(ctx);
		return;
	}
	if (idle < every) {
		timer_arm(t, every - idle, ws_alive_check);
		return;
	}
	/* The ping is written by ws_writeable, as that callback's one write. */
	pss->ping_due = pss->ping_out = true;
	ws_want_write(wsi, pss);
	timer_arm(t, ws_hangup_ms(every), ws_alive_check);
}

static void
ws_alive_start(struct pss *pss)
{
	uint32_t every = ws_ping_ms();

	pss->last_rx = (uint32_t)clock_ms();
	timer_arm(&pss->alive, every + ws_spread_ms(every), ws_alive_check);
}

/* Any frame in shows the peer alive; the timer looks at this when it fires. */
static void
ws_heard(struct pss *pss)
{
	pss->last_rx = (uint32_t)clock_ms();
	pss->ping_out = false;
}

static void
ws_close(struct session *s, int code, const char *reason, bool discard)
{
	struct pss *pss = lws_wsi_user(s->tx);

	if (destroying)
		return;
	pss->close_code = code;
	snprintf(pss->close_reason, sizeof(pss->close_reason), "%s", reason);
	ws_want_write(s->tx, pss);
}

static const struct transport_ops ws_ops = {
	.name = "ws",
	.kick = ws_kick,
	.close = ws_close,
};

/*
 * A reader with a backlog gets many frames per write: the frames are
 * framed here (server frames are unmasked, so the header is just FIN+text
 * and the length) and copied into one buffer handed to lws as raw bytes.
 * lws 4.1 passes LWS_WRITE_HTTP writes on a WebSocket straight to the
 * socket and buffers what the kernel does not take, as for any write.
 */
#define BATCH_BYTES (64 * 1024)
static unsigned char batch[LWS_PRE + BATCH_BYTES];

static size_t
ws_header(unsigned char *h, uint64_t len)
{
	h[0] = 0x81; /* FIN, text */
	if (len < 126) {
		h[1] = (unsigned char)len;
		return 2;
	}
	if (len < 65536) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		return 4;
	}
	h[1] = 127;
	for (int i = 0; i < 8; i++)
		h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
	return 10;
}

static int
ws_write_batch(struct lws *wsi, struct session *s, struct frame *f)
{
	unsigned char *out = batch + LWS_PRE;
	size_t n = 0;

	for (;;) {
		n += ws_header(out + n, f->len);
		memcpy(out + n, frame_data(f), f->len);
		n += f->len;
		frame_unref(f);
		f = outq_peek(&s->q);
		if (!f || n + f->len + 10 > BATCH_BYTES)
			break;
		f = session_next_frame(s);
	}
	return lws_write(wsi, out, n, LWS_WRITE_HTTP) < (int)n ? -1 : 0;
}

static int
ws_writeable(struct lws *wsi, struct pss *pss)
{
	struct session *s = pss->s;
	struct frame *f, *next;

	if (!s)
		return 0;
	pss->kicked = false;
	if (pss->ping_due && s->state != SESSION_CLOSING) {
		/* lws allows one write per writable callback, so the ping is
		 * this one's and queued frames wait for the next.  It carries
		 * one byte: lws passes an empty pong to no callback, and the
		 * pong echoes the ping's bytes. */
		unsigned char ping[LWS_PRE + 1];

		pss->ping_due = false;
		ping[LWS_PRE] = 'p';
		if (lws_write(wsi, ping + LWS_PRE, 1, LWS_WRITE_PING) < 0)
			return -1;
		if (!outq_empty(&s->q))
			ws_want_write(wsi, pss);
		return 0;
	}
	f = session_next_frame(s);
	if (f) {
		uint32_t len = f->len;
		int n;

		next = outq_peek(&s->q);
		if (next && (size_t)len + next->len + 20 <= BATCH_BYTES) {
			if (ws_write_batch(wsi, s, f))
				return -1;
		} else {
			/* One frame (or a big one): written in place, no copy. */
			n = lws_write(wsi, frame_data(f), len, LWS_WRITE_TEXT);
			frame_unref(f);
			if (n < (int)len)
				return -1;
		}
		if (!outq_empty(&s->q) || s->state == SESSION_CLOSING)
			ws_want_write(wsi, pss);
		return 0;
	}
	if (s->state == SESSION_CLOSING) {
		lws_close_reason(wsi, (enum lws_close_status)pss->close_code,
				 (unsigned char *)pss->close_reason,
				 strlen(pss->close_reason));
		return -1;
	}
	return 0;
}

static void
rx_reset(struct pss *pss)
{
	pss->rx_len = pss->rx_total = 0;
	pss->rx_binary = pss->rx_oversize = false;
	/* An idle session keeps no reassembly buffer: big messages are the
	 * rare case and one malloc each is cheap next to their bytes. */
	free(pss->rx);
	pss->rx = NULL;
	pss->rx_cap = 0;
}

static void
ws_receive(struct lws *wsi, struct pss *pss, char *in, size_t len)
{
	/* lws_is_first_fragment() stays true for every piece of a frame larger
	 * than the rx buffer, so the start of a message is tracked here. */
	bool first = pss->rx_total == 0 && !pss->rx_oversize,
	     final = lws_is_final_fragment(wsi);
	struct session *s = pss->s;

	if (first)
		pss->rx_binary = lws_frame_is_binary(wsi);
	pss->rx_total += len;
	if (pss->rx_total > cfg->max_message_bytes) {
		pss->rx_oversize = true;
	} else if (!pss->rx_binary) {
		if (first && final) {
			/* The common case: the whole message in one piece, parsed
			 * straight from lws's buffer without a copy. */
			session_on_message(s, in, len);
			rx_reset(pss);
			return;
		}
		if (pss->rx_len + len > pss->rx_cap) {
			size_t cap = pss->rx_cap ? pss->rx_cap : 4096;
			while (cap < pss->rx_len + len)
				cap *= 2;
			pss->rx = xrealloc(pss->rx, cap);
			pss->rx_cap = cap;
		}
		memcpy(pss->rx + pss->rx_len, in, len);
		pss->rx_len += len;
	}
	if (!final)
		return;
	if (pss->rx_oversize) {
		hub.st.bytes_in += pss->rx_total;
		session_send_error(s, AVD_E_PAYLOAD_TOO_LARGE,
				   json_pack("{s:I, s:I}", "size",
					     (json_int_t)pss->rx_total, "limit",
					     (json_int_t)cfg->max_message_bytes),
				   "message of %zu bytes is over the %zu byte limit; "
				   "it was discarded",
				   pss->rx_total, cfg->max_message_bytes);
	} else if (pss->rx_binary) {
		hub.st.bytes_in += pss->rx_total;
		session_send_error(s, AVD_E_INVALID_REQUEST, NULL,
				   "binary messages are not accepted; send JSON text");
	} else {
		session_on_message(s, pss->rx, pss->rx_len);
	}
	rx_reset(pss);
}

/* ---- HTTP --------------------------------------------------------------- */

static int
http_headers(struct lws *wsi, int status, const char *type, size_t len)
{
	unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
					    *end = buf + sizeof(buf) - 1;

	if (lws_add_http_common_headers(wsi, (unsigned int)status, type,
					(lws_filepos_t)len, &p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
					(const unsigned char *)"nosniff", 7, &p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"referrer-policy:",
					(const unsigned char *)"no-referrer", 11, &p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
					(const unsigned char *)"no-store", 8, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	return 0;
}

/* The token an HTTP request presents: ?token= or Authorization: Bearer. */
static const char *
http_token(struct lws *wsi, char *buf, int size)
{
	const char *tok = lws_get_urlarg_by_name(wsi, "token=", buf, size);

	if (tok)
		return tok;
	if (lws_hdr_copy(wsi, buf, size, WSI_TOKEN_HTTP_AUTHORIZATION) > 7 &&
	    !strncasecmp(buf, "Bearer ", 7))
		return buf + 7;
	return NULL;
}

static int
http_request(struct lws *wsi, struct pss *pss, const char *uri)
{
	char tokbuf[256];
	int n;

	if (!lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI)) {
		pss->reply.status = 405;
		pss->reply.content_type = "text/plain; charset=utf-8";
		pss->reply.body = xstrdup("only GET is served here\n");
		pss->reply.body_len = strlen(pss->reply.body);
	} else {
		http_route(cfg, uri, http_token(wsi, tokbuf, sizeof(tokbuf)),
			   &pss->reply);
	}
	if (pss->reply.path) {
		n = lws_serve_http_file(wsi, pss->reply.path, pss->reply.content_type,
					"x-content-type-options: nosniff\r\n"
					"referrer-policy: no-referrer\r\n"
					"cache-control: no-store\r\n",
					0);
		http_reply_free(&pss->reply);
		if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
			return -1;
		return 0;
	}
	if (http_headers(wsi, pss->reply.status, pss->reply.content_type,
			 pss->reply.body_len))
		return -1;
	pss->reply_pending = true;
	lws_callback_on_writable(wsi);
	return 0;
}

static int
http_writeable(struct lws *wsi, struct pss *pss)
{
	unsigned char *buf;
	int n;

	if (!pss->reply_pending)
		return 0;
	pss->reply_pending = false;
	buf = xmalloc(LWS_PRE + pss->reply.body_len);
	memcpy(buf + LWS_PRE, pss->reply.body, pss->reply.body_len);
	n = lws_write(wsi, buf + LWS_PRE, pss->reply.body_len, LWS_WRITE_HTTP_FINAL);
	free(buf);
	http_reply_free(&pss->reply);
	if (n < 0 || lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

/* Refuse an upgrade with a real HTTP status, as browsers and tools expect.
 * The status line is written by hand: lws answers an upgrade request in
 * HTTP/1.0, which some WebSocket clients cannot parse. */
static int
refuse(struct lws *wsi, int status, const char *why)
{
	static const struct {
		int code;
		const char *text;
	} reasons[] = {
		{ 401, "Unauthorized" }, { 403, "Forbidden" },
		{ 404, "Not Found" },    { 503, "Service Unavailable" },
	};
	unsigned char buf[LWS_PRE + 512];
	const char *text = "Error";
	int n;

	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].code == status)
			text = reasons[i].text;
	log_info("websocket upgrade refused: %d %s", status, why);
	n = snprintf((char *)buf + LWS_PRE, sizeof(buf) - LWS_PRE,
		     "HTTP/1.1 %d %s\r\n"
		     "content-type: text/plain; charset=utf-8\r\n"
		     "content-length: %zu\r\n"
		     "connection: close\r\n"
		     "\r\n%s\n",
		     status, text, strlen(why) + 1, why);
	if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS) < 0)
		return -1;
	return 1;
}

/* 1 when the URL carries the right token, 0 when none, -1 when wrong. */
static int
url_token(struct lws *wsi)
{
	char buf[256];
	const char *tok = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof(buf));

	if (!tok)
		return 0;
	return auth_token_ok(cfg, tok) ? 1 : -1;
}

static int
confirm_upgrade(struct lws *wsi)
{
	char uri[256], origin[512];

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
	    strcmp(uri, "/ws"))
		return refuse(wsi, 404, "WebSocket endpoint is /ws");
	/* An Origin too long to copy is refused, never mistaken for none. */
	if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0 &&
	    (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0 ||
	     !auth_origin_ok(cfg, listen_port, origin)))
		return refuse(wsi, 403, "origin not allowed");
	if (url_token(wsi) < 0)
		return refuse(wsi, 401, "wrong token");
	if (hub.shutting_down)
		return refuse(wsi, 503, "avd is shutting down");
	if (hub.nsessions >= cfg->max_sessions)
		return refuse(wsi, 503, "too many sessions");
	return 0;
}

/* True when fd is a unix-socket connection (peer checked at accept). */
static bool
is_unix_peer(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	return getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	       ss.ss_family == AF_UNIX;
}

/* A unix-socket peer must run as this user: the socket is its credential. */
static bool
unix_peer_ok(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return false;
	if (cred.uid != getuid()) {
		log_warn("unix socket: refused a peer running as uid %u", (unsigned)cred.uid);
		return false;
	}
	return true;
}

/* ---- the protocol callback ---------------------------------------------- */

static int
avd_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	     void *in, size_t len)
{
	struct pss *pss = user;

	/* A peer that connects and leaves before sending headers gets its
	 * close callbacks without per-connection data. */
	if (!pss && reason != LWS_CALLBACK_FILTER_NETWORK_CONNECTION &&
	    reason != LWS_CALLBACK_HTTP_CONFIRM_UPGRADE)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return http_request(wsi, pss, in);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_writeable(wsi, pss);
	case LWS_CALLBACK_HTTP_FILE_COMPLETION:
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_CLOSED_HTTP:
		http_reply_free(&pss->reply);
		break;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return confirm_upgrade(wsi);
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
		int fd = (int)(intptr_t)in;
		return is_unix_peer(fd) && !unix_peer_ok(fd) ? -1 : 0;
	}
	case LWS_CALLBACK_ESTABLISHED:
		pss->s = session_new(&ws_ops, wsi, SESSION_HELLO);
		pss->s->authed = cfg->no_auth || url_token(wsi) > 0 ||
				 is_unix_peer(lws_get_socket_fd(wsi));
		ws_alive_start(pss);
		break;
	case LWS_CALLBACK_RECEIVE:
		ws_note_rx(wsi, pss, len);
		if (pss->s) {
			ws_heard(pss);
			ws_receive(wsi, pss, in, len);
		}
		break;
	case LWS_CALLBACK_RECEIVE_PONG:
		ws_heard(pss);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return ws_writeable(wsi, pss);
	case LWS_CALLBACK_CLOSED:
		timer_cancel(&pss->alive);
		turn_end_forget(wsi, pss);
		if (pss->s)
			session_gone(pss->s);
		pss->s = NULL;
		free(pss->rx);
		pss->rx = NULL;
		break;
	default:
		break;
	}
	return 0;
}

static void
begin_shutdown(void);

static int
signal_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		void *in, size_t len)
{
	struct signalfd_siginfo si;

	if (reason != LWS_CALLBACK_RAW_RX_FILE)
		return 0;
	while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_info("%s received: shutting down", strsignal((int)si.ssi_signo));
			stop_requested = true;
			break;
		case SIGHUP:
			log_info("SIGHUP received: reloading the configuration");
			notify_systemd("RELOADING=1");
			reload_config(cfg);
			notify_systemd("READY=1");
			break;
		case SIGCHLD:
			backend_reap();
			break;
		default:
			break;
		}
	}
	if (stop_requested && !shutdown_started)
		begin_shutdown();
	return 0;
}

static const struct lws_protocols protocols[] = {
	/* lws keeps an rx buffer of this size for every connection for its
	 * whole life; small keeps idle sessions cheap, and larger messages are
	 * reassembled by ws_receive anyway. */
	/* ... and lws caps each send at the rx size unless tx_packet_size is
	 * set: 64 KiB lets a batch of frames leave in one send(). */
	{ "avd.v1", avd_callback, sizeof(struct pss), 1024, 0, NULL, 65536 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* ---- watched descriptors (a supervised child's pipes) ------------------- */

struct fdwatch {
	struct lws *wsi;
	int fd;
	fdwatch_fn fn;
	void *arg;
	bool in_callback, closing, rearm;
	struct timer rearm_timer; /* re-arms writability after a callback */
};

static struct lws_vhost *internal_vhost;

struct fdwatch *
server_fd_watch(int fd, fdwatch_fn fn, void *arg)
{
	struct fdwatch *w = xcalloc(1, sizeof(*w));
	lws_sock_file_fd_type u;

	w->fd = fd;
	w->fn = fn;
	w->arg = arg;
	u.filefd = fd;
	w->wsi = lws_adopt_descriptor_vhost(internal_vhost, LWS_ADOPT_RAW_FILE_DESC,
					    u, "avd-fd", NULL);
	if (!w->wsi) {
		free(w);
		return NULL;
	}
	lws_set_opaque_user_data(w->wsi, w);
	return w;
}

static void
fd_rearm(struct timer *t)
{
	struct fdwatch *w = container_of(t, struct fdwatch, rearm_timer);

	if (!w->closing && !destroying)
		lws_callback_on_writable(w->wsi);
}

void
server_fd_want_write(struct fdwatch *w)
{
	if (w->closing || destroying)
		return;
	/* lws 4.1 clears a raw file's POLLOUT after its writable callback
	 * returns, so a request made inside it would be lost; it is made
	 * just after instead. */
	if (w->in_callback)
		w->rearm = true;
	else
		lws_callback_on_writable(w->wsi);
}

void
server_fd_close(struct fdwatch *w)
{
	if (w->closing)
		return;
	w->closing = true;
	/* Inside its own callback the return value closes it; elsewhere lws
	 * closes it on its next turn. */
	if (!w->in_callback && !destroying)
		lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static int
fd_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	    void *in, size_t len)
{
	struct fdwatch *w = lws_get_opaque_user_data(wsi);

	if (!w)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		if (w->closing)
			return -1;
		w->in_callback = true;
		w->fn(w, w->fd, reason == LWS_CALLBACK_RAW_RX_FILE ? FDW_READ : FDW_WRITE,
		      w->arg);
		w->in_callback = false;
		if (w->closing)
			return -1;
		if (w->rearm) {
			w->rearm = false;
			timer_arm(&w->rearm_timer, 0, fd_rearm);
		}
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		timer_cancel(&w->rearm_timer);
		lws_set_opaque_user_data(wsi, NULL);
		w->fn(w, w->fd, FDW_CLOSED, w->arg);
		free(w);
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols internal_protocols[] = {
	{ "avd-signal", signal_callback, 0, 0, 0, NULL, 0 },
	{ "avd-fd", fd_callback, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/*
 * lws's idle policy is switched off, not merely left out: without one lws
 * applies its default (ping after 300 s) and still re-arms a timer in its
 * sorted list, O(n), for every pong that avd's own pings bring back.  A
 * hang-up time of 0 makes lws keep no such timer at all.  Keep-alive is
 * avd's (ws_alive_check).
 */
static const lws_retry_bo_t no_idle_policy;

static void
lws_log(int level, const char *line)
{
	char buf[512];
	size_t n = strnlen(line, sizeof(buf) - 1);

	memcpy(buf, line, n);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	log_msg(level == LLL_ERR ? LOG_WARN : LOG_DEBUG, "lws: %s", buf);
}

/* ---- start, run, stop --------------------------------------------------- */

static bool
is_loopback(const char *addr, bool *v6)
{
	struct in_addr a4;
	struct in6_addr a6;

	*v6 = false;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1) {
		*v6 = true;
		return IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return false;
}

/* Try the address first so "port busy" is reported as exactly that. */
static int
probe_bind(const char *addr, bool v6, int port, struct avd_err *err)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int fd, one = 1, rc = 0;

	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, addr, &s6->sin6_addr);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, addr, &s4->sin_addr);
		sl = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(err, AVD_E_INTERNAL, NULL, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl))
		rc = err_set(err, AVD_E_INTERNAL, NULL, "cannot listen on %s port %d: %s",
			     addr, port,
			     errno == EADDRINUSE ? "the port is busy" : strerror(errno));
	close(fd);
	return rc;
}

static void
raise_fd_limit(unsigned want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Prepare the socket's directory (0700, ours) and refuse a live socket. */
static int
unix_prepare(const char *path, struct avd_err *err)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	char *slash;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "--unix: path longer than %zu bytes", sizeof(sa.sun_path) - 1);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) && errno != EEXIST)
			return err_set(err, AVD_E_INVALID_REQUEST, NULL, "--unix: cannot create %s: %s",
				       dir, strerror(errno));
		if (stat(dir, &st) || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "--unix: %s is not a directory owned by this user", dir);
		if ((st.st_mode & 0777) != 0700 && chmod(dir, 0700))
			return err_set(err, AVD_E_INVALID_REQUEST, NULL, "--unix: chmod %s: %s",
				       dir, strerror(errno));
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "--unix: %s exists and is not a socket", path);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "--unix: %s is in use by a running server", path);
		}
		if (fd >= 0)
			close(fd);
		unlink(path); /* stale: nobody answers there */
	}
	return 0;
}

static int
unix_listen(struct config *c, struct avd_err *err)
{
	struct lws_context_creation_info info;
	mode_t old;
	struct lws_vhost *vh;

	if (unix_prepare(c->unix_path, err))
		return -EINVAL;
	memset(&info, 0, sizeof(info));
	info.vhost_name = "avd-unix";
	info.iface = c->unix_path;
	info.port = 0;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_UNIX_SOCK;
	info.retry_and_idle_policy = &no_idle_policy;
	info.timeout_secs = 10;
	/* Created 0600 from the start: no moment where others could connect. */
	old = umask(0177);
	vh = lws_create_vhost(ctx, &info);
	umask(old);
	if (!vh)
		return err_set(err, AVD_E_INVALID_REQUEST, NULL,
			       "--unix: cannot listen on %s", c->unix_path);
	chmod(c->unix_path, 0600);
	log_info("also listening on unix socket %s", c->unix_path);
	return 0;
}

int
server_start(struct config *c, struct avd_err *err)
{
	struct lws_context_creation_info info;
	sigset_t mask;
	bool v6;
	lws_sock_file_fd_type fd;

	cfg = c;
	if (!strcmp(c->listen, "localhost")) {
		/* The name people type; IPv4 loopback is what it means here. */
		free(c->listen);
		c->listen = xstrdup("127.0.0.1");
	}
	if (!is_loopback(c->listen, &v6)) {
		struct in6_addr any;
		if (inet_pton(AF_INET, c->listen, &any) != 1 &&
		    inet_pton(AF_INET6, c->listen, &any) != 1)
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "--listen: \"%s\" is not a numeric IP address",
				       c->listen);
		if (!c->allow_remote)
			return err_set(err, AVD_E_INVALID_REQUEST, NULL,
				       "--listen %s is not a loopback address; add "
				       "--allow-remote to really listen there",
				       c->listen);
	}
	if (c->port && probe_bind(c->listen, v6, c->port, err))
		return -EADDRINUSE;

	raise_fd_limit(c->max_sessions + 256);
	lws_set_log_level(log_get_level() >= LOG_DEBUG
				  ? LLL_ERR | LLL_WARN | LLL_NOTICE
				  : LLL_ERR,
			  lws_log);

	memset(&info, 0, sizeof(info));
	/* UTF-8 is validated by avd (msg.c), not lws: lws closes at once with
	 * the client's next bytes unread, and the reset that follows can beat
	 * the 1007 close frame to the client. */
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	/* No fd_limit_per_thread: with it lws finds a connection by a linear
	 * search of its table; sized from RLIMIT_NOFILE (raised above) the
	 * lookup is an index. */
	info.count_threads = 1;
	/*
	 * The loop is libev's (epoll), owned by avd and driven through lws's
	 * libev plugin: lws's own loop poll()s every descriptor on every turn,
	 * which with 10 000 idle sessions costs milliseconds per message.
	 * EVFLAG_NOSIGMASK leaves signals to the signalfd.
	 */
	evloop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
	if (evloop) {
		void *foreign[1] = { evloop };
		info.options |= LWS_SERVER_OPTION_LIBEV;
		info.foreign_loops = foreign;
		ctx = lws_create_context(&info);
		info.foreign_loops = NULL;
		if (!ctx) {
			log_warn("libev loop unavailable (is libwebsockets-evlib-ev "
				 "installed?); using poll(), which scales worse");
			ev_loop_destroy(evloop);
			evloop = NULL;
		}
	}
	if (!ctx) {
		info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
		ctx = lws_create_context(&info);
	}
	if (!ctx)
		return err_set(err, AVD_E_INTERNAL, NULL, "cannot create the event loop");

	memset(&info, 0, sizeof(info));
	info.vhost_name = "avd";
	info.iface = c->listen;
	info.port = c->port;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
		       (v6 ? 0 : LWS_SERVER_OPTION_DISABLE_IPV6);
	info.retry_and_idle_policy = &no_idle_policy;
	info.timeout_secs = 10;
	vhost = lws_create_vhost(ctx, &info);
	if (!vhost || lws_get_vhost_listen_port(vhost) <= 0) {
		lws_context_destroy(ctx);
		ctx = NULL;
		return err_set(err, AVD_E_INTERNAL, NULL,
			       "cannot listen on %s port %d", c->listen, c->port);
	}
	listen_port = lws_get_vhost_listen_port(vhost);
	if (c->unix_path && unix_listen(c, err)) {
		lws_context_destroy(ctx);
		ctx = NULL;
		return -EINVAL;
	}

	/* Signals become readable bytes in the loop, handled like any input. */
	memset(&info, 0, sizeof(info));
	info.vhost_name = "avd-internal";
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = internal_protocols;
	struct lws_vhost *ivh = lws_create_vhost(ctx, &info);
	internal_vhost = ivh;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	fd.filefd = sigfd;
	if (!ivh || sigfd < 0 ||
	    !lws_adopt_descriptor_vhost(ivh, LWS_ADOPT_RAW_FILE_DESC, fd,
					"avd-signal", NULL)) {
		lws_context_destroy(ctx);
		ctx = NULL;
		return err_set(err, AVD_E_INTERNAL, NULL, "cannot watch signals");
	}
	if (evloop) {
		ev_init(&ev_tick, ev_fire);
		ev_timer_init(&ev_lws_tick, ev_lws_fire, 1.0, 1.0);
		ev_timer_start(evloop, &ev_lws_tick);
		ev_prepare_init(&ev_turn_end, turn_end);
	}
	timer_set_wakeup(sul_resched);
	return 0;
}

int
server_port(void)
{
	return listen_port;
}

static void
shutdown_deadline(struct timer *t)
{
	log_warn("shutdown: %u sessions and %u backends still there; closing anyway",
		 hub.nsessions, backend_running());
	loop_done = true;
}

static void
begin_shutdown(void)
{
	shutdown_started = true;
	notify_systemd("STOPPING=1");
	backend_shutdown();
	hub_shutdown();
	/* Children get 2 s to leave after stdin closes, 2 s after SIGTERM. */
	timer_arm(&shutdown_timer, backend_running() ? 5000 : 2000,
		  shutdown_deadline);
}

void
server_run(void)
{
	while (!loop_done) {
		if (evloop)
			ev_run(evloop, EVRUN_ONCE);
		else if (lws_service(ctx, 0) < 0)
			break;
		if (stop_requested && !shutdown_started)
			begin_shutdown();
		if (shutdown_started && hub.nsessions == 0 && backend_running() == 0)
			loop_done = true;
	}
	timer_cancel(&shutdown_timer);
	backend_kill_all();
}

void
server_destroy(void)
{
	timer_set_wakeup(NULL);
	destroying = true;
	if (ctx) {
		lws_sul_cancel(&timer_sul);
		lws_context_destroy(ctx);
		ctx = NULL;
	}
	if (evloop) {
		ev_timer_stop(evloop, &ev_tick);
		ev_timer_stop(evloop, &ev_lws_tick);
		ev_prepare_stop(evloop, &ev_turn_end);
		ev_loop_destroy(evloop);
		evloop = NULL;
	}
	if (sigfd >= 0)
		close(sigfd);
	sigfd = -1;
}
