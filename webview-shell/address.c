/*
 * address.c - where avd is and which token it wants.
 *
 * avd writes its address and token to $XDG_RUNTIME_DIR/avd/{url,token}
 * (or /tmp/avd-$UID/ without XDG_RUNTIME_DIR) when it starts, so by default
 * the shell needs no flags at all.  Flags beat the environment, which beats
 * the files.  The files are read again on every reconnect: an avd that was
 * restarted on another port or with another token is found again.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "shell.h"

/* The first line of path, trimmed, or NULL when unreadable/empty (owned). */
static char *
read_first_line(const char *path)
{
	char *text = NULL, *nl;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return NULL;
	nl = strpbrk(text, "\r\n");
	if (nl)
		*nl = '\0';
	g_strstrip(text);
	if (!*text) {
		g_free(text);
		return NULL;
	}
	return text;
}

/* The runtime directories avd may have used, most likely first (owned). */
static char **
runtime_dirs(void)
{
	GPtrArray *dirs = g_ptr_array_new();
	const char *xdg = g_getenv("XDG_RUNTIME_DIR");

	if (xdg && *xdg)
		g_ptr_array_add(dirs, g_build_filename(xdg, "avd", NULL));
	g_ptr_array_add(dirs, g_strdup_printf("/tmp/avd-%u", (unsigned)getuid()));
	g_ptr_array_add(dirs, NULL);
	return (char **)g_ptr_array_free(dirs, FALSE);
}

static char *
nonempty_env(const char *name)
{
	const char *v = g_getenv(name);

	return v && *v ? g_strstrip(g_strdup(v)) : NULL;
}

/* Accept ws://h:p/ws, ws://h:p (adds /ws) and http://h:p/ (becomes ws);
 * fill the derived origins.  Returns FALSE with *err set. */
static gboolean
normalise(struct avd_address *a, const char *url, char **err)
{
	GError *gerr = NULL;
	GUri *uri = g_uri_parse(url, G_URI_FLAGS_ENCODED, &gerr);
	const char *scheme, *host, *path, *query;
	gboolean secure;
	int port;
	GString *ws;

	if (!uri) {
		*err = g_strdup_printf("avd address \"%s\" (%s) is not a URL: %s", url,
				       a->source, gerr->message);
		g_error_free(gerr);
		return FALSE;
	}
	scheme = g_uri_get_scheme(uri);
	host = g_uri_get_host(uri);
	if (g_ascii_strcasecmp(scheme, "ws") && g_ascii_strcasecmp(scheme, "wss") &&
	    g_ascii_strcasecmp(scheme, "http") && g_ascii_strcasecmp(scheme, "https")) {
		*err = g_strdup_printf("avd address \"%s\" (%s) must start with ws://",
				       url, a->source);
		g_uri_unref(uri);
		return FALSE;
	}
	if (!host || !*host) {
		*err = g_strdup_printf("avd address \"%s\" (%s) has no host", url, a->source);
		g_uri_unref(uri);
		return FALSE;
	}
	secure = !g_ascii_strcasecmp(scheme, "wss") || !g_ascii_strcasecmp(scheme, "https");
	port = g_uri_get_port(uri);
	path = g_uri_get_path(uri);
	query = g_uri_get_query(uri);

	/* A token in the URL is the weakest source: use it only when no
	 * flag, variable or file gave one. */
	if (!a->token && query) {
		GHashTable *q = g_uri_parse_params(query, -1, "&", G_URI_PARAMS_NONE, NULL);
		const char *t = q ? g_hash_table_lookup(q, "token") : NULL;
		if (t && *t)
			a->token = g_strdup(t);
		if (q)
			g_hash_table_unref(q);
	}

	/* IPv6 hosts come back without brackets; URLs need them. */
	const char *lb = strchr(host, ':') ? "[" : "", *rb = *lb ? "]" : "";
	char *hostport = port > 0 ? g_strdup_printf("%s%s%s:%d", lb, host, rb, port)
				  : g_strdup_printf("%s%s%s", lb, host, rb);

	ws = g_string_new(secure ? "wss://" : "ws://");
	g_string_append(ws, hostport);
	g_string_append(ws, (!path || !*path || !strcmp(path, "/")) ? "/ws" : path);
	a->ws_url = g_string_free(ws, FALSE);
	a->http_origin = g_strdup_printf("%s://%s", secure ? "https" : "http", hostport);
	/* avd accepts its page from both loopback names; so do we. */
	if (port > 0 && !strcmp(host, "127.0.0.1"))
		a->alt_origin = g_strdup_printf("%s://localhost:%d",
						secure ? "https" : "http", port);
	else if (port > 0 && !g_ascii_strcasecmp(host, "localhost"))
		a->alt_origin = g_strdup_printf("%s://127.0.0.1:%d",
						secure ? "https" : "http", port);
	g_free(hostport);
	g_uri_unref(uri);
	return TRUE;
}

gboolean
address_resolve(struct avd_address *a, char **err)
{
	char **dirs = runtime_dirs();
	char *url = NULL, *url_dir = NULL;
	gboolean ok;

	memset(a, 0, sizeof(*a));

	if (opts.avd_url) {
		url = g_strdup(opts.avd_url);
		a->source = "--avd-url";
	} else if ((url = nonempty_env("AVD_URL"))) {
		a->source = "AVD_URL";
	} else {
		for (char **d = dirs; *d && !url; d++) {
			char *path = g_build_filename(*d, "url", NULL);
			if ((url = read_first_line(path))) {
				url_dir = g_strdup(*d);
				a->source = "url file";
			}
			g_free(path);
		}
	}

	if (opts.token) {
		a->token = g_strdup(opts.token);
	} else if (!(a->token = nonempty_env("AVD_TOKEN"))) {
		/* The token file next to the url file belongs to the same avd;
		 * without one, look where avd would have put it. */
		if (url_dir) {
			char *path = g_build_filename(url_dir, "token", NULL);
			a->token = read_first_line(path);
			g_free(path);
		} else {
			for (char **d = dirs; *d && !a->token; d++) {
				char *path = g_build_filename(*d, "token", NULL);
				a->token = read_first_line(path);
				g_free(path);
			}
		}
	}

	if (!url) {
		*err = g_strdup_printf(
			"no avd address: start avd, or pass --avd-url ws://HOST:PORT/ws "
			"(looked in AVD_URL and %s/url)", dirs[0]);
		ok = FALSE;
	} else {
		ok = normalise(a, url, err);
	}
	g_free(url);
	g_free(url_dir);
	g_strfreev(dirs);
	if (!ok)
		address_clear(a);
	return ok;
}

void
address_clear(struct avd_address *a)
{
	g_free(a->ws_url);
	g_free(a->token);
	g_free(a->http_origin);
	g_free(a->alt_origin);
	memset(a, 0, sizeof(*a));
}

gboolean
address_equal(const struct avd_address *a, const struct avd_address *b)
{
	return !g_strcmp0(a->ws_url, b->ws_url) && !g_strcmp0(a->token, b->token);
}
