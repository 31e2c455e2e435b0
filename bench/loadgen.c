/*
 * loadgen.c - load generator for avd and the peers it is compared with.
 *
 * Shares no code with avd: raw sockets, one epoll loop, a minimal
 * WebSocket client (HTTP upgrade, masked client frames, unmasked server
 * frames) and a minimal MQTT 3.1.1 client (CONNECT, SUBSCRIBE, PUBLISH
 * QoS 0) carried in binary WebSocket messages.
 *
 *   loadgen rtt    --port P [--proto avd|relay] [--calls N] [--warmup N]
 *                  [--seconds S] [--warmup-seconds S]
 *                  [--idle N --pid PID [--measure-cpu C]]
 *   loadgen open   --port P [--proto avd|relay] --rate R [--seconds S]
 *                  [--idle N --pid PID [--measure-cpu C]]
 *   loadgen fanout --port P --proto avd|relay|mqtt --subs N --size B
 *                  [--seconds S | --events K] [--frozen] [--pid PID]
 *   loadgen idle   --port P --proto avd|relay|mqtt --conns N --pid PID
 *   loadgen floor  [--calls N] [--warmup N] [--size B]
 *
 * Every mode prints one line of key=value pairs on stdout and exits 0, or
 * prints why it failed on stderr and exits 1.  Every mode is bounded in
 * time (--max-seconds, default 60) and in count.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers -------------------------------------------------------- */

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void
on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "loadgen: time limit reached\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	_exit(1);
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* CPU time (utime+stime) of a process in microseconds, from /proc/PID/stat. */
static int64_t
proc_cpu_us(int pid)
{
	char path[64], buf[2048];
	unsigned long long ut = 0, st = 0;
	FILE *f;
	size_t n;
	char *p;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (int64_t)((ut + st) * 1000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* Resident set size of a process in KiB, from /proc/PID/status. */
static long
proc_rss_kb(int pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6)) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static double
pct_us(const uint64_t *v, size_t n, double q)
{
	size_t k;

	if (!n)
		return -1;
	k = (size_t)(q * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1] / 1000.0;
}

/* ---- a top-level JSON key scanner (no full parser needed) ---------------- */

static size_t
skip_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static size_t
skip_string(const char *s, size_t n, size_t i)
{
	/* s[i] == '"' */
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return n;
}

static size_t
skip_value(const char *s, size_t n, size_t i)
{
	int depth = 0;

	if (i < n && s[i] == '"')
		return skip_string(s, n, i);
	for (; i < n; i++) {
		char c = s[i];
		if (c == '"') {
			i = skip_string(s, n, i) - 1;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return i;
			if (--depth == 0)
				return i + 1;
		} else if (c == ',' && depth == 0) {
			return i;
		}
	}
	return n;
}

/* Finds top-level `key`; sets the raw value (strings keep their quotes). */
static bool
json_top(const char *s, size_t n, const char *key, const char **v, size_t *vl)
{
	size_t kl = strlen(key), i = skip_ws(s, n, 0);

	if (i >= n || s[i] != '{')
		return false;
	i++;
	for (;;) {
		size_t ks, ke, vs, ve;

		i = skip_ws(s, n, i);
		if (i >= n || s[i] != '"')
			return false;
		ks = i + 1;
		i = skip_string(s, n, i);
		ke = i - 1;
		i = skip_ws(s, n, i);
		if (i >= n || s[i] != ':')
			return false;
		vs = i = skip_ws(s, n, i + 1);
		ve = i = skip_value(s, n, i);
		if (ke - ks == kl && !memcmp(s + ks, key, kl)) {
			*v = s + vs;
			*vl = ve - vs;
			return true;
		}
		i = skip_ws(s, n, i);
		if (i >= n || s[i] != ',')
			return false;
		i++;
	}
}

static bool
json_top_is(const char *s, size_t n, const char *key, const char *want)
{
	const char *v;
	size_t vl;

	return json_top(s, n, key, &v, &vl) && vl == strlen(want) && !memcmp(v, want, vl);
}

/* ---- connections ------------------------------------------------------------ */

enum proto { P_AVD, P_RELAY, P_MQTT };
enum role { R_FRONT, R_BACK, R_SUB, R_PUB, R_IDLE };
enum state { S_CONNECTING, S_UPGRADE, S_HELLO, S_REGISTER, S_SUBACK, S_READY, S_DEAD };

struct conn {
	int fd, idx;
	enum role role;
	enum state state;
	bool want_out, frozen;
	unsigned char *rbuf; /* unparsed bytes from the socket */
	size_t rlen, rcap;
	unsigned char *mbuf; /* a fragmented WebSocket message, or MQTT stream bytes */
	size_t mlen, mcap;
	int mop;
	unsigned char *wbuf; /* bytes not yet taken by the kernel */
	size_t wlen, woff, wcap;
	uint64_t nmsg; /* deliveries counted (subscribers) */
};

static struct {
	enum proto proto;
	int port;
	const char *token;
	int epfd;
	struct conn **conns;
	int nconns;
	int nready;
	uint32_t mask_key;
	unsigned long errors;
	char first_error[200];
} G = { .token = "" };

static void on_message(struct conn *c, int op, unsigned char *p, size_t n);

static void
set_events(struct conn *c)
{
	struct epoll_event ev = { .events = (c->frozen ? 0 : EPOLLIN) |
					    (c->want_out ? EPOLLOUT : 0),
				  .data.ptr = c };

	if (epoll_ctl(G.epfd, EPOLL_CTL_MOD, c->fd, &ev))
		die("epoll_ctl: %s", strerror(errno));
}

static void
conn_fail(struct conn *c, const char *why)
{
	if (c->state == S_DEAD)
		return;
	G.errors++;
	if (!G.first_error[0])
		snprintf(G.first_error, sizeof(G.first_error), "conn %d (%s)", c->idx, why);
	epoll_ctl(G.epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->state == S_READY)
		G.nready--;
	c->state = S_DEAD;
}

static void
flush_out(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (!c->want_out) {
					c->want_out = true;
					set_events(c);
				}
				return;
			}
			conn_fail(c, strerror(errno));
			return;
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	if (c->want_out) {
		c->want_out = false;
		set_events(c);
	}
}

static unsigned char *
out_reserve(struct conn *c, size_t n)
{
	if (c->woff && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wlen + n > c->wcap) {
		if (c->woff) {
			memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		if (c->wlen + n > c->wcap) {
			size_t cap = c->wcap ? c->wcap : 4096;
			while (cap < c->wlen + n)
				cap *= 2;
			c->wbuf = xrealloc(c->wbuf, cap);
			c->wcap = cap;
		}
	}
	c->wlen += n;
	return c->wbuf + c->wlen - n;
}

/* Writes one masked client frame (FIN set) into dst; returns its size. */
static size_t
ws_frame(unsigned char *dst, int op, const void *payload, size_t n, uint32_t key)
{
	const unsigned char *src = payload;
	unsigned char mk[4] = { (unsigned char)(key >> 24), (unsigned char)(key >> 16),
				(unsigned char)(key >> 8), (unsigned char)key };
	size_t h = 0;

	dst[h++] = (unsigned char)(0x80 | op);
	if (n < 126) {
		dst[h++] = (unsigned char)(0x80 | n);
	} else if (n < 65536) {
		dst[h++] = 0x80 | 126;
		dst[h++] = (unsigned char)(n >> 8);
		dst[h++] = (unsigned char)n;
	} else {
		dst[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			dst[h++] = (unsigned char)((uint64_t)n >> (8 * i));
	}
	memcpy(dst + h, mk, 4);
	h += 4;
	for (size_t i = 0; i < n; i++)
		dst[h + i] = src[i] ^ mk[i & 3];
	return h + n;
}

static size_t
ws_frame_max(size_t n)
{
	return n + 14;
}

static void
ws_queue(struct conn *c, int op, const void *p, size_t n)
{
	unsigned char *dst = out_reserve(c, ws_frame_max(n));
	size_t w = ws_frame(dst, op, p, n, G.mask_key);

	c->wlen -= ws_frame_max(n) - w;
}

static void
ws_send(struct conn *c, int op, const void *p, size_t n)
{
	ws_queue(c, op, p, n);
	flush_out(c);
}

static void
ws_send_text(struct conn *c, const char *s)
{
	ws_send(c, 1, s, strlen(s));
}

/* ---- MQTT 3.1.1 (client side, QoS 0 only) -------------------------------- */

static size_t
mqtt_varlen(unsigned char *p, size_t n)
{
	size_t i = 0;

	do {
		unsigned char b = (unsigned char)(n % 128);
		n /= 128;
		if (n)
			b |= 0x80;
		p[i++] = b;
	} while (n);
	return i;
}

static size_t
mqtt_str(unsigned char *p, const char *s)
{
	size_t n = strlen(s);

	p[0] = (unsigned char)(n >> 8);
	p[1] = (unsigned char)n;
	memcpy(p + 2, s, n);
	return n + 2;
}

static void
mqtt_connect(struct conn *c)
{
	unsigned char body[128], pkt[140];
	char id[48];
	size_t b = 0, p = 0;

	snprintf(id, sizeof(id), "lg%d-%d", (int)getpid(), c->idx);
	b += mqtt_str(body + b, "MQTT");
	body[b++] = 4;    /* protocol level 3.1.1 */
	body[b++] = 0x02; /* clean session */
	body[b++] = 0x02; /* keep alive 600 s */
	body[b++] = 0x58;
	b += mqtt_str(body + b, id);
	pkt[p++] = 0x10;
	p += mqtt_varlen(pkt + p, b);
	memcpy(pkt + p, body, b);
	ws_send(c, 2, pkt, p + b);
}

static const char *mqtt_topic = "bench/ev";

static void
mqtt_subscribe(struct conn *c)
{
	unsigned char body[64], pkt[72];
	size_t b = 0, p = 0;

	body[b++] = 0;
	body[b++] = 1; /* packet id */
	b += mqtt_str(body + b, mqtt_topic);
	body[b++] = 0; /* QoS 0 */
	pkt[p++] = 0x82;
	p += mqtt_varlen(pkt + p, b);
	memcpy(pkt + p, body, b);
	ws_send(c, 2, pkt, p + b);
}

static size_t
mqtt_publish(unsigned char *pkt, const void *payload, size_t n)
{
	size_t p = 0, rl = 2 + strlen(mqtt_topic) + n;

	pkt[p++] = 0x30;
	p += mqtt_varlen(pkt + p, rl);
	p += mqtt_str(pkt + p, mqtt_topic);
	memcpy(pkt + p, payload, n);
	return p + n;
}

static void
mqtt_packet(struct conn *c, unsigned char type, unsigned char *p, size_t n)
{
	switch (type >> 4) {
	case 2: /* CONNACK */
		if (n < 2 || p[1] != 0) {
			conn_fail(c, "CONNACK refused");
			return;
		}
		if (c->role == R_SUB) {
			c->state = S_SUBACK;
			mqtt_subscribe(c);
		} else {
			c->state = S_READY;
			G.nready++;
		}
		break;
	case 9: /* SUBACK */
		if (c->state == S_SUBACK) {
			c->state = S_READY;
			G.nready++;
		}
		break;
	case 3: /* PUBLISH */
		if (c->state == S_READY && c->role == R_SUB)
			c->nmsg++;
		break;
	default:
		break;
	}
}

/* Parses whole MQTT packets from p; returns the bytes consumed. */
static size_t
mqtt_parse(struct conn *c, unsigned char *p, size_t n)
{
	size_t off = 0;

	while (off + 2 <= n && c->state != S_DEAD) {
		size_t rl = 0, i = off + 1;
		unsigned mult = 1;
		bool done = false;

		while (i < n && i < off + 5) {
			rl += (size_t)(p[i] & 0x7f) * mult;
			mult *= 128;
			if (!(p[i++] & 0x80)) {
				done = true;
				break;
			}
		}
		if (!done || i + rl > n)
			break;
		mqtt_packet(c, p[off], p + i, rl);
		off = i + rl;
	}
	return off;
}

static void
mqtt_bytes(struct conn *c, unsigned char *p, size_t n)
{
	size_t used;

	if (!c->mlen) {
		used = mqtt_parse(c, p, n);
		p += used;
		n -= used;
		if (!n)
			return;
	}
	if (c->mlen + n > c->mcap) {
		c->mcap = (c->mlen + n) * 2;
		c->mbuf = xrealloc(c->mbuf, c->mcap);
	}
	memcpy(c->mbuf + c->mlen, p, n);
	c->mlen += n;
	used = mqtt_parse(c, c->mbuf, c->mlen);
	memmove(c->mbuf, c->mbuf + used, c->mlen - used);
	c->mlen -= used;
}

/* ---- the avd / relay protocol ---------------------------------------------- */

static char hello_extra[128];

static void
send_hello(struct conn *c)
{
	char buf[512];
	const char *role = c->role == R_BACK ? "backend" : "frontend";

	snprintf(buf, sizeof(buf),
		 "{\"type\":\"hello\",\"schema_version\":1,\"role\":\"%s\",\"name\":\"lg%d\"%s}",
		 role, c->idx, c->role == R_SUB ? hello_extra : "");
	ws_send_text(c, buf);
}

static void
note_error(struct conn *c, unsigned char *p, size_t n)
{
	G.errors++;
	if (!G.first_error[0])
		snprintf(G.first_error, sizeof(G.first_error), "conn %d got %.*s", c->idx,
			 (int)(n > 150 ? 150 : n), (const char *)p);
}

/* Per-mode hooks */
static void (*on_response)(struct conn *c, const char *id, size_t idl, uint64_t t);
static uint64_t ncalls_answered_by_backend;

static void
backend_answer(struct conn *c, const char *id, size_t idl)
{
	static const char pre[] = "{\"id\":", post[] = ",\"ok\":true,\"result\":{\"text\":\"hello\"}}";
	char buf[256];
	size_t n = 0;

	if (idl > 128)
		return;
	memcpy(buf, pre, sizeof(pre) - 1);
	n += sizeof(pre) - 1;
	memcpy(buf + n, id, idl);
	n += idl;
	memcpy(buf + n, post, sizeof(post) - 1);
	n += sizeof(post) - 1;
	ncalls_answered_by_backend++;
	ws_send(c, 1, buf, n);
}

static void
json_message(struct conn *c, unsigned char *p, size_t n)
{
	const char *s = (const char *)p, *v;
	size_t vl;

	if (c->state == S_READY && c->role == R_SUB) {
		/* The hot path of fan-out: count events, look no further. */
		if (n > 16 && (memmem(p, n < 48 ? n : 48, "\"event\"", 7) ||
			       json_top_is(s, n, "type", "\"event\"")))
			c->nmsg++;
		else if (json_top(s, n, "error", &v, &vl))
			note_error(c, p, n);
		return;
	}
	if (c->state == S_HELLO) {
		if (!json_top_is(s, n, "type", "\"welcome\"")) {
			note_error(c, p, n);
			conn_fail(c, "no welcome");
			return;
		}
		if (c->role == R_BACK) {
			c->state = S_REGISTER;
			ws_send_text(c, "{\"id\":\"reg1\",\"method\":\"avd.register\","
					"\"params\":{\"methods\":[\"bench.echo\"]}}");
		} else {
			c->state = S_READY;
			G.nready++;
		}
		return;
	}
	if (c->state == S_REGISTER) {
		if (json_top_is(s, n, "id", "\"reg1\"")) {
			if (!json_top_is(s, n, "ok", "true")) {
				note_error(c, p, n);
				conn_fail(c, "register refused");
				return;
			}
			c->state = S_READY;
			G.nready++;
		}
		return;
	}
	if (c->state != S_READY)
		return;
	if (c->role == R_BACK) {
		if (json_top(s, n, "id", &v, &vl)) {
			const char *m;
			size_t ml;
			if (json_top(s, n, "method", &m, &ml))
				backend_answer(c, v, vl);
		}
		return;
	}
	if (c->role == R_FRONT) {
		if (json_top(s, n, "id", &v, &vl)) {
			if (!json_top_is(s, n, "ok", "true"))
				note_error(c, p, n);
			if (on_response)
				on_response(c, v, vl, now_ns());
		}
		return;
	}
	if (json_top(s, n, "error", &v, &vl))
		note_error(c, p, n);
}

static void
on_message(struct conn *c, int op, unsigned char *p, size_t n)
{
	if (G.proto == P_MQTT) {
		if (op == 2)
			mqtt_bytes(c, p, n);
		return;
	}
	if (op != 1) {
		note_error(c, (unsigned char *)"(binary message)", 16);
		return;
	}
	json_message(c, p, n);
}

/* ---- WebSocket client ------------------------------------------------------ */

static void
send_upgrade(struct conn *c)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "GET /ws%s%s HTTP/1.1\r\n"
			 "Host: 127.0.0.1:%d\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			 "Sec-WebSocket-Version: 13\r\n"
			 "%s"
			 "\r\n",
			 G.proto == P_MQTT ? "" : "?token=", G.proto == P_MQTT ? "" : G.token,
			 G.port, G.proto == P_MQTT ? "Sec-WebSocket-Protocol: mqtt\r\n" : "");

	memcpy(out_reserve(c, (size_t)n), buf, (size_t)n);
	c->state = S_UPGRADE;
	flush_out(c);
}

static void
ws_opened(struct conn *c)
{
	c->state = S_HELLO;
	if (G.proto == P_MQTT)
		mqtt_connect(c);
	else
		send_hello(c);
}

static void
ws_frame_in(struct conn *c, bool fin, int op, unsigned char *p, size_t n)
{
	if (op >= 8) {
		if (op == 9) /* ping: answer with the same payload */
			ws_send(c, 10, p, n);
		else if (op == 8)
			conn_fail(c, "closed by the server");
		return;
	}
	if (op != 0 && fin && !c->mop) {
		on_message(c, op, p, n);
		return;
	}
	if (op != 0)
		c->mop = op;
	if (c->mlen + n > c->mcap) {
		c->mcap = (c->mlen + n) * 2;
		c->mbuf = xrealloc(c->mbuf, c->mcap);
	}
	memcpy(c->mbuf + c->mlen, p, n);
	c->mlen += n;
	if (fin) {
		size_t len = c->mlen;
		int mop = c->mop;
		c->mlen = 0;
		c->mop = 0;
		on_message(c, mop, c->mbuf, len);
	}
}

static void
conn_parse(struct conn *c)
{
	size_t off = 0, need = 0;

	if (c->state == S_UPGRADE) {
		unsigned char *e = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
		if (!e) {
			if (c->rlen > 8192)
				conn_fail(c, "HTTP response too long");
			return;
		}
		if (c->rlen < 12 || memcmp(c->rbuf + 9, "101", 3)) {
			note_error(c, c->rbuf, (size_t)(e - c->rbuf));
			conn_fail(c, "upgrade refused");
			return;
		}
		off = (size_t)(e + 4 - c->rbuf);
		ws_opened(c);
	}
	while (c->state != S_DEAD && c->state != S_UPGRADE) {
		unsigned char *p = c->rbuf + off;
		size_t avail = c->rlen - off, h = 2;
		uint64_t len;
		bool masked;

		if (avail < 2)
			break;
		len = p[1] & 0x7f;
		masked = p[1] & 0x80;
		if (len == 126) {
			if (avail < 4)
				break;
			len = (uint64_t)p[2] << 8 | p[3];
			h = 4;
		} else if (len == 127) {
			if (avail < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | p[2 + i];
			h = 10;
		}
		if (masked)
			h += 4;
		if (len > (1u << 28)) {
			conn_fail(c, "frame too big");
			return;
		}
		if (avail < h + len) {
			need = h + (size_t)len;
			break;
		}
		if (masked)
			for (size_t i = 0; i < len; i++)
				p[h + i] ^= p[h - 4 + (i & 3)];
		ws_frame_in(c, p[0] & 0x80, p[0] & 0x0f, p + h, (size_t)len);
		off += h + (size_t)len;
	}
	if (c->state == S_DEAD)
		return;
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	if (need > c->rcap) {
		c->rcap = need;
		c->rbuf = xrealloc(c->rbuf, c->rcap);
	}
}

static void
conn_readable(struct conn *c)
{
	ssize_t n;

	if (c->rlen == c->rcap) {
		c->rcap = c->rcap ? c->rcap * 2 : 16384;
		c->rbuf = xrealloc(c->rbuf, c->rcap);
	}
	n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
	if (n == 0) {
		conn_fail(c, "connection closed by the server");
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_fail(c, strerror(errno));
		return;
	}
	c->rlen += (size_t)n;
	conn_parse(c);
}

static void
conn_writable(struct conn *c)
{
	if (c->state == S_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			conn_fail(c, strerror(err));
			return;
		}
		send_upgrade(c);
		return;
	}
	flush_out(c);
}

static struct conn *
conn_open(enum role role, size_t rcap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)G.port) };
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev;
	int one = 1;

	if (!c)
		die("out of memory");
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->role = role;
	c->idx = G.nconns;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket: %s (connection %d)", strerror(errno), c->idx);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->rcap = rcap;
	c->rbuf = xrealloc(NULL, rcap);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS)
		die("connect: %s", strerror(errno));
	c->state = S_CONNECTING;
	c->want_out = true;
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = c;
	if (epoll_ctl(G.epfd, EPOLL_CTL_ADD, c->fd, &ev))
		die("epoll_ctl: %s", strerror(errno));
	G.conns = xrealloc(G.conns, (size_t)(G.nconns + 1) * sizeof(*G.conns));
	G.conns[G.nconns++] = c;
	return c;
}

/* One turn of the loop; timeout in nanoseconds (negative: block). */
static void
poll_once(int64_t timeout_ns)
{
	static struct epoll_event evs[1024];
	struct timespec ts, *tp = NULL;
	int n;

	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tp = &ts;
	}
	n = epoll_pwait2(G.epfd, evs, 1024, tp, NULL);
	if (n < 0) {
		if (errno == EINTR)
			return;
		die("epoll_pwait2: %s", strerror(errno));
	}
	for (int i = 0; i < n; i++) {
		struct conn *c = evs[i].data.ptr;
		if (c->state == S_DEAD)
			continue;
		if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_writable(c);
		if (c->state != S_DEAD && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
			conn_readable(c);
	}
}

/* Waits until the server accepts TCP connections (it may still be starting). */
static void
wait_port(unsigned timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)G.port) };

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (;;) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (rc == 0)
			return;
		if (now_ns() > end)
			die("nothing listens on 127.0.0.1:%d", G.port);
		sleep_ms(10);
	}
}

/* Runs the loop until `want` connections are ready. */
static void
wait_ready(int want, unsigned timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (G.nready < want) {
		uint64_t t = now_ns();
		if (t > end)
			die("only %d of %d connections ready after %u ms%s%s", G.nready, want,
			    timeout_ms, G.first_error[0] ? "; first error: " : "", G.first_error);
		poll_once((int64_t)(end - t));
	}
}

static void
check_no_errors(void)
{
	if (G.errors)
		die("%lu errors; first: %s", G.errors, G.first_error);
}

/* ---- options ------------------------------------------------------------------ */

static struct {
	const char *mode;
	long calls, warmup, subs, size, conns, events, window, cap, idle;
	double rate, seconds, warmup_s, max_seconds;
	int pid, measure_cpu;
	bool frozen, seconds_set;
	int sample_ms;
} O = {
	.calls = 20000,
	.warmup = 2000,
	.subs = 10,
	.size = 100,
	.conns = 10000,
	.window = 0,
	.seconds = 1.0,
	.warmup_s = -1, /* rtt: 0, others: 0.3 */
	.max_seconds = 60,
	.sample_ms = 100,
	.measure_cpu = -1,
};

static void
usage(void)
{
	fputs("usage: loadgen rtt|open|fanout|idle|floor [--port P] [--token T]\n"
	      "  [--proto avd|relay|mqtt] [--calls N] [--warmup N] [--rate R]\n"
	      "  [--seconds S] [--warmup-seconds S] [--subs N] [--size B] [--events K]\n"
	      "  [--window W] [--frozen] [--conns N] [--idle N] [--measure-cpu C] [--pid PID]\n"
	      "  [--sample-ms MS]\n"
	      "  [--max-seconds S]\n",
	      stderr);
	exit(2);
}

static void
parse_args(int argc, char **argv)
{
	if (argc < 2)
		usage();
	O.mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(a, name) && v && (i++, 1))
		if (OPT("--port"))
			G.port = atoi(v);
		else if (OPT("--token"))
			G.token = v;
		else if (OPT("--proto"))
			G.proto = !strcmp(v, "mqtt") ? P_MQTT : !strcmp(v, "relay") ? P_RELAY : P_AVD;
		else if (OPT("--calls"))
			O.calls = atol(v);
		else if (OPT("--warmup"))
			O.warmup = atol(v);
		else if (OPT("--rate"))
			O.rate = atof(v);
		else if (OPT("--seconds"))
			O.seconds = atof(v), O.seconds_set = true;
		else if (OPT("--warmup-seconds"))
			O.warmup_s = atof(v);
		else if (OPT("--max-seconds"))
			O.max_seconds = atof(v);
		else if (OPT("--subs"))
			O.subs = atol(v);
		else if (OPT("--size"))
			O.size = atol(v);
		else if (OPT("--events"))
			O.events = atol(v);
		else if (OPT("--window"))
			O.window = atol(v);
		else if (OPT("--conns"))
			O.conns = atol(v);
		else if (OPT("--idle"))
			O.idle = atol(v);
		else if (OPT("--measure-cpu"))
			O.measure_cpu = atoi(v);
		else if (OPT("--pid"))
			O.pid = atoi(v);
		else if (OPT("--sample-ms"))
			O.sample_ms = atoi(v);
		else if (!strcmp(a, "--frozen"))
			O.frozen = true;
		else
			usage();
#undef OPT
	}
	if (O.warmup_s < 0)
		O.warmup_s = strcmp(O.mode, "rtt") ? 0.3 : 0;
	if (O.calls < 1 || O.warmup < 0 || O.subs < 1 || O.size < 60 || O.size > 65536 ||
	    O.conns < 1 || O.idle < 0 || O.seconds <= 0 || O.max_seconds <= 0 || O.sample_ms < 10)
		die("an option is out of range");
}

/* Opens n sessions that complete hello and then stay idle (at most 256
 * handshakes at a time); the server's RSS before and after, in KiB. */
static void
open_idle(long n, long *before, long *after)
{
	uint64_t end = now_ns() + (uint64_t)(O.max_seconds * 0.8e9), settle;
	long opened = 0;
	int base = G.nready;

	*before = proc_rss_kb(O.pid);
	while (G.nready - base < n) {
		while (opened < n && opened - (G.nready - base) < 256) {
			conn_open(R_IDLE, 512);
			opened++;
		}
		if (now_ns() > end)
			die("only %d of %ld sessions after %.0f s; first error: %s", G.nready - base,
			    n, O.max_seconds * 0.8, G.first_error);
		if (G.errors)
			die("%lu failed connections; first: %s", G.errors, G.first_error);
		poll_once(100000000);
	}
	/* Let the server settle, still answering its pings. */
	settle = now_ns() + 500000000u;
	while (now_ns() < settle)
		poll_once(50000000);
	*after = proc_rss_kb(O.pid);
	check_no_errors();
}

/* ---- mode: rtt (closed loop, one call in flight) -------------------------- */

static struct conn *front, *back;
static uint64_t *lat;       /* latencies, ns */
static uint64_t *sched;     /* open loop: scheduled send time per call */
static uint64_t *late;      /* open loop: how late each call was sent */
static long nsent, nrecv;

static void
send_call(long id)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf),
			 "{\"id\":%ld,\"method\":\"bench.echo\",\"params\":{\"text\":\"hello\"}}", id);

	ws_queue(front, 1, buf, (size_t)n);
}

static long idle_before, idle_after;

/* The callee, then with --idle the idle sessions (each frontend learns of
 * the backend in its welcome, so no broadcast falls into the calls), then
 * the caller. */
static void
setup_call_pair(void)
{
	if (O.idle)
		raise_nofile();
	wait_port(10000);
	back = conn_open(R_BACK, 16384);
	wait_ready(1, 10000);
	if (O.idle)
		open_idle(O.idle, &idle_before, &idle_after);
	front = conn_open(R_FRONT, 16384);
	wait_ready((int)O.idle + 2, 10000);
	/* Thousands of handshakes go faster from the other CPU; the calls
	 * are measured from the server's CPU again. */
	if (O.measure_cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(O.measure_cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("sched_setaffinity: %s", strerror(errno));
	}
}

static void
print_idle(void)
{
	if (O.idle)
		printf(" sessions=%d idle=%ld rss_before_kb=%ld rss_after_kb=%ld bytes_per_conn=%.0f",
		       G.nready, O.idle, idle_before, idle_after,
		       (double)(idle_after - idle_before) * 1024.0 / (double)O.idle);
}

/* rtt: warm-up ends once both its count and its time have passed; the
 * measurement ends after --calls calls or --seconds (when given). */
static long rtt_first = -1, rtt_end = -1;
static uint64_t rtt_t0, rtt_tm;

static void
rtt_response(struct conn *c, const char *id, size_t idl, uint64_t t)
{
	long i = strtol(id, NULL, 10);

	(void)c;
	(void)idl;
	if (i != nrecv)
		die("response %ld out of order (expected %ld)", i, nrecv);
	lat[nrecv] = t - sched[nrecv];
	nrecv++;
	if (rtt_first < 0 && nrecv >= O.warmup &&
	    t - rtt_t0 >= (uint64_t)(O.warmup_s * 1e9)) {
		rtt_first = nrecv;
		rtt_tm = t;
	}
	if (rtt_first >= 0 && (nrecv - rtt_first >= O.calls ||
			       (O.seconds_set && t - rtt_tm >= (uint64_t)(O.seconds * 1e9)))) {
		rtt_end = nrecv;
		return;
	}
	if (nsent == O.cap)
		die("warm-up did not end within %ld calls", O.cap);
	sched[nsent] = now_ns();
	send_call(nsent++);
	flush_out(front);
}

static void
mode_rtt(void)
{
	uint64_t sum = 0;
	long n;
	const uint64_t *v;

	/* Room for the warm-up (which may run longer than its count) too. */
	O.cap = O.calls + O.warmup + 1000000;
	lat = xrealloc(NULL, (size_t)O.cap * sizeof(*lat));
	sched = xrealloc(NULL, (size_t)O.cap * sizeof(*sched));
	setup_call_pair();
	on_response = rtt_response;
	rtt_t0 = now_ns();
	if (O.warmup == 0 && O.warmup_s <= 0) {
		rtt_first = 0;
		rtt_tm = rtt_t0;
	}
	sched[0] = now_ns();
	send_call(nsent++);
	flush_out(front);
	while (rtt_end < 0 && front->state != S_DEAD && back->state != S_DEAD)
		poll_once(-1);
	check_no_errors();
	if (rtt_end < 0)
		die("connection lost after %ld calls", nrecv);
	n = rtt_end - rtt_first;
	for (long i = rtt_first; i < rtt_end; i++)
		sum += lat[i];
	qsort(lat + rtt_first, (size_t)n, sizeof(*lat), cmp_u64);
	v = lat + rtt_first;
	printf("calls=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f mean_us=%.1f max_us=%.1f", n,
	       pct_us(v, (size_t)n, 0.50), pct_us(v, (size_t)n, 0.99), pct_us(v, (size_t)n, 0.999),
	       (double)sum / (double)n / 1000.0, pct_us(v, (size_t)n, 1.0));
	print_idle();
	printf("\n");
}

/* ---- mode: open (fixed rate; latency from the scheduled send time) -------- */

static void
open_response(struct conn *c, const char *id, size_t idl, uint64_t t)
{
	long i = strtol(id, NULL, 10);

	(void)c;
	(void)idl;
	if (i < 0 || i >= nsent || lat[i])
		die("unexpected response id %ld", i);
	lat[i] = t - sched[i] + 1;
	nrecv++;
}

static void
mode_open(void)
{
	long total, measured, first, lost = 0;
	uint64_t period, t0, end, *v;
	size_t nv = 0;

	if (O.rate <= 0 || O.rate > 1e6)
		die("--rate must be in (0, 1e6]");
	period = (uint64_t)(1e9 / O.rate);
	first = (long)(O.warmup_s * O.rate);
	total = first + (long)(O.seconds * O.rate);
	lat = calloc((size_t)total, sizeof(*lat));
	late = calloc((size_t)total, sizeof(*late));
	sched = xrealloc(NULL, (size_t)total * sizeof(*sched));
	if (!lat || !late)
		die("out of memory");
	setup_call_pair();
	on_response = open_response;
	t0 = now_ns() + 1000000;
	for (long i = 0; i < total; i++)
		sched[i] = t0 + (uint64_t)i * period;
	/* Answers still missing 3 s after the last send count as lost. */
	end = sched[total - 1] + 3000000000u;
	for (;;) {
		uint64_t t = now_ns();
		bool any = false;

		while (nsent < total && sched[nsent] <= t) {
			late[nsent] = t - sched[nsent];
			send_call(nsent++);
			any = true;
		}
		if (any)
			flush_out(front);
		if (front->state == S_DEAD || back->state == S_DEAD)
			die("connection lost: %s", G.first_error);
		if (nrecv == total || t > end)
			break;
		poll_once(nsent < total ? (int64_t)(sched[nsent] - t) : (int64_t)(end - t));
	}
	check_no_errors();
	measured = total - first;
	v = xrealloc(NULL, (size_t)measured * sizeof(*v));
	for (long i = first; i < total; i++) {
		if (lat[i])
			v[nv++] = lat[i] - 1;
		else
			lost++;
	}
	/* A lost call counts as the slowest possible. */
	for (long i = 0; i < lost; i++)
		v[nv++] = UINT64_MAX / 2;
	qsort(v, nv, sizeof(*v), cmp_u64);
	/* How late the load generator itself sent (its own wake-up delay). */
	qsort(late + first, (size_t)measured, sizeof(*late), cmp_u64);
	printf("rate=%.0f calls=%ld lost=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f "
	       "max_us=%.1f send_late_p50_us=%.1f send_late_p99_us=%.1f",
	       O.rate, measured, lost, pct_us(v, nv, 0.50), pct_us(v, nv, 0.99),
	       pct_us(v, nv, 0.999), pct_us(v, nv, 1.0),
	       pct_us(late + first, (size_t)measured, 0.50),
	       pct_us(late + first, (size_t)measured, 0.99));
	print_idle();
	printf("\n");
}

/* ---- mode: fanout ---------------------------------------------------------- */

static unsigned char *ev_frame; /* one pre-masked event frame */
static size_t ev_frame_len;

static void
build_event_frame(void)
{
	unsigned char *payload = xrealloc(NULL, (size_t)O.size + 64);
	size_t n;

	if (G.proto == P_MQTT) {
		unsigned char *body = xrealloc(NULL, (size_t)O.size);
		memset(body, 'x', (size_t)O.size);
		n = mqtt_publish(payload, body, (size_t)O.size);
		free(body);
	} else {
		/* A JSON event of exactly --size bytes. */
		static const char pre[] = "{\"type\":\"event\",\"event\":\"bench\",\"data\":{\"p\":\"",
				  post[] = "\"}}";
		size_t pad = (size_t)O.size - (sizeof(pre) - 1) - (sizeof(post) - 1);
		memcpy(payload, pre, sizeof(pre) - 1);
		memset(payload + sizeof(pre) - 1, 'x', pad);
		memcpy(payload + sizeof(pre) - 1 + pad, post, sizeof(post) - 1);
		n = (size_t)O.size;
	}
	ev_frame = xrealloc(NULL, ws_frame_max(n));
	ev_frame_len = ws_frame(ev_frame, G.proto == P_MQTT ? 2 : 1, payload, n, G.mask_key);
	free(payload);
}

static struct conn **subs;
static long nsubs_active;

static uint64_t
min_received(void)
{
	uint64_t m = UINT64_MAX;

	for (long i = 0; i < nsubs_active; i++)
		if (subs[i]->nmsg < m)
			m = subs[i]->nmsg;
	return m;
}

static uint64_t
total_received(void)
{
	uint64_t s = 0;

	for (long i = 0; i < nsubs_active; i++)
		s += subs[i]->nmsg;
	return s;
}

static void
mode_fanout(void)
{
	struct conn *pub;
	long nsub = O.subs + (O.frozen ? 1 : 0), window;
	uint64_t sent = 0, t, t_start, t0 = 0, t1 = 0, d0 = 0, d1 = 0, last_progress,
			    last_min = 0, next_sample, t_end_max;
	int64_t c0 = -1, c1 = -1;
	long rss_first = -1, rss_mid = -1, rss_last = -1, rss_max = -1, nsamples = 0;
	char samples[4096];
	size_t slen = 0;
	bool timed = O.events == 0, measuring = false;

	window = O.window ? O.window : 256;
	if (G.proto != P_MQTT)
		snprintf(hello_extra, sizeof(hello_extra), ",\"subscribe\":[\"bench\"]");
	build_event_frame();
	wait_port(10000);
	subs = xrealloc(NULL, (size_t)nsub * sizeof(*subs));
	/* Open in bursts so the server's accept backlog never overflows. */
	for (long i = 0; i < nsub; i++) {
		subs[i] = conn_open(R_SUB, 65536);
		if (i % 200 == 199)
			wait_ready((int)i + 1, 20000);
	}
	wait_ready((int)nsub, 20000);
	pub = conn_open(R_PUB, 16384);
	wait_ready((int)nsub + 1, 10000);
	if (O.frozen) {
		/* The last subscriber stops reading for good. */
		subs[nsub - 1]->frozen = true;
		set_events(subs[nsub - 1]);
	}
	nsubs_active = O.subs;

	t_start = last_progress = now_ns();
	next_sample = t_start;
	t_end_max = t_start + (uint64_t)(O.max_seconds * 1e9);
	if (!timed) {
		t0 = t_start;
		c0 = proc_cpu_us(O.pid);
		measuring = true;
	}
	for (;;) {
		uint64_t m = min_received();

		t = now_ns();
		if (m != last_min) {
			last_min = m;
			last_progress = t;
		}
		if (pub->state == S_DEAD)
			die("publisher lost: %s", G.first_error);
		if (t - last_progress > 3000000000ull)
			die("no progress for 3 s (events dropped?): sent %llu, slowest subscriber "
			    "got %llu%s%s",
			    (unsigned long long)sent, (unsigned long long)m,
			    G.first_error[0] ? "; " : "", G.first_error);
		if (t > t_end_max)
			die("time limit reached");
		if (O.pid && t >= next_sample) {
			long rss = proc_rss_kb(O.pid);
			if (rss_first < 0)
				rss_first = rss;
			rss_last = rss;
			if (rss > rss_max)
				rss_max = rss;
			if (slen < sizeof(samples) - 16)
				slen += (size_t)snprintf(samples + slen, sizeof(samples) - slen,
							 "%s%ld", nsamples ? "," : "", rss);
			nsamples++;
			next_sample += (uint64_t)O.sample_ms * 1000000u;
		}
		if (timed) {
			if (!measuring && t - t_start >= (uint64_t)(O.warmup_s * 1e9)) {
				measuring = true;
				t0 = t;
				d0 = total_received();
				c0 = proc_cpu_us(O.pid);
			} else if (measuring && t - t0 >= (uint64_t)(O.seconds * 1e9)) {
				t1 = t;
				d1 = total_received();
				c1 = proc_cpu_us(O.pid);
				break;
			}
			if (measuring && rss_mid < 0 &&
			    t - t0 >= (uint64_t)(O.seconds * 0.5e9))
				rss_mid = proc_rss_kb(O.pid);
		} else if (m >= (uint64_t)O.events) {
			t1 = t;
			d1 = total_received();
			c1 = proc_cpu_us(O.pid);
			break;
		}
		/* Publish while every reading subscriber is within the window. */
		if (!pub->want_out) {
			uint64_t limit = m + (uint64_t)window;
			if (!timed && limit > (uint64_t)O.events)
				limit = (uint64_t)O.events;
			if (sent < limit) {
				uint64_t k = limit - sent;
				unsigned char *dst;
				if (k > 64)
					k = 64;
				dst = out_reserve(pub, (size_t)k * ev_frame_len);
				for (uint64_t i = 0; i < k; i++)
					memcpy(dst + i * ev_frame_len, ev_frame, ev_frame_len);
				sent += k;
				flush_out(pub);
			}
		}
		poll_once(pub->want_out || sent >= m + (uint64_t)window ? 10000000 : 0);
	}
	if (O.pid && rss_mid < 0)
		rss_mid = proc_rss_kb(O.pid);
	check_no_errors();
	{
		double secs = (double)(t1 - t0) / 1e9, del = (double)(d1 - d0);
		printf("subs=%ld size=%ld frozen=%d deliveries=%.0f seconds=%.3f "
		       "deliveries_per_s=%.0f cpu_us=%lld cpu_us_per_delivery=%.4f "
		       "rss_first_kb=%ld rss_mid_kb=%ld rss_last_kb=%ld rss_max_kb=%ld "
		       "events=%llu offered_to_frozen_kib=%.0f rss_samples_kb=%s\n",
		       O.subs, O.size, O.frozen ? 1 : 0, del, secs, del / secs,
		       (long long)(c1 - c0), c0 >= 0 && del > 0 ? (double)(c1 - c0) / del : -1.0,
		       rss_first, rss_mid, rss_last, rss_max, (unsigned long long)sent,
		       O.frozen ? (double)sent * (double)O.size / 1024.0 : 0.0,
		       slen ? samples : "-");
	}
}

/* ---- mode: idle ---------------------------------------------------------------- */

static void
mode_idle(void)
{
	long before, after;

	raise_nofile();
	wait_port(10000);
	sleep_ms(200);
	open_idle(O.conns, &before, &after);
	printf("conns=%ld ready=%d rss_before_kb=%ld rss_after_kb=%ld bytes_per_conn=%.0f\n",
	       O.conns, G.nready, before, after,
	       (double)(after - before) * 1024.0 / (double)G.nready);
}

/* ---- mode: floor (two TCP round trips of a C ping-pong) --------------------- */

static void
pingpong_server(int lfd)
{
	unsigned char buf[65536];
	struct epoll_event ev = { .events = EPOLLIN }, out;
	int fd = accept(lfd, NULL, NULL), ep = epoll_create1(0), one = 1;

	if (fd < 0 || ep < 0)
		_exit(1);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev.data.fd = fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	for (;;) {
		ssize_t n;
		if (epoll_wait(ep, &out, 1, -1) < 0 && errno != EINTR)
			_exit(1);
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0)
			_exit(0);
		if (n < 0)
			continue;
		if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			_exit(1);
	}
}

static void
mode_floor(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	long total = O.calls + O.warmup;
	int lfd, fd, ep, one = 1, status;
	pid_t child;
	unsigned char msg[65536], in[65536];
	struct epoll_event ev = { .events = EPOLLIN }, out;
	uint64_t sum = 0;
	size_t size = (size_t)O.size;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl))
		die("floor: cannot listen: %s", strerror(errno));
	child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0)
		pingpong_server(lfd);
	close(lfd);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("floor: connect: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ep = epoll_create1(0);
	ev.data.fd = fd;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	memset(msg, 'x', size);
	lat = xrealloc(NULL, (size_t)total * sizeof(*lat));
	for (long i = 0; i < total; i++) {
		uint64_t t = now_ns();
		for (int rt = 0; rt < 2; rt++) {
			size_t got = 0;
			if (send(fd, msg, size, MSG_NOSIGNAL) != (ssize_t)size)
				die("floor: send: %s", strerror(errno));
			while (got < size) {
				ssize_t n;
				if (epoll_wait(ep, &out, 1, 5000) <= 0)
					die("floor: no echo");
				n = recv(fd, in, sizeof(in), MSG_DONTWAIT);
				if (n <= 0 && errno != EAGAIN)
					die("floor: recv: %s", n ? strerror(errno) : "closed");
				if (n > 0)
					got += (size_t)n;
			}
		}
		lat[i] = now_ns() - t;
	}
	close(fd);
	waitpid(child, &status, 0);
	for (long i = O.warmup; i < total; i++)
		sum += lat[i];
	qsort(lat + O.warmup, (size_t)O.calls, sizeof(*lat), cmp_u64);
	printf("calls=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f mean_us=%.1f max_us=%.1f\n",
	       O.calls, pct_us(lat + O.warmup, (size_t)O.calls, 0.50),
	       pct_us(lat + O.warmup, (size_t)O.calls, 0.99),
	       pct_us(lat + O.warmup, (size_t)O.calls, 0.999),
	       (double)sum / (double)O.calls / 1000.0,
	       pct_us(lat + O.warmup, (size_t)O.calls, 1.0));
}

int
main(int argc, char **argv)
{
	parse_args(argc, argv);
	/* Wake up on time: the open loop sleeps until each call's send time. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)(O.max_seconds + 0.999));
	G.mask_key = (uint32_t)getpid() * 2654435761u | 1u;
	G.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (G.epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	if (strcmp(O.mode, "floor") && !G.port)
		die("--port is required");
	if (!strcmp(O.mode, "rtt"))
		mode_rtt();
	else if (!strcmp(O.mode, "open"))
		mode_open();
	else if (!strcmp(O.mode, "fanout"))
		mode_fanout();
	else if (!strcmp(O.mode, "idle"))
		mode_idle();
	else if (!strcmp(O.mode, "floor"))
		mode_floor();
	else
		usage();
	return 0;
}
