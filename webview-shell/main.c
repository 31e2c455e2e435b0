/*
 * main.c - avd-shell: options, start-up and orderly shutdown.
 *
 * Exit status: 0 when the window was closed (by the user, a close call,
 * the page or SIGTERM/SIGINT); 1 when it could not run (its label is
 * taken); 2 for a usage error, no display, or no avd address.
 */
#include <glib-unix.h>
#include <stdarg.h>
#include <locale.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "shell.h"

struct shell_options opts; /* strings owned here, for the program's life */

static GMainLoop *loop;
static int exit_status;
static gboolean quitting;

gboolean
shell_quitting(void)
{
	return quitting;
}

static void
stop_loop(void)
{
	g_main_loop_quit(loop);
}

void
shell_quit(int status)
{
	if (quitting)
		return;
	quitting = TRUE;
	exit_status = status;
	/* Answer what is still queued while the session can carry it, then
	 * close the session; the loop ends when avd has acknowledged. */
	pipeline_fail_all("the window is closed");
	session_shutdown(stop_loop);
}

static gboolean
on_signal(gpointer unused)
{
	/* A closing window, as if the user had closed it, even with
	 * --keep-running: whoever sends SIGTERM wants the program gone. */
	window_close(TRUE);
	shell_quit(0);
	return G_SOURCE_CONTINUE;
}

static G_GNUC_NORETURN void
usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void
usage_error(const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_printerr(SHELL_NAME ": %s\n", msg);
	g_free(msg);
	exit(2);
}

/* A label becomes part of method and event names (window.LABEL.eval_js),
 * so it keeps to characters every part of the protocol accepts and no dot,
 * which would make window.a.b ambiguous. */
static gboolean
valid_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return FALSE;
	for (const char *p = s; *p; p++)
		if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-')
			return FALSE;
	return TRUE;
}

/* "http://host:port" with nothing after it, as location.origin spells it. */
static char *
normalise_origin(const char *s)
{
	GUri *uri = g_uri_parse(s, G_URI_FLAGS_NONE, NULL);
	char *out = NULL;
	const char *path;

	if (!uri)
		return NULL;
	path = g_uri_get_path(uri);
	if (g_uri_get_host(uri) && *g_uri_get_host(uri) && (!*path || !strcmp(path, "/")) &&
	    !g_uri_get_query(uri) && !g_uri_get_fragment(uri)) {
		out = g_strdup(s);
		if (g_str_has_suffix(out, "/"))
			out[strlen(out) - 1] = '\0';
	}
	g_uri_unref(uri);
	return out;
}

static void
parse_options(int *argc, char ***argv)
{
	char *label = NULL, *title = NULL, *url = NULL, *avd_url = NULL, *token = NULL;
	char **trust = NULL;
	int width = 1024, height = 768;
	gboolean devtools = FALSE, hidden = FALSE, keep_running = FALSE, version = FALSE;
	GOptionEntry entries[] = {
		{ "url", 0, 0, G_OPTION_ARG_STRING, &url,
		  "Page to open (default: avd's own page)", "URL" },
		{ "label", 0, 0, G_OPTION_ARG_STRING, &label,
		  "Window label: methods are window.LABEL.* (default: main)", "NAME" },
		{ "title", 0, 0, G_OPTION_ARG_STRING, &title,
		  "Window title (default: the page's title)", "T" },
		{ "width", 0, 0, G_OPTION_ARG_INT, &width, "Initial width (default 1024)", "W" },
		{ "height", 0, 0, G_OPTION_ARG_INT, &height, "Initial height (default 768)", "H" },
		{ "devtools", 0, 0, G_OPTION_ARG_NONE, &devtools,
		  "Enable the web inspector and open it", NULL },
		{ "hidden", 0, 0, G_OPTION_ARG_NONE, &hidden, "Start with the window hidden", NULL },
		{ "keep-running", 0, 0, G_OPTION_ARG_NONE, &keep_running,
		  "Closing the window hides it instead of ending the program", NULL },
		{ "avd-url", 0, 0, G_OPTION_ARG_STRING, &avd_url,
		  "avd's WebSocket address (default: AVD_URL, then avd's url file)", "ws://HOST:PORT/ws" },
		{ "token", 0, 0, G_OPTION_ARG_STRING, &token,
		  "avd's token (default: AVD_TOKEN, then avd's token file)", "T" },
		{ "trust-origin", 0, 0, G_OPTION_ARG_STRING_ARRAY, &trust,
		  "Also give the token to pages of this origin (repeatable)", "ORIGIN" },
		{ "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL }
	};
	GOptionContext *ctx = g_option_context_new("- a WebKitGTK window that avd backends can drive");
	GError *err = NULL;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, argc, argv, &err))
		usage_error("%s (see --help)", err->message);
	g_option_context_free(ctx);
	if (version) {
		g_print(SHELL_NAME " " SHELL_VERSION "\n");
		exit(0);
	}
	if (*argc > 1)
		usage_error("unexpected argument \"%s\" (see --help)", (*argv)[1]);

	opts.label = label ? label : g_strdup("main");
	if (!valid_label(opts.label))
		usage_error("--label \"%s\": use 1-64 letters, digits, '_' or '-'", opts.label);
	if (width < 1 || width > 16384 || height < 1 || height > 16384)
		usage_error("--width and --height must be between 1 and 16384");
	if (url && !g_uri_is_valid(url, G_URI_FLAGS_PARSE_RELAXED, NULL)) {
		/* A path on the command line means that file. */
		GFile *f = g_file_new_for_commandline_arg(url);
		if (!g_file_query_exists(f, NULL))
			usage_error("--url \"%s\" is neither a URL nor an existing file", url);
		g_free(url);
		url = g_file_get_uri(f);
		g_object_unref(f);
	}
	for (char **t = trust; t && *t; t++) {
		char *o = normalise_origin(*t);
		if (!o)
			usage_error("--trust-origin \"%s\": give an origin like http://localhost:5173", *t);
		g_free(*t);
		*t = o;
	}
	if (token) {
		g_strstrip(token);
		if (!*token)
			usage_error("--token is empty");
	}

	opts.page_url = url;
	opts.title = title;
	opts.width = width;
	opts.height = height;
	opts.devtools = devtools;
	opts.hidden = hidden;
	opts.keep_running = keep_running;
	opts.avd_url = avd_url;
	opts.token = token;
	opts.trust_origins = trust;
}

int
main(int argc, char **argv)
{
	struct avd_address addr;
	char *err = NULL;

	setlocale(LC_ALL, "");
	parse_options(&argc, &argv);

	/* No display is not an error in our code but in where we were run:
	 * say so in one line, with the status of a usage error. */
	if (!gtk_init_check(NULL, NULL)) {
		const char *x = g_getenv("DISPLAY"), *w = g_getenv("WAYLAND_DISPLAY");
		g_printerr(SHELL_NAME ": cannot open a display (DISPLAY=%s, WAYLAND_DISPLAY=%s); "
			   "run it in a desktop session or under xvfb-run\n",
			   x && *x ? x : "unset", w && *w ? w : "unset");
		return 2;
	}
	if (!address_resolve(&addr, &err)) {
		g_printerr(SHELL_NAME ": %s\n", err);
		g_free(err);
		return 2;
	}

	loop = g_main_loop_new(NULL, FALSE);
	g_unix_signal_add(SIGTERM, on_signal, NULL);
	g_unix_signal_add(SIGINT, on_signal, NULL);

	window_create(&addr);
	session_start(&addr);
	address_clear(&addr);

	g_main_loop_run(loop);
	g_main_loop_unref(loop);
	return exit_status;
}
