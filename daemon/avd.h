/*
 * avd.h - the one internal header of the avd daemon.
 *
 * Grouped by module, one banner per .c file.  Ownership words follow
 * jansson's documentation: "new" means the caller owns the result and must
 * free it, "borrowed" means the callee keeps ownership, "steals" means the
 * callee takes over the caller's reference.  Functions that can fail return
 * 0 or a negative errno-style value and put details into a caller-owned
 * struct avd_err.
 *
 * Everything here runs on the single event-loop thread; nothing is locked.
 */
#ifndef AVD_H
#define AVD_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AVD_SCHEMA_VERSION 1
#define AVD_SERVER_NAME "avd/" PACKAGE_VERSION

struct session;
struct call;

/* ===================================================================== */
/* util.c - allocation, time, small vectors                               */
/* ===================================================================== */

/* The struct of type T whose member m is at pointer p (timers, lists). */
#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

/* Allocate or abort: avd cannot do anything useful once malloc fails. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Monotonic milliseconds; tests may replace the source with clock_set_fake. */
uint64_t clock_ms(void);
/* Monotonic microseconds, for latencies (not faked). */
uint64_t clock_us(void);
/* Wall-clock milliseconds since the epoch, for "ts" fields people read. */
int64_t clock_wall_ms(void);
/* Make clock_ms return *fake (borrowed) instead of the real clock; NULL restores. */
void clock_set_fake(const uint64_t *fake);

/* A growable array of borrowed pointers; order is insertion order. */
struct ptrvec {
	void **v;
	uint32_t n, cap;
};
void ptrvec_push(struct ptrvec *pv, void *p);
/* Remove the first occurrence of p, keeping order; returns 1 if found. */
int ptrvec_remove(struct ptrvec *pv, const void *p);
void ptrvec_free(struct ptrvec *pv);

/* Decimal text of v into buf (at least 21 bytes, not terminated); returns
 * its length.  The hot paths use these instead of snprintf. */
size_t fmt_u64(char *buf, uint64_t v);
size_t fmt_i64(char *buf, int64_t v);

/* ===================================================================== */
/* map.c - string-keyed hash map of borrowed values                       */
/* ===================================================================== */

struct map;
/* New empty map. */
struct map *map_new(void);
/* Free the map itself; values are the caller's. */
void map_free(struct map *m);
/* Borrowed value for key, or NULL. */
void *map_get(const struct map *m, const char *key, size_t klen);
/* Insert or replace; the map copies the key. */
void map_set(struct map *m, const char *key, size_t klen, void *val);
/* Remove key; returns the old value or NULL. */
void *map_del(struct map *m, const char *key, size_t klen);
size_t map_count(const struct map *m);
/* Call fn for every entry; fn must not change the map. */
void map_each(const struct map *m,
	      void (*fn)(const char *key, void *val, void *arg), void *arg);

/* ===================================================================== */
/* timer.c - one min-heap of deadlines, driven by the event loop          */
/* ===================================================================== */

struct timer;
typedef void (*timer_fn)(struct timer *t);
struct timer {
	uint64_t due;  /* clock_ms() at which it fires */
	uint32_t slot; /* heap index + 1; 0 = not armed */
	timer_fn fn;
};

/* Arm (or re-arm) t to call fn after delay_ms. */
void timer_arm(struct timer *t, uint64_t delay_ms, timer_fn fn);
/* Disarm t; harmless when it is not armed. */
void timer_cancel(struct timer *t);
static inline bool timer_armed(const struct timer *t) { return t->slot != 0; }
/* Fire every timer due at clock_ms(); returns how many fired. */
int timer_run_due(void);
/* Milliseconds until the next deadline, or -1 when none is armed. */
int64_t timer_next_in(void);
/* Called whenever the earliest deadline changes (the loop re-schedules). */
void timer_set_wakeup(void (*fn)(void));
/* Drop every armed timer (shutdown and tests). */
void timer_reset(void);

/* ===================================================================== */
/* log.c - levelled one-line logging to stderr                            */
/* ===================================================================== */

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Parse "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
/* Parse "text|json"; returns 0 or -EINVAL. */
int log_parse_format(const char *s, enum log_format *out);
void log_set_level(enum log_level l);
/* Also notices whether stderr is the systemd journal. */
void log_set_format(enum log_format f);
enum log_level log_get_level(void);
void log_msg(enum log_level l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                   \
	do {                                                             \
		if (log_get_level() >= LOG_DEBUG)                        \
			log_msg(LOG_DEBUG, __VA_ARGS__);                 \
	} while (0)

/* ===================================================================== */
/* error.c - the structured errors of protocol section 9                  */
/* ===================================================================== */

enum avd_code {
	AVD_OK = 0,
	AVD_E_PARSE,
	AVD_E_INVALID_REQUEST,
	AVD_E_UNSUPPORTED_SCHEMA,
	AVD_E_UNAUTHORIZED,
	AVD_E_ENCODING,
	AVD_E_PAYLOAD_TOO_LARGE,
	AVD_E_METHOD_NOT_FOUND,
	AVD_E_ALREADY_REGISTERED,
	AVD_E_BACKEND_UNAVAILABLE,
	AVD_E_TIMEOUT,
	AVD_E_CANCELLED,
	AVD_E_QUEUE_FULL,
	AVD_E_EVENT_LOOP_CLOSED,
	AVD_E_SCRIPT_EXECUTION,
	AVD_E_WINDOW_OPERATION,
	AVD_E_BACKEND_ERROR,
	AVD_E_INTERNAL,
	AVD_E__COUNT
};

/* Details of a failure, filled by the callee, owned by the caller. */
struct avd_err {
	enum avd_code code;
	char message[240];
	json_t *data; /* new reference or NULL; freed by err_clear */
};

/* Wire code ("METHOD_NOT_FOUND") of c. */
const char *err_code_str(enum avd_code c);
/* Wire name ("MethodNotFound") of c. */
const char *err_name_str(enum avd_code c);
/* Fill e; steals data (may be NULL); returns -1 so callers can `return err_set(...)`. */
int err_set(struct avd_err *e, enum avd_code c, json_t *data, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Release e->data and reset e. */
void err_clear(struct avd_err *e);
/* New error object {code,name,message,data}; consumes e's data. */
json_t *err_to_json(struct avd_err *e);
/* New error object built directly; steals data. */
json_t *err_json(enum avd_code c, json_t *data, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ===================================================================== */
/* frame.c - refcounted serialized messages shared by all recipients      */
/* ===================================================================== */

/* Headroom before the payload for the transport's own header (LWS_PRE). */
#define FRAME_HEADROOM 16

struct frame {
	uint32_t refs;
	uint32_t len; /* JSON bytes, not counting the '\n' after them */
	/* FRAME_HEADROOM bytes, then len bytes of JSON, then '\n' */
	unsigned char mem[];
};

/* A frame being written piece by piece: frame_begin, frame_put*, frame_end. */
struct framebuf {
	struct frame *f;
	size_t cap; /* JSON bytes that fit before the next realloc */
};
/* Start a frame with room for hint bytes (it grows as needed). */
void frame_begin(struct framebuf *b, size_t hint);
/* Append n bytes of JSON text as they are. */
void frame_put(struct framebuf *b, const void *p, size_t n);
/* Append a string literal of JSON text. */
#define frame_put_lit(b, s) frame_put((b), "" s, sizeof(s) - 1)
/* Append s[0..n) (valid UTF-8) as a quoted, escaped JSON string. */
void frame_put_str(struct framebuf *b, const char *s, size_t n);
void frame_put_int(struct framebuf *b, int64_t v);
/* Append the compact JSON of j (borrowed). */
void frame_put_json(struct framebuf *b, const json_t *j);
/* The finished frame (new, refs = 1); b is spent. */
struct frame *frame_end(struct framebuf *b);
/* New frame holding the compact JSON of j (borrowed); refs = 1. */
struct frame *frame_from_json(const json_t *j);
/* New frame copying len bytes; refs = 1. */
struct frame *frame_from_bytes(const void *p, size_t len);
static inline unsigned char *frame_data(struct frame *f)
{
	return f->mem + FRAME_HEADROOM;
}
static inline struct frame *frame_ref(struct frame *f)
{
	f->refs++;
	return f;
}
/* Drop one reference; frees on the last. */
void frame_unref(struct frame *f);

/* ===================================================================== */
/* outq.c - per-session outbound queue with priority lanes                */
/* ===================================================================== */

/* Lanes in write order: control first, then responses, then events. */
enum lane { LANE_CONTROL, LANE_RESPONSE, LANE_EVENT, LANE__COUNT };

struct lane_ring {
	struct frame **v;
	uint32_t head, count, cap;
};

struct outq {
	struct lane_ring lane[LANE__COUNT];
	size_t bytes;      /* queued JSON bytes across lanes */
	size_t high_water; /* largest bytes ever queued */
	uint64_t dropped;  /* events dropped since the last avd:dropped */
};

/* Append f to lane, taking a new reference. */
void outq_push(struct outq *q, enum lane l, struct frame *f);
/* Borrowed next frame in lane order without removing it, or NULL. */
struct frame *outq_peek(const struct outq *q);
/* Remove the frame outq_peek returned; the caller gets its reference. */
struct frame *outq_pop(struct outq *q);
static inline bool outq_empty(const struct outq *q)
{
	return q->lane[0].count + q->lane[1].count + q->lane[2].count == 0;
}
/* Drop everything queued (session closing). */
void outq_clear(struct outq *q);

/* ===================================================================== */
/* utf8.c - text repair the wire needs                                    */
/* ===================================================================== */

/*
 * Repair every lone UTF-16 surrogate escape ("\ud83d" with no partner) in
 * the JSON text buf[0..*len).  A high half that ends a string value, or a
 * low half that starts one, becomes a delta marker (see delta.c) and
 * *marked is set; any other becomes "\ufffd".  Returns buf (repaired in
 * place) or a new buffer with *len updated, which the caller frees.
 */
char *utf8_fix_surrogates(char *buf, size_t *len, bool *marked);
/* True when p[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool utf8_valid(const unsigned char *p, size_t len);
/* Length of the longest prefix of p[0..len) that ends on a character
 * boundary, so a cut there never splits a sequence. */
size_t utf8_boundary(const unsigned char *p, size_t len);
/* New NUL-terminated copy of p[0..len) with every invalid sequence
 * replaced by U+FFFD; *out_len gets its length. */
char *utf8_repair(const unsigned char *p, size_t len, size_t *out_len);

/* ===================================================================== */
/* delta.c - whole characters across the deltas of a stream               */
/* ===================================================================== */

/*
 * The delta of one stream element, joined with the half held from the
 * previous one (*held, 0 = none): a marker for a low half at its start
 * completes the held character, a marker for a high half at its end is
 * stripped and held for the next delta, a held half that finds no partner
 * becomes U+FFFD in front.  Returns a new string.
 */
json_t *delta_join(const char *s, size_t len, uint16_t *held);
/* Replace every marker left in the string values under j with U+FFFD. */
void delta_scrub(json_t *j);
/* The string under data.delta of a stream element, or NULL (borrowed). */
json_t *delta_of(json_t *data);

/* ===================================================================== */
/* scan.c - a validating single pass over a JSON object                   */
/* ===================================================================== */

enum scan_type {
	SCAN_STRING,
	SCAN_NUMBER,
	SCAN_OBJECT,
	SCAN_ARRAY,
	SCAN_TRUE,
	SCAN_FALSE,
	SCAN_NULL,
};

/* One top-level member; both ranges are borrowed from the scanned text. */
struct scan_member {
	const char *key; /* the name's bytes, without quotes (never escaped) */
	size_t klen;
	const char *val; /* the value's JSON text; a string keeps its quotes */
	size_t vlen;
	enum scan_type type;
	bool escaped; /* a string value that holds backslash escapes */
};

/*
 * Check that text[0..len) is one JSON object jansson would read the same
 * way and that may be forwarded as it is, filling mem[0..max) with its
 * members in order.  Returns their count, or -1 when the text must go
 * through jansson instead (invalid, or something the scanner leaves to
 * jansson: see scan.c).
 */
int scan_object(const char *text, size_t len, struct scan_member *mem, int max);

/* ===================================================================== */
/* msg.c - decoding and validating one inbound message                    */
/* ===================================================================== */

enum msg_kind {
	MSG_CALL,
	MSG_RESPONSE,
	MSG_HELLO,
	MSG_READY,
	MSG_EVENT,
	MSG_CHUNK,
	MSG_CANCEL,
	MSG_ERROR,
};

/* A decoded message; every pointer is borrowed from root. */
struct msg {
	enum msg_kind kind;
	json_t *root; /* new reference, released by msg_free */
	json_t *id;   /* string or integer, or NULL */
	/* call */
	const char *method;
	json_t *params; /* never NULL for calls: absent = json null */
	bool has_timeout;
	int64_t timeout_ms;
	/* response */
	bool ok;
	json_t *result; /* ok */
	json_t *error;  /* !ok */
	/* hello */
	int64_t schema_version;
	const char *role, *name, *token;
	json_t *subscribe;
	/* ready */
	json_t *handlers;
	/* event */
	const char *event;
	json_t *data; /* event data/detail, chunk data; NULL = absent */
	json_t *to;
	bool echo;
	/* cancel */
	const char *reason;
	bool marked; /* strings may hold delta markers (see delta.c) */
	/*
	 * Calls, answers, chunks and events that scan.c accepted are not parsed: root
	 * is NULL, id is a new reference of msg's own, method and event point
	 * into the inbound buffer, and the payload (params, result or data) is
	 * its validated JSON text here, with the json_t pointer NULL until
	 * msg_parse_payload.
	 */
	bool fast;
	const char *payload;
	size_t payload_len;
};

/*
 * Parse and validate buf (modified in place by surrogate repair).  On
 * failure fills err (PARSE_ERROR, ENCODING or INVALID_REQUEST) and, when an
 * id could be read, sets *bad_id to a new reference so the caller can answer
 * as a response.
 */
int msg_decode(char *buf, size_t len, struct msg *m, struct avd_err *err,
	       json_t **bad_id);
void msg_free(struct msg *m);
/* Give a fast message's payload a jansson value (params, result or data),
 * for code that looks inside it; a no-op for other messages. */
void msg_parse_payload(struct msg *m);
/* Append the payload's JSON (params, result or data) to b. */
void msg_put_payload(struct framebuf *b, const struct msg *m);
/* True when s is a valid event name (1-255 bytes of [A-Za-z0-9_.:/-]). */
bool msg_valid_event_name(const char *s, size_t len);
/* Canonical string key of a call id (string or integer) into buf. */
int msg_id_key(const json_t *id, char *buf, size_t size);

/* ===================================================================== */
/* config.c - settings from defaults, config file and flags               */
/* ===================================================================== */

enum restart_policy { RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS };

/* One supervised backend as configured (--backend or "backends"). */
struct backend_conf {
	char *name, *command, *cwd; /* new; cwd may be NULL */
	json_t *env;                /* new object of strings, or NULL */
	uint32_t ready_timeout_ms;
	uint32_t restart_backoff_ms, restart_backoff_max_ms;
	uint32_t max_restarts;      /* within 60 s before giving up */
	enum restart_policy restart;
};

struct config {
	char *listen;
	int port;
	char *token; /* NULL with no_auth until generated */
	char *token_file;
	bool no_auth;
	bool allow_remote; /* permit a non-loopback --listen */
	struct ptrvec allow_origins; /* char *, new */
	char *ui_dir;
	char *client_dir; /* where avd.js and avd.global.js are served from */
	char *unix_path;  /* also listen on this unix socket, or NULL */
	char *config_file;
	uint32_t call_timeout_ms;
	uint32_t heartbeat_interval_ms;
	uint32_t heartbeat_timeout_ms;
	uint32_t hello_timeout_ms;
	size_t max_message_bytes;
	size_t max_queue_bytes;
	uint32_t max_pending_calls;
	uint32_t max_sessions;
	bool backend_fail_fast;
	enum log_level log_level;
	enum log_format log_format;
	struct ptrvec backends; /* struct backend_conf *, new */
};

/* Fill c with the built-in defaults. */
void config_defaults(struct config *c);
/*
 * Apply the config file named by --config (if any), then the flags.
 * Returns 0, 1 when the program should exit 0 (--help, --version, a valid
 * --check-config), -ECANCELED when it should exit 2 having said why, or
 * -EINVAL with err->message naming the problem.
 */
int config_parse_args(struct config *c, int argc, char **argv,
		      struct avd_err *err);
/* Apply one JSON config object (keys in snake_case); names the bad key. */
int config_apply_json(struct config *c, const json_t *obj, struct avd_err *err);
void config_free(struct config *c);
/* Parse one "backends" entry; new conf or NULL with err naming the key. */
struct backend_conf *config_backend_json(const json_t *obj, size_t index,
					 struct avd_err *err);
void config_backend_free(struct backend_conf *b);
/* Fall back to UI directories beside the binary when the installed ones
 * are missing. */
void config_locate_dirs(struct config *c);
/* New deep copy of b. */
struct backend_conf *config_backend_dup(const struct backend_conf *b);
bool config_backend_equal(const struct backend_conf *a, const struct backend_conf *b);
/* Print every problem of the config file at path to out; returns how many
 * (0 = valid). */
int config_check_file(const char *path, FILE *out);
/* New object of the settings clients see in welcome.config. */
json_t *config_client_json(const struct config *c);

/* ===================================================================== */
/* auth.c - token, runtime file, origin allow-list                        */
/* ===================================================================== */

/* Make a 128-bit random hex token into out[33]; returns 0 or -errno. */
int auth_make_token(char out[33]);
/* Constant-time comparison of a presented token with the configured one. */
bool auth_token_ok(const struct config *c, const char *presented);
/* Write token to $XDG_RUNTIME_DIR/avd/token (0600, dir 0700), and url beside it. */
int auth_write_runtime(const struct config *c, int port, struct avd_err *err);
/* Remove the runtime files written by auth_write_runtime. */
void auth_remove_runtime(void);
/* True when an Origin header value may open a WebSocket. */
bool auth_origin_ok(const struct config *c, int port, const char *origin);

/* ===================================================================== */
/* session.c - sessions and their pluggable transports                    */
/* ===================================================================== */

enum role { ROLE_FRONTEND, ROLE_BACKEND };
enum health { HEALTH_NONE, HEALTH_READY, HEALTH_ALIVE, HEALTH_UNHEALTHY };
enum sstate { SESSION_HELLO, SESSION_OPEN, SESSION_CLOSING };

/* What a session needs from the byte stream under it. */
struct transport_ops {
	const char *name; /* "ws", "stdio", "test" */
	/* Frames were queued: arrange to write them soon. */
	void (*kick)(struct session *s);
	/* Flush (unless discard) then close with code/reason; the transport
	 * calls session_gone once the peer is really gone. */
	void (*close)(struct session *s, int code, const char *reason,
		      bool discard);
	/* Optional: a message that could not be decoded.  Without it the peer
	 * gets the error; a child's stdout reports it to frontends instead. */
	void (*bad_input)(struct session *s, struct avd_err *err);
	/* Optional: the backend announced itself ready. */
	void (*ready)(struct session *s);
	/* Optional: its ready line was refused (err names why).  Without it
	 * the peer gets the error. */
	void (*ready_refused)(struct session *s, struct avd_err *err);
	/* The transport reports its peer's end itself (a child's exit), so
	 * session_gone publishes no "backend disconnected" error. */
	bool reports_exit;
};

struct session {
	char id[24]; /* "s17" */
	enum role role;
	enum sstate state;
	enum health health;
	char *name; /* new */
	const struct transport_ops *ops;
	void *tx;    /* borrowed transport handle (struct lws *, ...) */
	bool authed; /* token already proven (URL or no-auth) */
	struct outq q;
	uint64_t last_rx_ms;
	struct timer hello_timer;
	struct timer health_timer;
	uint64_t deliver_gen;      /* pubsub de-duplication stamp */
	struct ptrvec methods;     /* char *, new: methods this session owns */
	struct ptrvec subs;        /* char *, new: its subscription patterns */
	struct call *calls_out;    /* calls it made, list head */
	struct call *calls_in;     /* calls it must answer, list head */
	struct map *out_ids;       /* caller id key -> struct call, lazily */
	struct map *held_deltas;   /* event stream key -> held high half */
	bool announced;            /* backend_ready sent for the current methods */
	uint32_t pending_out;      /* calls it made still pending */
	uint32_t pending_in;
	struct session *prev, *next; /* hub.sessions list */
};

/* New session on transport ops/tx, registered with the hub. */
struct session *session_new(const struct transport_ops *ops, void *tx,
			    enum sstate state);
/* Queue f (borrowed; a reference is taken) in lane and kick the transport.
 * Events are dropped when over the queue limit; returns 1 when dropped. */
int session_send_frame(struct session *s, enum lane l, struct frame *f);
/* Serialize j (borrowed) and queue it. */
int session_send_json(struct session *s, enum lane l, const json_t *j);
/* Send a typed {"type":"error"} in the control lane; steals data. */
void session_send_error(struct session *s, enum avd_code c, json_t *data,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Send an error response {"id",ok:false,error}; error is stolen. */
void session_send_error_response(struct session *s, json_t *id, json_t *error);
/* Ask the transport to close; further sends are ignored. */
void session_close(struct session *s, int code, const char *reason,
		   bool discard);
/* The transport lost the peer: settle calls, drop state, free s. */
void session_gone(struct session *s);
/* Next frame to write (reference passed to caller), or NULL. */
struct frame *session_next_frame(struct session *s);
/* One inbound message from the transport (buf is modified). */
void session_on_message(struct session *s, char *buf, size_t len);
/* New open backend session that needs no hello (a supervised child). */
struct session *session_new_backend(const struct transport_ops *ops, void *tx,
				    const char *name);
/* Look a session up by its id ("s17"); borrowed or NULL. */
struct session *session_find(const char *id);
static inline bool session_is_backend(const struct session *s)
{
	return s->role == ROLE_BACKEND;
}
/* Wire name of a health state ("ready", "alive", "unhealthy"). */
const char *health_str(enum health h);

/* ===================================================================== */
/* hub.c - process-wide state and counters                                */
/* ===================================================================== */

/* Upper bounds (µs) of the call latency histogram; one more bucket is +Inf. */
#define LATENCY_BUCKETS 17
extern const uint64_t latency_bounds_us[LATENCY_BUCKETS];

struct stats {
	uint64_t calls_started, calls_completed, calls_failed, calls_timed_out;
	uint64_t calls_cancelled, late_answers;
	uint64_t events_published, events_delivered, events_dropped;
	uint64_t bytes_in, bytes_out, messages_in, messages_out;
	uint64_t sessions_opened, slow_consumers_closed, backend_restarts;
	uint64_t failed_by_code[AVD_E__COUNT];
	uint64_t latency[LATENCY_BUCKETS + 1]; /* answered calls, per bucket */
	uint64_t latency_sum_us, latency_count;
	size_t queue_high_water; /* the largest queue any session ever had */
};

struct hub {
	struct config *cfg; /* borrowed */
	struct session *sessions; /* list of every live session */
	struct map *by_id;        /* "s17" -> session */
	uint32_t nsessions, nfrontends, nbackends;
	uint64_t next_session, next_call, next_ping, deliver_gen;
	struct map *methods; /* method name -> owning session */
	struct map *calls;   /* "c17" -> call */
	struct stats st;
	bool shutting_down;
};

extern struct hub hub;

/* Set up the hub over cfg (borrowed). */
void hub_init(struct config *cfg);
/* Close every session (EVENT_LOOP_CLOSED to pending calls) and free. */
void hub_shutdown(void);
/* Free whatever is left (after the loop stopped). */
void hub_free(void);
/* Count one answered call that took us microseconds. */
void hub_record_latency(uint64_t us);

/* ===================================================================== */
/* metrics.c - the counters, as avd.stats JSON and as Prometheus text      */
/* ===================================================================== */

/* New object of every figure (avd.stats). */
json_t *metrics_json(void);
/* New NUL-terminated Prometheus text exposition; *len gets its length. */
char *metrics_text(size_t *len);

/* ===================================================================== */
/* router.c - methods, call routing, timeouts, cancel                     */
/* ===================================================================== */

/* Register all of names (array of strings, borrowed) to s, or none. */
int router_register(struct session *s, const json_t *names, struct avd_err *err);
/* Unregister names owned by s; new array of the names removed. */
json_t *router_unregister(struct session *s, const json_t *names);
/* Route a call message from s. */
void router_call(struct session *s, struct msg *m);
/* A response from s to a call avd forwarded to it. */
void router_response(struct session *s, struct msg *m);
/* A chunk from s for a call avd forwarded to it. */
void router_chunk(struct session *s, struct msg *m);
/* A cancel from s for one of its own calls. */
void router_cancel(struct session *s, struct msg *m);
/* Fail every call s must answer with code/reason (s stays). */
void router_fail_callee(struct session *s, enum avd_code code,
			const char *reason);
/* Settle all of s's calls because s is leaving. */
void router_session_gone(struct session *s);
/* Settle every call in the hub with EVENT_LOOP_CLOSED. */
void router_shutdown(void);
/* New array of the calls s is waiting for ({id, method, callee}). */
json_t *router_session_calls(const struct session *s);

/* ===================================================================== */
/* pubsub.c - subscriptions and fan-out                                   */
/* ===================================================================== */

/* Initialise and release the subscription index. */
void pubsub_init(void);
void pubsub_free(void);
/* Add patterns (array of strings, borrowed) for s; all-or-nothing. */
int pubsub_subscribe(struct session *s, const json_t *patterns,
		     struct avd_err *err);
/* Remove patterns for s (absent array = all of them). */
void pubsub_unsubscribe(struct session *s, const json_t *patterns);
/* New array of s's patterns. */
json_t *pubsub_list(const struct session *s);
/* An event message published by s. */
void pubsub_publish(struct session *s, struct msg *m);
/*
 * Publish a system event from avd (data steals; "from" absent).  When
 * to_frontends, every frontend gets it whether subscribed or not.
 */
void pubsub_system(const char *event, json_t *data, bool to_frontends);
/* Publish event to one session only (data steals). */
void pubsub_send_to(struct session *s, const char *event, json_t *data);
/* Drop every subscription of s. */
void pubsub_session_gone(struct session *s);

/* ===================================================================== */
/* health.c - heartbeats and fail-fast state of backends                  */
/* ===================================================================== */

/* s (a backend) sent something: it is alive. */
void health_on_rx(struct session *s);
/* s announced itself ready (ready message or registration). */
void health_on_ready(struct session *s);
/* Start watching backend s. */
void health_watch(struct session *s);
/* True when calls to s must fail fast. */
bool health_fail_fast(const struct session *s);
/* A response to one of avd's __ping__ calls. */
void health_on_pong(struct session *s, struct msg *m);
/* Send a late-joining frontend the present backend state. */
void health_greet(struct session *frontend);
/* New system-event data with backend/session/schema_version set. */
json_t *health_event_data(const struct session *s);

/* ===================================================================== */
/* builtin.c - the avd.* methods avd answers itself                       */
/* ===================================================================== */

/* True when method belongs to avd itself. */
bool builtin_is(const char *method);
/* Answer call m from s. */
void builtin_call(struct session *s, struct msg *m);

/* ===================================================================== */
/* http.c - static files and /healthz                                     */
/* ===================================================================== */

struct http_reply {
	int status;
	const char *content_type; /* borrowed static string */
	char *body;               /* new, or NULL when path is set */
	size_t body_len;
	char *path;               /* new: file to serve */
};

/* Decide the reply for GET uri (path part only, undecoded); token is the
 * one the request presented (query or Authorization header), or NULL. */
void http_route(const struct config *c, const char *uri, const char *token,
		struct http_reply *r);
void http_reply_free(struct http_reply *r);
/* Content type for a file name by its extension. */
const char *http_mime(const char *path);

/* ===================================================================== */
/* backend.c - supervised child processes and their stdio transport        */
/* ===================================================================== */

/* Spawn every configured backend. */
void backend_start_all(struct config *c);
/* SIGCHLD arrived: reap children and handle their exits. */
void backend_reap(void);
/* avd is stopping: no more restarts; running children are being stopped. */
void backend_shutdown(void);
/* How many children are still running. */
unsigned backend_running(void);
/* SIGKILL and reap whatever is left, blocking (last resort at exit). */
void backend_kill_all(void);
/* Free every backend (after the loop ended). */
void backend_free_all(void);
/* Make the running backends match confs (borrowed): start new names, stop
 * vanished ones, restart changed ones; names go into report's arrays
 * "started", "stopped", "restarted". */
void backend_reconcile(const struct ptrvec *confs, json_t *report);

/* ===================================================================== */
/* notify.c - service state for systemd (Type=notify)                      */
/* ===================================================================== */

/* Send state ("READY=1", "RELOADING=1", "STOPPING=1") when run by systemd. */
void notify_systemd(const char *state);

/* ===================================================================== */
/* reload.c - SIGHUP: read the configuration again, apply what can change  */
/* ===================================================================== */

/* Remember the command line, to parse it again on reload (borrowed). */
void reload_init(int argc, char **argv);
/* Re-read config file and flags into the running cfg; logs what changed
 * and what needs a restart. */
void reload_config(struct config *cfg);

/* ===================================================================== */
/* server.c - libwebsockets glue: the listener, WebSocket transport, loop */
/* ===================================================================== */

enum { FDW_READ = 1, FDW_WRITE = 2, FDW_CLOSED = 4 };
struct fdwatch;
/* Called on the loop when fd is readable, writable, or finally closed. */
typedef void (*fdwatch_fn)(struct fdwatch *w, int fd, int what, void *arg);
/* Watch fd (set non-blocking; the loop owns and closes it); NULL on error. */
struct fdwatch *server_fd_watch(int fd, fdwatch_fn fn, void *arg);
/* Ask for one FDW_WRITE callback when fd can take more bytes. */
void server_fd_want_write(struct fdwatch *w);
/* Stop watching and close fd; fn gets FDW_CLOSED, then w is freed. */
void server_fd_close(struct fdwatch *w);

/* Create the lws context and listener; 0 or -errno with err filled. */
int server_start(struct config *c, struct avd_err *err);
/* The port actually listened on. */
int server_port(void);
/* Run the loop until server_stop_requested() is set and drained. */
void server_run(void);
void server_destroy(void);

#endif
