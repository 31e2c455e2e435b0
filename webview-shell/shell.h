/*
 * shell.h - the pieces of avd-shell and how they talk to each other.
 *
 * avd-shell is one GTK window with a WebKit view, driven through avd:
 *
 *   main.c      options, where avd is, start-up and orderly shutdown
 *   address.c   finding avd's WebSocket address and token (flags, env, files)
 *   session.c   the WebSocket session with avd (hello, register, reconnect)
 *   pipeline.c  incoming calls, queued by priority and run one at a time
 *   window.c    the GTK window and WebKit view: operations and events
 *   protocol.c  building the JSON messages of the wire protocol
 *
 * Everything runs on the one GLib main loop: no threads, no locks.
 *
 * Ownership convention used in every file: a parameter documented as
 * "owned" or "(transfer full)" is freed by the callee; anything else is
 * borrowed for the duration of the call only.
 */
#ifndef AVD_SHELL_H
#define AVD_SHELL_H

#include <gtk/gtk.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <webkit2/webkit2.h>

#define SHELL_NAME "avd-shell"
#define SHELL_VERSION "0.1.0"

/* ---- options (main.c) --------------------------------------------------- */

struct shell_options {
	char *page_url;	       /* --url; NULL = avd's own page */
	char *label;	       /* --label; "main" when not given */
	char *title;	       /* --title; NULL = follow the page's title */
	int width, height;     /* --width/--height, initial size */
	gboolean devtools;     /* --devtools: inspector enabled and opened */
	gboolean hidden;       /* --hidden: start unmapped */
	gboolean keep_running; /* --keep-running: closing only hides */
	char *avd_url;	       /* --avd-url, beats AVD_URL and the url file */
	char *token;	       /* --token, beats AVD_TOKEN and the token file */
	char **trust_origins;  /* --trust-origin (repeatable), may be NULL */
};

/* All globals of the program live in main.c; the options never change after
 * start-up, so the other files read them directly. */
extern struct shell_options opts;

/* Begin an orderly exit with this status: pending calls are answered, the
 * session is closed cleanly, then the main loop stops.  Safe to call more
 * than once (the first status wins). */
void shell_quit(int status);
gboolean shell_quitting(void);

/* ---- address.c ------------------------------------------------------------ */

struct avd_address {
	char *ws_url;	   /* ws://127.0.0.1:7700/ws (owned) */
	char *token;	   /* may be NULL: avd --no-auth (owned) */
	char *http_origin; /* http://127.0.0.1:7700, derived from ws_url (owned) */
	char *alt_origin;  /* the same port under the other loopback name, or NULL */
	const char *source; /* where ws_url came from, for messages (static) */
};

/* Fill *a from --avd-url/--token, AVD_URL/AVD_TOKEN, then the files
 * avd writes ($XDG_RUNTIME_DIR/avd/{url,token}, else /tmp/avd-$UID/).
 * Returns FALSE with *err set (owned by the caller) when no usable address
 * is found.  Call again to pick up a restarted avd. */
gboolean address_resolve(struct avd_address *a, char **err);
void address_clear(struct avd_address *a);
gboolean address_equal(const struct avd_address *a, const struct avd_address *b);

/* ---- protocol.c ----------------------------------------------------------- */

/* Serialise node (borrowed) compactly; the string is owned by the caller. */
char *proto_to_string(JsonNode *node);

/* Build {"code","name","message","data"}; data is owned (may be NULL). */
JsonObject *proto_error(const char *code, const char *name, const char *message,
			JsonObject *data);

/* The text of a response; id borrowed, result/error owned (either NULL). */
char *proto_response_ok(JsonNode *id, JsonNode *result);
char *proto_response_ok_raw(JsonNode *id, const char *result_json);
char *proto_response_error(JsonNode *id, JsonObject *error);

/* The first max_chars characters of s (UTF-8), never cutting one (owned). */
char *proto_preview(const char *s, glong max_chars);

/* The string member of o, or NULL when absent or not a string; o may be
 * NULL.  Borrowed from o. */
const char *proto_get_string(JsonObject *o, const char *member);

/* ---- pipeline.c ------------------------------------------------------------ */

/* Lanes in priority order: a lower number is always served first. */
enum lane {
	LANE_CLOSE,
	LANE_NAVIGATION,
	LANE_SCRIPT,
	LANE_STATE,
	LANE_COUNT
};

enum op {
	OP_CLOSE,
	OP_LOAD_URL,
	OP_LOAD_HTML,
	OP_RELOAD,
	OP_STOP,
	OP_EVAL_JS,
	OP_SET_VISIBLE,
	OP_SET_TITLE,
	OP_RESIZE,
	OP_COUNT
};

/* One call from avd to this window, from arrival to its answer. */
struct call {
	JsonNode *id;	    /* avd's id for it ("c17" or 17), owned */
	char *key;	    /* id as text, to match cancels, owned */
	enum op op;
	JsonObject *params; /* owned reference; NULL when absent or not an object */
	gboolean params_bad; /* params present but not an object */
	guint generation;   /* session generation it arrived on */
	GCancellable *cancellable; /* owned; cancelled on cancel or shutdown */
	gboolean cancelled; /* avd withdrew it: answer nothing */
	gboolean replied;   /* answered already (shutdown answered it early) */
	gint64 arrived_us;  /* g_get_monotonic_time() at arrival */
};

const char *pipeline_op_name(enum op op);
/* Every method name this window offers, NULL-terminated, owned by caller
 * (g_strfreev). */
char **pipeline_method_names(const char *label);

/* A call arrived: msg is the call object (borrowed).  Unknown methods are
 * answered at once; known ones are queued in their lane. */
void pipeline_submit(JsonObject *msg, const char *method_suffix, guint generation);
/* avd withdrew a call (timeout, caller cancelled or gone). */
void pipeline_cancel(const char *key);
/* The session went away: nobody can receive answers, drop everything. */
void pipeline_drop_all(void);
/* The window is gone: answer everything still waiting with an error. */
void pipeline_fail_all(const char *why);

/* Answer a call and release it; exactly one of these per dispatched call.
 * result / error are owned; NULL result means JSON null. */
void call_reply_ok(struct call *c, JsonNode *result);
void call_reply_raw(struct call *c, const char *result_json);
void call_reply_error(struct call *c, JsonObject *error);
/* WINDOW_OPERATION with data.operation = this call's operation. */
void call_reply_window_error(struct call *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* ---- window.c ---------------------------------------------------------------- */

/* Create the window and load the first page; addr is borrowed. */
void window_create(const struct avd_address *addr);
/* avd moved (restart on another port or token): re-inject for new pages. */
void window_set_address(const struct avd_address *addr);
/* Run one call (ownership of c passes to window.c until it replies). */
void window_dispatch(struct call *c);
/* Close as if the user had: events, then destroy (or hide with
 * --keep-running unless force). */
void window_close(gboolean force);
gboolean window_alive(void);
/* The session was welcomed by avd. */
void window_avd_connected(void);
/* Our methods are registered: emit window.LABEL.ready with the state. */
void window_announce(void);

/* ---- session.c ---------------------------------------------------------------- */

void session_start(const struct avd_address *addr);
/* Events: name is the part after "window.LABEL."; data owned (NULL = {}). */
void session_emit(const char *name, JsonObject *data);
/* Send a ready-made message text if the session of generation gen is
 * still the live one; returns FALSE when dropped. */
gboolean session_send_text(guint generation, const char *text);
/* avd's max_message_bytes from welcome (default 1 MiB). */
gsize session_max_message_bytes(void);
/* Close the session cleanly, then call done (at most ~2 s later). */
void session_shutdown(void (*done)(void));

#endif
