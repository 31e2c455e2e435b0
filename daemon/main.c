/*
 * main.c - avd's entry point: settings, then the listener, then the loop.
 *
 * Exit codes: 0 after a clean shutdown or --help/--version, 2 for any
 * problem with the command line, config file or listening address, 1 for
 * anything else that stops avd from starting.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "avd.h"

int
main(int argc, char **argv)
{
	struct config cfg;
	struct avd_err err = { 0 };
	char token[33];
	int rc;

	config_defaults(&cfg);
	reload_init(argc, argv);
	rc = config_parse_args(&cfg, argc, argv, &err);
	if (rc) {
		if (rc < 0 && rc != -ECANCELED)
			fprintf(stderr, "avd: %s\n", err.message);
		err_clear(&err);
		config_free(&cfg);
		return rc > 0 ? 0 : 2;
	}
	config_locate_dirs(&cfg);
	log_set_level(cfg.log_level);
	log_set_format(cfg.log_format);
	if (!cfg.no_auth && !cfg.token) {
		if (auth_make_token(token)) {
			fprintf(stderr, "avd: cannot make a random token\n");
			return 1;
		}
		cfg.token = xstrdup(token);
	}
	hub_init(&cfg);
	if (server_start(&cfg, &err)) {
		fprintf(stderr, "avd: %s\n", err.message);
		err_clear(&err);
		hub_free();
		config_free(&cfg);
		return 2;
	}
	if (auth_write_runtime(&cfg, server_port(), &err)) {
		log_warn("%s; clients must be given the token another way", err.message);
		err_clear(&err);
	}
	if (strchr(cfg.listen, ':'))
		printf("avd listening on http://[%s]:%d/", cfg.listen, server_port());
	else
		printf("avd listening on http://%s:%d/", cfg.listen, server_port());
	if (cfg.no_auth)
		printf("\n");
	else
		printf("?token=%s\n", cfg.token);
	fflush(stdout);
	if (cfg.no_auth)
		log_warn("--no-auth: any local process may connect");
	/* Orphans of a backend's process group are reparented to avd, which
	 * reaps them: no zombies even where PID 1 does not reap. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	backend_start_all(&cfg);
	notify_systemd("READY=1");

	server_run();

	auth_remove_runtime();
	server_destroy(); /* closes every connection, which ends its session */
	hub_free();
	backend_free_all();
	config_free(&cfg);
	log_info("stopped");
	return 0;
}
