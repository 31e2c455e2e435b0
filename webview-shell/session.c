/*
 * session.c - the window's own WebSocket session with avd.
 *
 * libsoup 3 on the GLib main loop, subprotocol avd.v1.  On connect the
 * shell says hello as frontend "window:LABEL", and once welcomed registers
 * window.LABEL.* with avd.register.  Calls for those methods go to the
 * pipeline; cancels too; __ping__ is answered here at once, because a
 * health probe must not wait behind a queue of scripts.
 *
 * When avd goes away the shell keeps its window and reconnects with a
 * backoff (250 ms doubling to 5 s, reset by a welcome), reading the url and
 * token files again each time so a restarted avd is found on its new port.
 *
 * Every connection has a generation number.  Calls remember the generation
 * they arrived on and answers for an older one are dropped: avd's call ids
 * ("c17") are only meaningful on the connection that carried them.
 */
#include <stdarg.h>
#include <string.h>

#include "shell.h"

#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 5000
#define SHUTDOWN_GRACE_MS 2000
#define REGISTER_ID "avd-shell:register"

static SoupSession *soup;		/* owned, for the program's life */
static SoupWebsocketConnection *ws;	/* owned ref; NULL when not connected */
static GCancellable *connecting;	/* owned; non-NULL while connecting */
static struct avd_address addr;		/* the address in use (owned strings) */
static guint generation;		/* bumped whenever a connection ends */
static gboolean welcomed;		/* hello answered on the current ws */
static gboolean ever_registered;	/* some connection got our methods */
static guint backoff_ms = BACKOFF_FIRST_MS;
static guint retry_source;
static gsize max_message_bytes = 1024 * 1024;
static char *last_problem;		/* last message logged, to log changes only */
static char *prefix;			/* "window.LABEL." (owned) */
static void (*shutdown_done)(void);	/* set once shutdown began */
static guint shutdown_timer;

static void connect_now(void);

/* json-glib copies strings; this frees the one we built (value owned). */
static void
set_owned_string(JsonObject *o, const char *member, char *value)
{
	json_object_set_string_member(o, member, value);
	g_free(value);
}

static gboolean
retry_cb(gpointer unused)
{
	retry_source = 0;
	connect_now();
	return G_SOURCE_REMOVE;
}

/* Log a problem once; repeats (every reconnect attempt) stay quiet. */
static void
problem(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void
problem(const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (g_strcmp0(msg, last_problem)) {
		g_printerr(SHELL_NAME ": %s\n", msg);
		g_free(last_problem);
		last_problem = msg;
	} else {
		g_free(msg);
	}
}

static void
schedule_retry(void)
{
	if (shutdown_done || retry_source)
		return;
	retry_source = g_timeout_add(backoff_ms, retry_cb, NULL);
	backoff_ms = MIN(backoff_ms * 2, BACKOFF_MAX_MS);
}

static void
send_object(JsonObject *o /* owned */)
{
	JsonNode *root = json_node_new(JSON_NODE_OBJECT);
	char *text;

	json_node_take_object(root, o);
	text = proto_to_string(root);
	if (ws && soup_websocket_connection_get_state(ws) == SOUP_WEBSOCKET_STATE_OPEN)
		soup_websocket_connection_send_text(ws, text);
	g_free(text);
	json_node_unref(root);
}

gboolean
session_send_text(guint gen, const char *text)
{
	if (!ws || !welcomed || gen != generation ||
	    soup_websocket_connection_get_state(ws) != SOUP_WEBSOCKET_STATE_OPEN)
		return FALSE;
	soup_websocket_connection_send_text(ws, text);
	return TRUE;
}

gsize
session_max_message_bytes(void)
{
	return max_message_bytes;
}

void
session_emit(const char *name, JsonObject *data)
{
	JsonObject *o;

	if (!ws || !welcomed) {
		/* Nobody to tell; avd has no history to replay either. */
		if (data)
			json_object_unref(data);
		return;
	}
	o = json_object_new();
	json_object_set_string_member(o, "type", "event");
	set_owned_string(o, "event", g_strconcat(prefix, name, NULL));
	json_object_set_object_member(o, "data", data ? data : json_object_new());
	send_object(o);
}

/* ---- incoming ------------------------------------------------------------ */

static void
send_register(void)
{
	JsonObject *o = json_object_new(), *params = json_object_new();
	JsonArray *methods = json_array_new();
	char **names = pipeline_method_names(opts.label);

	for (char **n = names; *n; n++)
		json_array_add_string_element(methods, *n);
	g_strfreev(names);
	json_object_set_array_member(params, "methods", methods);
	json_object_set_string_member(o, "id", REGISTER_ID);
	json_object_set_string_member(o, "method", "avd.register");
	json_object_set_object_member(o, "params", params);
	send_object(o);
}

static void
on_welcome(JsonObject *msg)
{
	JsonNode *cfg = json_object_get_member(msg, "config");
	const char *sid = proto_get_string(msg, "session");

	if (cfg && JSON_NODE_HOLDS_OBJECT(cfg)) {
		JsonObject *c = json_node_get_object(cfg);
		if (json_object_has_member(c, "maxMessageBytes")) {
			gint64 v = json_object_get_int_member(c, "maxMessageBytes");
			if (v > 0)
				max_message_bytes = (gsize)v;
		}
	}
	welcomed = TRUE;
	backoff_ms = BACKOFF_FIRST_MS;
	g_clear_pointer(&last_problem, g_free);
	g_printerr(SHELL_NAME ": connected to avd at %s as window:%s (session %s)\n",
		   addr.ws_url, opts.label, sid ? sid : "?");
	send_register();
	window_avd_connected();
}

static void
on_register_answer(JsonObject *msg)
{
	JsonNode *err = json_object_get_member(msg, "error");
	JsonObject *e;
	const char *code;

	if (!err || !JSON_NODE_HOLDS_OBJECT(err)) {
		ever_registered = TRUE;
		window_announce();
		return;
	}
	e = json_node_get_object(err);
	code = proto_get_string(e, "code");
	if (!g_strcmp0(code, "ALREADY_REGISTERED") && !ever_registered) {
		/* Another live window already has this label: two windows
		 * cannot share one set of method names. */
		JsonNode *data = json_object_get_member(e, "data");
		const char *owner = data && JSON_NODE_HOLDS_OBJECT(data)
					    ? proto_get_string(json_node_get_object(data), "owner_name")
					    : NULL;
		g_printerr(SHELL_NAME ": window label \"%s\" is taken by %s; choose another with --label\n",
			   opts.label, owner ? owner : "another session");
		shell_quit(1);
		return;
	}
	/* After a reconnect our old session may not be gone from avd yet:
	 * drop this connection and try again shortly. */
	problem("avd refused our methods (%s: %s); retrying", code ? code : "?",
		proto_get_string(e, "message") ? proto_get_string(e, "message") : "");
	soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_NORMAL, "retry registration");
}

static void
answer_ping(JsonObject *msg)
{
	JsonObject *result = json_object_new();
	JsonNode *rnode = json_node_new(JSON_NODE_OBJECT);
	char *text;

	json_object_set_string_member(result, "status", "pong");
	json_object_set_int_member(result, "schema_version", 1);
	json_object_set_int_member(result, "ts", g_get_real_time() / 1000);
	json_node_take_object(rnode, result);
	text = proto_response_ok(json_object_get_member(msg, "id"), rnode);
	session_send_text(generation, text);
	g_free(text);
}

static void
on_call(JsonObject *msg, const char *method)
{
	JsonNode *id = json_object_get_member(msg, "id");

	if (!strcmp(method, "__ping__")) {
		answer_ping(msg);
	} else if (g_str_has_prefix(method, prefix)) {
		pipeline_submit(msg, method + strlen(prefix), generation);
	} else {
		JsonObject *data = json_object_new();
		char *text;
		json_object_set_string_member(data, "method", method);
		text = proto_response_error(id, proto_error("METHOD_NOT_FOUND", "MethodNotFound",
							    "this window does not offer that method",
							    data));
		session_send_text(generation, text);
		g_free(text);
	}
}

static void
on_message(SoupWebsocketConnection *conn, gint type, GBytes *message, gpointer unused)
{
	JsonParser *parser;
	JsonNode *root, *idn;
	JsonObject *msg;
	const char *t, *method;
	gsize len;
	const char *data = g_bytes_get_data(message, &len);
	GError *err = NULL;

	if (conn != ws || type != SOUP_WEBSOCKET_DATA_TEXT)
		return;
	parser = json_parser_new_immutable();
	if (!json_parser_load_from_data(parser, data, (gssize)len, &err)) {
		g_printerr(SHELL_NAME ": unreadable message from avd: %s\n", err->message);
		g_error_free(err);
		g_object_unref(parser);
		return;
	}
	root = json_parser_get_root(parser);
	if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
		g_object_unref(parser);
		return;
	}
	msg = json_node_get_object(root);
	t = proto_get_string(msg, "type");
	method = proto_get_string(msg, "method");
	idn = json_object_get_member(msg, "id");

	if (!g_strcmp0(t, "welcome")) {
		on_welcome(msg);
	} else if (!g_strcmp0(t, "cancel")) {
		if (idn && JSON_NODE_HOLDS_VALUE(idn)) {
			char *key = json_node_get_value_type(idn) == G_TYPE_STRING
					    ? g_strdup(json_node_get_string(idn))
					    : proto_to_string(idn);
			pipeline_cancel(key);
			g_free(key);
		}
	} else if (!g_strcmp0(t, "error")) {
		JsonNode *e = json_object_get_member(msg, "error");
		JsonObject *eo = e && JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
		const char *code = proto_get_string(eo, "code");
		if (!g_strcmp0(code, "UNAUTHORIZED"))
			problem("avd at %s refused the token%s; retrying", addr.ws_url,
				addr.token ? "" : " (none found: pass --token or set AVD_TOKEN)");
		else
			problem("avd says %s: %s", code ? code : "error",
				proto_get_string(eo, "message") ? proto_get_string(eo, "message") : "");
	} else if (method && idn && (!t || !strcmp(t, "call"))) {
		if (welcomed)
			on_call(msg, method);
	} else if (idn && !t && JSON_NODE_HOLDS_VALUE(idn) &&
		   json_node_get_value_type(idn) == G_TYPE_STRING &&
		   !strcmp(json_node_get_string(idn), REGISTER_ID)) {
		on_register_answer(msg);
	}
	/* Events (backend_ready and friends) are of no interest to a window. */
	g_object_unref(parser);
}

static void
finish_shutdown(void)
{
	void (*done)(void) = shutdown_done;

	if (shutdown_timer) {
		g_source_remove(shutdown_timer);
		shutdown_timer = 0;
	}
	shutdown_done = NULL;
	if (done)
		done();
}

static void
on_closed(SoupWebsocketConnection *conn, gpointer unused)
{
	gboolean was_welcomed = welcomed;

	if (conn != ws)
		return;
	g_clear_object(&ws);
	welcomed = FALSE;
	generation++;
	/* avd has already failed every call it forwarded to us with
	 * BACKEND_UNAVAILABLE; nobody is waiting for these answers. */
	pipeline_drop_all();
	if (shutdown_done) {
		finish_shutdown();
		return;
	}
	if (was_welcomed)
		problem("lost the connection to avd; reconnecting");
	schedule_retry();
}

static void
on_connected(GObject *source, GAsyncResult *res, gpointer unused)
{
	GError *err = NULL;
	SoupWebsocketConnection *conn =
		soup_session_websocket_connect_finish(SOUP_SESSION(source), res, &err);
	JsonObject *hello;

	g_clear_object(&connecting);
	if (!conn) {
		if (shutdown_done) {
			finish_shutdown();
		} else {
			problem("cannot reach avd at %s (%s): %s; retrying", addr.ws_url,
				addr.source, err->message);
			schedule_retry();
		}
		g_error_free(err);
		return;
	}
	if (shutdown_done) {
		soup_websocket_connection_close(conn, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
		g_object_unref(conn);
		finish_shutdown();
		return;
	}
	ws = conn; /* the reference from _finish is ours */
	/* libsoup drops the connection on messages over 128 KiB by default;
	 * load_html documents are often bigger.  avd bounds what it sends. */
	soup_websocket_connection_set_max_incoming_payload_size(ws, 0);
	g_signal_connect(ws, "message", G_CALLBACK(on_message), NULL);
	g_signal_connect(ws, "closed", G_CALLBACK(on_closed), NULL);

	hello = json_object_new();
	json_object_set_string_member(hello, "type", "hello");
	json_object_set_int_member(hello, "schema_version", 1);
	json_object_set_string_member(hello, "role", "frontend");
	set_owned_string(hello, "name", g_strconcat("window:", opts.label, NULL));
	if (addr.token)
		json_object_set_string_member(hello, "token", addr.token);
	send_object(hello);
}

static void
connect_now(void)
{
	struct avd_address fresh;
	char *err = NULL;
	char *protocols[] = { "avd.v1", NULL };
	SoupMessage *msg;

	if (shutdown_done || ws || connecting)
		return;
	if (!address_resolve(&fresh, &err)) {
		problem("%s; retrying", err);
		g_free(err);
		schedule_retry();
		return;
	}
	if (!address_equal(&fresh, &addr)) {
		address_clear(&addr);
		addr = fresh;
		window_set_address(&addr);
	} else {
		address_clear(&fresh);
	}
	msg = soup_message_new(SOUP_METHOD_GET, addr.ws_url);
	if (!msg) {
		problem("cannot use avd address %s; retrying", addr.ws_url);
		schedule_retry();
		return;
	}
	connecting = g_cancellable_new();
	soup_session_websocket_connect_async(soup, msg, NULL, protocols, G_PRIORITY_DEFAULT,
					     connecting, on_connected, NULL);
	g_object_unref(msg);
}

void
session_start(const struct avd_address *first)
{
	soup = soup_session_new();
	/* avd is on loopback: never send its token through a proxy. */
	soup_session_set_proxy_resolver(soup, NULL);
	soup_session_set_timeout(soup, 0);
	prefix = g_strdup_printf("window.%s.", opts.label);
	addr.ws_url = g_strdup(first->ws_url);
	addr.token = g_strdup(first->token);
	addr.http_origin = g_strdup(first->http_origin);
	addr.alt_origin = g_strdup(first->alt_origin);
	addr.source = first->source;
	connect_now();
}

static gboolean
shutdown_timeout(gpointer unused)
{
	shutdown_timer = 0;
	finish_shutdown();
	return G_SOURCE_REMOVE;
}

void
session_shutdown(void (*done)(void))
{
	if (shutdown_done)
		return;
	shutdown_done = done;
	if (retry_source) {
		g_source_remove(retry_source);
		retry_source = 0;
	}
	if (connecting) {
		g_cancellable_cancel(connecting);
	}
	if (ws && soup_websocket_connection_get_state(ws) == SOUP_WEBSOCKET_STATE_OPEN) {
		/* A normal close is queued behind the messages not yet written
		 * (the closed event, the close call's answer), so they go out
		 * first; "closed" fires when avd answers the close. */
		soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_NORMAL, "window closed");
		shutdown_timer = g_timeout_add(SHUTDOWN_GRACE_MS, shutdown_timeout, NULL);
	} else if (connecting) {
		shutdown_timer = g_timeout_add(SHUTDOWN_GRACE_MS, shutdown_timeout, NULL);
	} else {
		shutdown_timer = g_idle_add(shutdown_timeout, NULL);
	}
}
