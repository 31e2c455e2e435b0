/*
 * auth.c - who may talk to avd: the token and the Origin allow-list.
 *
 * The token is the only secret; it is compared in constant time and written
 * only to a file only the user can read, so any local process of the same
 * user can find the daemon while other users cannot.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "avd.h"

static char runtime_dir[512];

int
auth_make_token(char out[33])
{
	unsigned char raw[16];
	static const char hex[] = "0123456789abcdef";

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -errno;
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[32] = '\0';
	return 0;
}

bool
auth_token_ok(const struct config *c, const char *presented)
{
	size_t n, m;
	unsigned char diff;

	if (c->no_auth)
		return true;
	if (!presented || !c->token)
		return false;
	n = strlen(c->token);
	m = strlen(presented);
	/* Touch every byte of the real token whatever the presented length. */
	diff = (unsigned char)(n != m);
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(c->token[i] ^ (i < m ? presented[i] : 0));
	return diff == 0;
}

static int
write_file(const char *path, const char *text, struct avd_err *err)
{
	char tmp[600];
	int fd;
	size_t len = strlen(text);

	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set(err, AVD_E_INTERNAL, NULL, "cannot write %s: %s", tmp,
			       strerror(errno));
	if (fchmod(fd, 0600) || write(fd, text, len) != (ssize_t)len ||
	    close(fd) || rename(tmp, path)) {
		int e = errno;
		unlink(tmp);
		return err_set(err, AVD_E_INTERNAL, NULL, "cannot write %s: %s",
			       path, strerror(e));
	}
	return 0;
}

int
auth_write_runtime(const struct config *c, int port, struct avd_err *err)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char path[600], text[300];
	struct stat st;

	if (xdg && *xdg)
		snprintf(runtime_dir, sizeof(runtime_dir), "%s/avd", xdg);
	else
		snprintf(runtime_dir, sizeof(runtime_dir), "/tmp/avd-%u",
			 (unsigned)getuid());
	if (mkdir(runtime_dir, 0700) && errno != EEXIST)
		return err_set(err, AVD_E_INTERNAL, NULL, "cannot create %s: %s",
			       runtime_dir, strerror(errno));
	/* An existing directory must be ours and private, or the token leaks. */
	if (lstat(runtime_dir, &st) || !S_ISDIR(st.st_mode) ||
	    st.st_uid != getuid())
		return err_set(err, AVD_E_INTERNAL, NULL,
			       "%s is not a directory owned by this user", runtime_dir);
	if ((st.st_mode & 0777) != 0700 && chmod(runtime_dir, 0700))
		return err_set(err, AVD_E_INTERNAL, NULL, "cannot chmod %s: %s",
			       runtime_dir, strerror(errno));
	snprintf(text, sizeof(text), "ws://%s:%d/ws\n", c->listen, port);
	snprintf(path, sizeof(path), "%s/url", runtime_dir);
	if (write_file(path, text, err))
		return -EIO;
	snprintf(path, sizeof(path), "%s/token", runtime_dir);
	if (c->no_auth) {
		unlink(path);
		return 0;
	}
	snprintf(text, sizeof(text), "%s\n", c->token);
	return write_file(path, text, err) ? -EIO : 0;
}

void
auth_remove_runtime(void)
{
	char path[600];

	if (!runtime_dir[0])
		return;
	snprintf(path, sizeof(path), "%s/url", runtime_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/token", runtime_dir);
	unlink(path);
}

bool
auth_origin_ok(const struct config *c, int port, const char *origin)
{
	char own[128];

	if (!origin)
		return true; /* not a browser; the token still guards the door */
	snprintf(own, sizeof(own), "http://127.0.0.1:%d", port);
	if (!strcmp(origin, own))
		return true;
	snprintf(own, sizeof(own), "http://localhost:%d", port);
	if (!strcmp(origin, own))
		return true;
	snprintf(own, sizeof(own), "http://[::1]:%d", port);
	if (!strcmp(origin, own))
		return true;
	for (uint32_t i = 0; i < c->allow_origins.n; i++)
		if (!strcmp(origin, c->allow_origins.v[i]) ||
		    !strcmp(c->allow_origins.v[i], "*"))
			return true;
	return false;
}
