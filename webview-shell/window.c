/*
 * window.c - the GTK window and its WebKit view: operations and events.
 *
 * Operations come from the pipeline one at a time (window_dispatch); each
 * is answered through call_reply_*() exactly once.  All but eval_js finish
 * before dispatch returns; eval_js answers from WebKit's callback.
 *
 * Events go to avd as window.LABEL.NAME:
 *   shown, hidden            the window was mapped / unmapped
 *   focused, blurred         the toplevel became active / inactive
 *   resized {width,height}   its size changed (deduplicated)
 *   load_started {url}       a navigation began
 *   load_finished {url}      it ended (also after a failure)
 *   load_failed {url,message} it failed
 *   closing, closed          around a close, whoever asked for it
 *   web_process_crashed {reason} the page's process died
 *   ready {url,title,visible,width,height} our methods are registered
 *                            (after every (re)connect: events from while
 *                            the session was down are lost, this is the
 *                            state instead)
 *
 * The page gets avd's address and token from a user script that runs at
 * document start, but only in documents whose origin is avd's own (or one
 * given with --trust-origin): a page from elsewhere never sees the token.
 *
 * Ownership: `win` is owned by GTK's list of toplevels (NULL once it is
 * destroyed); `view` is owned by `win`; `ucm` holds a reference of ours so
 * scripts can be swapped when avd moves.
 */
#include <string.h>

#include "shell.h"

static GtkWidget *win;
static WebKitWebView *view;
static WebKitUserContentManager *ucm;
static char *default_base;   /* avd's page, base of load_html (owned) */
static char *fallback_title; /* shown when the page has no title (owned) */
static gboolean title_pinned; /* --title given: the page may not retitle */
static gboolean closing;      /* destroy under way: no more events but closed */
static int last_w, last_h;    /* last size reported in a resized event */
static gboolean first_page_pending = TRUE; /* the start page has not loaded yet */
static gboolean first_page_failed; /* ... because avd was not up yet */
static gboolean web_process_gone; /* crashed, and no load since */

/* ---- helpers -------------------------------------------------------------- */

static JsonObject *
obj_with_string(const char *key, const char *value)
{
	JsonObject *o = json_object_new();

	if (value)
		json_object_set_string_member(o, key, value);
	else
		json_object_set_null_member(o, key);
	return o;
}

static JsonNode *
node_from(JsonObject *o /* owned */)
{
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);

	json_node_take_object(n, o);
	return n;
}

static void
emit(const char *name, JsonObject *data /* owned, may be NULL */)
{
	if (closing && strcmp(name, "closed")) {
		if (data)
			json_object_unref(data);
		return;
	}
	session_emit(name, data);
}

/* The user script that hands avd's address to the page (owned).
 *
 * It installs window.__AVD__ and window.__AURORAVIEW_CONFIG__ as accessor
 * properties, so a page that later assigns its own config object (the
 * usual AuroraView pattern: `window.__AURORAVIEW_CONFIG__ = {callTimeoutMs:
 * 5000}`) gets url and token merged in instead of losing them.  Keys the
 * page sets itself win. */
static char *
inject_source(const struct avd_address *a)
{
	JsonObject *cfg = obj_with_string("url", a->ws_url);
	JsonArray *trusted = json_array_new();
	JsonNode *cfgn, *trustedn;
	char *cfgtext, *trustedtext, *src;

	if (a->token)
		json_object_set_string_member(cfg, "token", a->token);
	else
		json_object_set_null_member(cfg, "token");
	json_array_add_string_element(trusted, a->http_origin);
	if (a->alt_origin)
		json_array_add_string_element(trusted, a->alt_origin);
	for (char **o = opts.trust_origins; o && *o; o++)
		json_array_add_string_element(trusted, *o);

	cfgn = node_from(cfg);
	trustedn = json_node_new(JSON_NODE_ARRAY);
	json_node_take_array(trustedn, trusted);
	cfgtext = proto_to_string(cfgn);
	trustedtext = proto_to_string(trustedn);
	src = g_strdup_printf(
		"(function () {\n"
		"  var cfg = %s, trusted = %s;\n"
		"  if (trusted.indexOf(window.location.origin) < 0) return;\n"
		"  function merge(v) {\n"
		"    if (v === undefined) v = {};\n"
		"    if (v === null || typeof v !== 'object') return v;\n"
		"    if (v.url === undefined) v.url = cfg.url;\n"
		"    if (v.token === undefined) v.token = cfg.token;\n"
		"    return v;\n"
		"  }\n"
		"  ['__AVD__', '__AURORAVIEW_CONFIG__'].forEach(function (name) {\n"
		"    var value = merge(window[name]);\n"
		"    try {\n"
		"      Object.defineProperty(window, name, { configurable: true, enumerable: true,\n"
		"        get: function () { return value; },\n"
		"        set: function (v) { value = merge(v); } });\n"
		"    } catch (e) { window[name] = value; }\n"
		"  });\n"
		"})();\n",
		cfgtext, trustedtext);
	g_free(cfgtext);
	g_free(trustedtext);
	json_node_unref(cfgn);
	json_node_unref(trustedn);
	return src;
}

void
window_set_address(const struct avd_address *a)
{
	char *src;
	WebKitUserScript *script;

	g_free(default_base);
	default_base = g_strconcat(a->http_origin, "/", NULL);
	if (!ucm)
		return;
	src = inject_source(a);
	script = webkit_user_script_new(src, WEBKIT_USER_CONTENT_INJECT_TOP_FRAME,
					WEBKIT_USER_SCRIPT_INJECT_AT_DOCUMENT_START, NULL, NULL);
	/* Documents already loaded keep the values they were given. */
	webkit_user_content_manager_remove_all_scripts(ucm);
	webkit_user_content_manager_add_script(ucm, script);
	webkit_user_script_unref(script);
	g_free(src);
}

/* The session reached avd.  A shell started together with avd may have
 * asked for avd's page before avd listened: try that page once more. */
void
window_avd_connected(void)
{
	if (!first_page_failed || !view)
		return;
	first_page_failed = FALSE;
	webkit_web_view_load_uri(view, default_base);
}

void
window_announce(void)
{
	JsonObject *data;
	int w = 0, h = 0;

	if (!window_alive())
		return;
	data = obj_with_string("url", webkit_web_view_get_uri(view));
	json_object_set_string_member(data, "title", gtk_window_get_title(GTK_WINDOW(win)));
	json_object_set_boolean_member(data, "visible", gtk_widget_get_visible(win));
	gtk_window_get_size(GTK_WINDOW(win), &w, &h);
	json_object_set_int_member(data, "width", w);
	json_object_set_int_member(data, "height", h);
	emit("ready", data);
}

gboolean
window_alive(void)
{
	return win != NULL && !closing;
}

/* ---- events ----------------------------------------------------------------- */

static void
on_map(GtkWidget *w, gpointer unused)
{
	emit("shown", NULL);
}

static void
on_unmap(GtkWidget *w, gpointer unused)
{
	emit("hidden", NULL);
}

static void
on_active(GObject *w, GParamSpec *pspec, gpointer unused)
{
	emit(gtk_window_is_active(GTK_WINDOW(w)) ? "focused" : "blurred", NULL);
}

static void
on_size_allocate(GtkWidget *w, GdkRectangle *alloc, gpointer unused)
{
	int width, height;
	JsonObject *data;

	/* gtk_window_get_size is in the units resize takes, so a resize to
	 * W x H is reported as exactly W x H. */
	gtk_window_get_size(GTK_WINDOW(w), &width, &height);
	if (width == last_w && height == last_h)
		return;
	last_w = width;
	last_h = height;
	data = json_object_new();
	json_object_set_int_member(data, "width", width);
	json_object_set_int_member(data, "height", height);
	emit("resized", data);
}

static void
on_load_changed(WebKitWebView *v, WebKitLoadEvent ev, gpointer unused)
{
	const char *uri = webkit_web_view_get_uri(v);

	if (ev == WEBKIT_LOAD_STARTED) {
		web_process_gone = FALSE; /* a load starts a new web process */
		emit("load_started", obj_with_string("url", uri));
	}
	else if (ev == WEBKIT_LOAD_FINISHED) {
		first_page_pending = FALSE;
		emit("load_finished", obj_with_string("url", uri));
	}
}

static gboolean
on_load_failed(WebKitWebView *v, WebKitLoadEvent ev, const char *uri, GError *error,
	       gpointer unused)
{
	JsonObject *data = obj_with_string("url", uri);

	json_object_set_string_member(data, "message", error->message);
	json_object_set_boolean_member(
		data, "cancelled",
		g_error_matches(error, WEBKIT_NETWORK_ERROR, WEBKIT_NETWORK_ERROR_CANCELLED));
	emit("load_failed", data);
	if (first_page_pending && !opts.page_url &&
	    !g_error_matches(error, WEBKIT_NETWORK_ERROR, WEBKIT_NETWORK_ERROR_CANCELLED))
		first_page_failed = TRUE;
	return FALSE; /* let WebKit show its error page */
}

static void
on_title(GObject *v, GParamSpec *pspec, gpointer unused)
{
	const char *t = webkit_web_view_get_title(WEBKIT_WEB_VIEW(v));

	if (!win || title_pinned)
		return;
	gtk_window_set_title(GTK_WINDOW(win), t && *t ? t : fallback_title);
}

static void
on_web_process_terminated(WebKitWebView *v, WebKitWebProcessTerminationReason reason,
			  gpointer unused)
{
	const char *why = reason == WEBKIT_WEB_PROCESS_CRASHED ? "crashed"
			  : reason == WEBKIT_WEB_PROCESS_EXCEEDED_MEMORY_LIMIT
				  ? "exceeded_memory_limit"
				  : "terminated_by_api";

	web_process_gone = TRUE;
	g_printerr(SHELL_NAME ": the web process ended (%s)\n", why);
	emit("web_process_crashed", obj_with_string("reason", why));
}

/* The page called window.close(), or the user closed the window. */
static void
on_view_close(WebKitWebView *v, gpointer unused)
{
	window_close(FALSE);
}

static gboolean
on_delete(GtkWidget *w, GdkEvent *ev, gpointer unused)
{
	window_close(FALSE);
	return TRUE; /* handled: window_close destroyed or hid it */
}

static gboolean
quit_idle(gpointer unused)
{
	shell_quit(0);
	return G_SOURCE_REMOVE;
}

static void
on_destroy(GtkWidget *w, gpointer unused)
{
	win = NULL;
	view = NULL;
	closing = TRUE;
	emit("closed", NULL);
	/* Deferred so that whoever closed us (the close call) can still
	 * answer before the session shuts down. */
	g_idle_add(quit_idle, NULL);
}

void
window_close(gboolean force)
{
	if (!win || closing)
		return;
	emit("closing", NULL);
	if (opts.keep_running && !force) {
		/* The program stays; the window only hides and comes back
		 * with set_visible {visible:true}. */
		gtk_widget_hide(win);
		emit("closed", NULL);
		return;
	}
	closing = TRUE;
	gtk_widget_destroy(win); /* on_destroy emits closed */
}

void
window_create(const struct avd_address *addr)
{
	WebKitSettings *settings;
	char *url;

	ucm = webkit_user_content_manager_new();
	window_set_address(addr);
	fallback_title = g_strdup(opts.title ? opts.title : "avd");
	title_pinned = opts.title != NULL;

	win = gtk_window_new(GTK_WINDOW_TOPLEVEL);
	gtk_window_set_default_size(GTK_WINDOW(win), opts.width, opts.height);
	gtk_window_set_title(GTK_WINDOW(win), fallback_title);
	gtk_window_set_role(GTK_WINDOW(win), opts.label);

	view = WEBKIT_WEB_VIEW(g_object_new(WEBKIT_TYPE_WEB_VIEW, "user-content-manager", ucm, NULL));
	settings = webkit_web_view_get_settings(view);
	webkit_settings_set_enable_developer_extras(settings, opts.devtools);
	gtk_container_add(GTK_CONTAINER(win), GTK_WIDGET(view));

	g_signal_connect(win, "delete-event", G_CALLBACK(on_delete), NULL);
	g_signal_connect(win, "destroy", G_CALLBACK(on_destroy), NULL);
	g_signal_connect(win, "map", G_CALLBACK(on_map), NULL);
	g_signal_connect(win, "unmap", G_CALLBACK(on_unmap), NULL);
	g_signal_connect(win, "notify::is-active", G_CALLBACK(on_active), NULL);
	g_signal_connect(win, "size-allocate", G_CALLBACK(on_size_allocate), NULL);
	g_signal_connect(view, "load-changed", G_CALLBACK(on_load_changed), NULL);
	g_signal_connect(view, "load-failed", G_CALLBACK(on_load_failed), NULL);
	g_signal_connect(view, "notify::title", G_CALLBACK(on_title), NULL);
	g_signal_connect(view, "web-process-terminated", G_CALLBACK(on_web_process_terminated), NULL);
	g_signal_connect(view, "close", G_CALLBACK(on_view_close), NULL);

	gtk_widget_show(GTK_WIDGET(view));
	if (!opts.hidden)
		gtk_widget_show(win);

	url = g_strdup(opts.page_url ? opts.page_url : default_base);
	webkit_web_view_load_uri(view, url);
	g_free(url);
	if (opts.devtools)
		webkit_web_inspector_show(webkit_web_view_get_inspector(view));
}

/* ---- operations ------------------------------------------------------------- */

/* A string member of the call's params into *out (borrowed from params).
 * Missing or of the wrong type: answers the call with WINDOW_OPERATION and
 * returns FALSE, after which the call is gone.  With optional, absent or
 * null is fine and leaves *out NULL. */
static gboolean
param_string(struct call *c, const char *name, gboolean optional, const char **out)
{
	JsonNode *n = c->params ? json_object_get_member(c->params, name) : NULL;

	*out = NULL;
	if (optional && (!n || JSON_NODE_HOLDS_NULL(n)))
		return TRUE;
	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING) {
		call_reply_window_error(c, "params.%s must be a string", name);
		return FALSE;
	}
	*out = json_node_get_string(n);
	return TRUE;
}

static gboolean
param_int(struct call *c, const char *name, gint64 lo, gint64 hi, gint64 *out)
{
	JsonNode *n = c->params ? json_object_get_member(c->params, name) : NULL;
	GType t = n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_value_type(n) : G_TYPE_INVALID;
	double d = t == G_TYPE_DOUBLE ? json_node_get_double(n) : 0.5;

	if (t == G_TYPE_INT64) {
		*out = json_node_get_int(n);
	} else if (t == G_TYPE_DOUBLE && d > -1e15 && d < 1e15 && d == (double)(gint64)d) {
		*out = (gint64)d; /* 800.0 is still 800 */
	} else {
		call_reply_window_error(c, "params.%s must be an integer", name);
		return FALSE;
	}
	if (*out < lo || *out > hi) {
		call_reply_window_error(c, "params.%s must be between %" G_GINT64_FORMAT
					   " and %" G_GINT64_FORMAT, name, lo, hi);
		return FALSE;
	}
	return TRUE;
}

static gboolean
valid_url(const char *url)
{
	return url && *url && g_uri_is_valid(url, G_URI_FLAGS_PARSE_RELAXED, NULL);
}

static void
op_load_url(struct call *c)
{
	const char *url;

	if (!param_string(c, "url", FALSE, &url))
		return;
	if (!valid_url(url)) {
		call_reply_window_error(c, "\"%s\" is not an absolute URL", url);
		return;
	}
	webkit_web_view_load_uri(view, url);
	call_reply_ok(c, node_from(obj_with_string("url", url)));
}

static void
op_load_html(struct call *c)
{
	const char *html, *base;

	if (!param_string(c, "html", FALSE, &html) || !param_string(c, "base_url", TRUE, &base))
		return;
	if (base && !valid_url(base)) {
		call_reply_window_error(c, "base_url \"%s\" is not an absolute URL", base);
		return;
	}
	/* Without a base the document would be about:blank, an origin avd
	 * refuses and the injection skips; avd's own page lets it load
	 * /avd.global.js and connect. */
	if (!base)
		base = default_base;
	webkit_web_view_load_html(view, html, base);
	call_reply_ok(c, node_from(obj_with_string("base_url", base)));
}

static void
eval_done(GObject *source, GAsyncResult *res, gpointer data)
{
	struct call *c = data; /* ours until replied */
	GError *err = NULL;
	JSCValue *value = webkit_web_view_evaluate_javascript_finish(WEBKIT_WEB_VIEW(source), res, &err);
	const char *script = c->params ? proto_get_string(c->params, "script") : NULL;

	if (!value && (!window_alive() || web_process_gone)) {
		/* The window closed or the page's process died under the
		 * script: no fault of the script's. */
		call_reply_window_error(c, "the %s before the script finished",
					window_alive() ? "page's web process ended" : "window closed");
		g_error_free(err);
		return;
	}
	if (!value) {
		JsonObject *edata = json_object_new();
		char *preview = proto_preview(script ? script : "", 100);
		const char *msg = err->message;

		if (g_error_matches(err, WEBKIT_JAVASCRIPT_ERROR, WEBKIT_JAVASCRIPT_ERROR_INVALID_RESULT))
			msg = "the script's value cannot be sent as JSON "
			      "(a Promise, a DOM node or a function?)";
		json_object_set_string_member(edata, "script_preview", preview);
		call_reply_error(c, proto_error("SCRIPT_EXECUTION", "ScriptExecutionError", msg, edata));
		g_free(preview);
		g_error_free(err);
		return;
	}
	/* undefined has no JSON form: NULL, sent as null. */
	char *json = jsc_value_to_json(value, 0);
	call_reply_raw(c, json);
	g_free(json);
	g_object_unref(value);
}

static void
op_eval_js(struct call *c)
{
	const char *script;

	if (!param_string(c, "script", FALSE, &script))
		return;
	if (web_process_gone) {
		/* WebKit would fail it with a misleading "unsupported result". */
		call_reply_window_error(c, "the page's web process has ended; reload or load a page");
		return;
	}
	webkit_web_view_evaluate_javascript(view, script, -1, NULL, NULL, c->cancellable, eval_done, c);
}

static void
op_set_visible(struct call *c)
{
	JsonNode *n = c->params ? json_object_get_member(c->params, "visible") : NULL;
	gboolean visible;
	JsonObject *r;

	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN) {
		call_reply_window_error(c, "params.visible must be true or false");
		return;
	}
	visible = json_node_get_boolean(n);
	if (visible)
		gtk_window_present(GTK_WINDOW(win));
	else
		gtk_widget_hide(win);
	r = json_object_new();
	json_object_set_boolean_member(r, "visible", visible);
	call_reply_ok(c, node_from(r));
}

static void
op_set_title(struct call *c)
{
	const char *title;
	JsonNode *tn;
	char *lit, *js;

	if (!param_string(c, "title", FALSE, &title))
		return;
	g_free(fallback_title);
	fallback_title = g_strdup(title);
	gtk_window_set_title(GTK_WINDOW(win), title);
	/* The window shows the page's title, so the page gets the same one:
	 * otherwise the next title change of the page would silently undo
	 * set_title, and document.title would disagree with the window.
	 * Scripts run in the order sent, so an eval_js after our answer
	 * already sees the new document.title. */
	tn = json_node_new(JSON_NODE_VALUE);
	json_node_set_string(tn, title);
	lit = proto_to_string(tn);
	js = g_strdup_printf("document.title = %s; undefined", lit);
	webkit_web_view_evaluate_javascript(view, js, -1, NULL, NULL, NULL, NULL, NULL);
	g_free(js);
	g_free(lit);
	json_node_unref(tn);
	call_reply_ok(c, node_from(obj_with_string("title", title)));
}

static void
op_resize(struct call *c)
{
	gint64 w, h;
	JsonObject *r;

	if (!param_int(c, "width", 1, 16384, &w) || !param_int(c, "height", 1, 16384, &h))
		return;
	gtk_window_resize(GTK_WINDOW(win), (int)w, (int)h);
	r = json_object_new();
	json_object_set_int_member(r, "width", w);
	json_object_set_int_member(r, "height", h);
	call_reply_ok(c, node_from(r));
}

void
window_dispatch(struct call *c)
{
	if (!window_alive()) {
		call_reply_window_error(c, "the window is closed");
		return;
	}
	if (c->params_bad) {
		call_reply_window_error(c, "params must be an object");
		return;
	}
	switch (c->op) {
	case OP_CLOSE: {
		JsonObject *r = json_object_new();
		/* closing and closed are sent before this answer. */
		window_close(FALSE);
		json_object_set_boolean_member(r, "closed", TRUE);
		json_object_set_boolean_member(r, "exiting", !opts.keep_running);
		call_reply_ok(c, node_from(r));
		break;
	}
	case OP_LOAD_URL:
		op_load_url(c);
		break;
	case OP_LOAD_HTML:
		op_load_html(c);
		break;
	case OP_RELOAD:
		webkit_web_view_reload(view);
		call_reply_ok(c, node_from(obj_with_string("url", webkit_web_view_get_uri(view))));
		break;
	case OP_STOP:
		webkit_web_view_stop_loading(view);
		call_reply_ok(c, node_from(json_object_new()));
		break;
	case OP_EVAL_JS:
		op_eval_js(c);
		break;
	case OP_SET_VISIBLE:
		op_set_visible(c);
		break;
	case OP_SET_TITLE:
		op_set_title(c);
		break;
	case OP_RESIZE:
		op_resize(c);
		break;
	case OP_COUNT:
		g_assert_not_reached();
	}
}
