/* check_misc.c - timers, the map, config parsing, auth and HTTP routing. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testhub.h"

static int fired[8], nfired;

static void
on_fire(struct timer *t)
{
	fired[nfired++] = (int)(t->due % 1000);
}

START_TEST(test_timer_order_and_cancel)
{
	uint64_t now = 5000;
	struct timer t[5] = { 0 };

	clock_set_fake(&now);
	nfired = 0;
	timer_arm(&t[0], 300, on_fire);
	timer_arm(&t[1], 100, on_fire);
	timer_arm(&t[2], 200, on_fire);
	timer_arm(&t[3], 50, on_fire);
	timer_arm(&t[4], 400, on_fire);
	timer_cancel(&t[2]);
	timer_arm(&t[0], 10, on_fire); /* re-arm moves it */
	ck_assert_int_eq(timer_next_in(), 10);
	now += 150;
	ck_assert_int_eq(timer_run_due(), 3);
	ck_assert_int_eq(fired[0], 10);
	ck_assert_int_eq(fired[1], 50);
	ck_assert_int_eq(fired[2], 100);
	ck_assert(!timer_armed(&t[2]));
	ck_assert(timer_armed(&t[4]));
	now += 1000;
	ck_assert_int_eq(timer_run_due(), 1);
	ck_assert_int_eq(timer_next_in(), -1);
	timer_reset();
	clock_set_fake(NULL);
}
END_TEST

START_TEST(test_map_many)
{
	struct map *m = map_new();
	char k[32];

	for (int i = 0; i < 5000; i++) {
		snprintf(k, sizeof(k), "key%d", i);
		map_set(m, k, strlen(k), (void *)(intptr_t)(i + 1));
	}
	ck_assert_uint_eq(map_count(m), 5000);
	for (int i = 0; i < 5000; i += 2) {
		snprintf(k, sizeof(k), "key%d", i);
		ck_assert_ptr_eq(map_del(m, k, strlen(k)), (void *)(intptr_t)(i + 1));
	}
	ck_assert_uint_eq(map_count(m), 2500);
	ck_assert_ptr_null(map_get(m, "key0", 4));
	ck_assert_ptr_eq(map_get(m, "key4999", 7), (void *)(intptr_t)5000);
	map_free(m);
}
END_TEST

static int
parse(struct config *c, struct avd_err *e, const char **args)
{
	char *argv[16];
	int argc = 0;

	argv[argc++] = (char *)"avd";
	while (*args)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	config_defaults(c);
	return config_parse_args(c, argc, argv, e);
}

START_TEST(test_config_flags_and_errors)
{
	struct config c;
	struct avd_err e = { 0 };
	const char *ok[] = { "--port", "0", "--call-timeout-ms", "5", "--allow-origin",
			     "http://x", "--no-auth", NULL };
	const char *unknown[] = { "--bogus", NULL };
	const char *badnum[] = { "--port", "abc", NULL };
	const char *range[] = { "--port", "70000", NULL };
	const char *missing[] = { "--port", NULL };

	ck_assert_int_eq(parse(&c, &e, ok), 0);
	ck_assert_int_eq(c.port, 0);
	ck_assert_uint_eq(c.call_timeout_ms, 5);
	ck_assert(c.no_auth);
	ck_assert_str_eq(c.allow_origins.v[0], "http://x");
	config_free(&c);
	ck_assert_int_lt(parse(&c, &e, unknown), 0);
	ck_assert_ptr_nonnull(strstr(e.message, "--bogus"));
	config_free(&c);
	ck_assert_int_lt(parse(&c, &e, badnum), 0);
	ck_assert_ptr_nonnull(strstr(e.message, "--port"));
	config_free(&c);
	ck_assert_int_lt(parse(&c, &e, range), 0);
	config_free(&c);
	ck_assert_int_lt(parse(&c, &e, missing), 0);
	config_free(&c);
	err_clear(&e);
}
END_TEST

START_TEST(test_config_file_keys)
{
	struct config c;
	struct avd_err e = { 0 };
	json_t *good = json_pack("{s:i, s:[s], s:s}", "heartbeat_interval_ms", 100,
				 "allow_origin", "http://a", "log-level", "debug");
	json_t *bad = json_pack("{s:i}", "heartbeat_intervl_ms", 100);
	json_t *badtype = json_pack("{s:s}", "port", "80");

	config_defaults(&c);
	ck_assert_int_eq(config_apply_json(&c, good, &e), 0);
	ck_assert_uint_eq(c.heartbeat_interval_ms, 100);
	ck_assert_int_eq(c.log_level, LOG_DEBUG);
	ck_assert_int_lt(config_apply_json(&c, bad, &e), 0);
	ck_assert_ptr_nonnull(strstr(e.message, "heartbeat_intervl_ms"));
	ck_assert_int_lt(config_apply_json(&c, badtype, &e), 0);
	ck_assert_ptr_nonnull(strstr(e.message, "port"));
	config_free(&c);
	err_clear(&e);
	json_decref(good), json_decref(bad), json_decref(badtype);
}
END_TEST

START_TEST(test_auth)
{
	struct config c;
	char tok[33];

	config_defaults(&c);
	ck_assert_int_eq(auth_make_token(tok), 0);
	ck_assert_uint_eq(strlen(tok), 32);
	c.token = xstrdup(tok);
	ck_assert(auth_token_ok(&c, tok));
	ck_assert(!auth_token_ok(&c, "nope"));
	ck_assert(!auth_token_ok(&c, NULL));
	tok[31] ^= 1;
	ck_assert(!auth_token_ok(&c, tok));
	ck_assert(auth_origin_ok(&c, 7700, NULL));
	ck_assert(auth_origin_ok(&c, 7700, "http://127.0.0.1:7700"));
	ck_assert(auth_origin_ok(&c, 7700, "http://localhost:7700"));
	ck_assert(!auth_origin_ok(&c, 7700, "http://127.0.0.1:7701"));
	ck_assert(!auth_origin_ok(&c, 7700, "https://evil.example"));
	ptrvec_push(&c.allow_origins, xstrdup("https://app.example"));
	ck_assert(auth_origin_ok(&c, 7700, "https://app.example"));
	config_free(&c);
}
END_TEST

START_TEST(test_http_routes)
{
	struct config c;
	struct http_reply r;
	char dir[] = "/tmp/avd-http-XXXXXX", path[300];
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/index.html", dir);
	f = fopen(path, "w");
	fputs("<p>hi</p>", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/sub", dir);
	mkdir(path, 0700);
	config_defaults(&c);
	free(c.ui_dir);
	c.ui_dir = xstrdup(dir);
	memset(&hub, 0, sizeof(hub));

	http_route(&c, "/", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.path, "index.html"));
	ck_assert_str_eq(r.content_type, "text/html; charset=utf-8");
	http_reply_free(&r);
	http_route(&c, "/healthz", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\"status\":\"ok\""));
	http_reply_free(&r);
	http_route(&c, "/../etc/passwd", NULL, &r);
	ck_assert_int_eq(r.status, 403);
	http_reply_free(&r);
	http_route(&c, "/%2e%2e/%2e%2e/etc/passwd", NULL, &r);
	ck_assert_int_eq(r.status, 403);
	http_reply_free(&r);
	http_route(&c, "/sub", NULL, &r); /* a directory: no listing */
	ck_assert_int_eq(r.status, 404);
	http_reply_free(&r);
	http_route(&c, "/metrics", NULL, &r);
	ck_assert_int_eq(r.status, 401);
	http_reply_free(&r);
	c.token = xstrdup("tok-12345678");
	http_route(&c, "/metrics", "wrong-token", &r);
	ck_assert_int_eq(r.status, 401);
	http_reply_free(&r);
	http_route(&c, "/metrics", "tok-12345678", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "# TYPE avd_calls_started_total counter"));
	ck_assert_ptr_nonnull(strstr(r.body, "avd_call_duration_seconds_bucket{le=\"+Inf\"}"));
	http_reply_free(&r);
	http_route(&c, "/missing.js", NULL, &r);
	ck_assert_int_eq(r.status, 404);
	http_reply_free(&r);
	http_route(&c, "/a%00b", NULL, &r);
	ck_assert_int_eq(r.status, 403);
	http_reply_free(&r);
	config_free(&c);
	unlink(path);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/index.html", dir);
	unlink(path);
	rmdir(dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("misc");
	TCase *tc = tcase_create("misc");

	tcase_add_test(tc, test_timer_order_and_cancel);
	tcase_add_test(tc, test_map_many);
	tcase_add_test(tc, test_config_flags_and_errors);
	tcase_add_test(tc, test_config_file_keys);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_http_routes);
	suite_add_tcase(s, tc);
	return th_run(s);
}
