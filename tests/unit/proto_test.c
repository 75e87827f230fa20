/* proto_test.c — the agent API messages survive pack/unpack unchanged, and
 * garbage bytes are refused by the unpacker (never a crash). */
#include <stdlib.h>
#include <string.h>

#include "proto/agent.pb-c.h"
#include "tests/unit/tap.h"

static void test_request(void)
{
	Zapc__PodCreate pc = ZAPC__POD_CREATE__INIT;
	Zapc__Request req = ZAPC__REQUEST__INIT, *got;
	char *argv[] = { "sh", "-c", "echo hi" }, *env[] = { "PATH=/bin", "A=b c" };
	uint8_t *buf;
	size_t n;

	pc.name = "web";
	pc.ip = "10.200.0.7";
	pc.root = "/srv/root";
	pc.n_argv = 3;
	pc.argv = argv;
	pc.n_env = 2;
	pc.env = env;
	pc.cwd = "/tmp";
	req.cmd_case = ZAPC__REQUEST__CMD_POD_CREATE;
	req.pod_create = &pc;
	n = zapc__request__get_packed_size(&req);
	buf = malloc(n);
	zapc__request__pack(&req, buf);
	got = zapc__request__unpack(NULL, n, buf);
	ok(got != NULL, "PodCreate request unpacks");
	if (!got) {
		free(buf);
		return;
	}
	is_int(got->cmd_case, ZAPC__REQUEST__CMD_POD_CREATE, "oneof case kept");
	is_str(got->pod_create->name, "web", "name kept");
	is_str(got->pod_create->ip, "10.200.0.7", "ip kept");
	is_str(got->pod_create->root, "/srv/root", "root kept");
	is_int(got->pod_create->n_argv, 3, "argv count kept");
	is_str(got->pod_create->argv[2], "echo hi", "argv with spaces kept");
	is_str(got->pod_create->env[1], "A=b c", "env kept");
	is_str(got->pod_create->cwd, "/tmp", "cwd kept");
	zapc__request__free_unpacked(got, NULL);

	/* every truncation of a valid message either fails or unpacks cleanly */
	int crashed = 0;
	for (size_t i = 0; i < n; i++) {
		got = zapc__request__unpack(NULL, i, buf);
		if (got)
			zapc__request__free_unpacked(got, NULL);
	}
	ok(!crashed, "every truncation of a request is handled");
	free(buf);

	static const uint8_t garbage[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02 };
	got = zapc__request__unpack(NULL, sizeof(garbage), garbage);
	ok(got == NULL, "garbage with a huge embedded length is refused");
}

static void test_response(void)
{
	Zapc__PodInfo a = ZAPC__POD_INFO__INIT, b = ZAPC__POD_INFO__INIT, *pods[2] = { &a, &b };
	Zapc__PodListResult lr = ZAPC__POD_LIST_RESULT__INIT;
	Zapc__Response r = ZAPC__RESPONSE__INIT, *got;
	Zapc__ExecResult er = ZAPC__EXEC_RESULT__INIT;
	uint8_t *buf;
	size_t n;

	a.name = "a";
	a.ip = "10.200.0.2";
	a.mac = "02:5a:0a:c8:00:02";
	a.init_pid = 4242;
	a.owner_uid = 1000;
	b.name = "b";
	lr.n_pods = 2;
	lr.pods = pods;
	r.result_case = ZAPC__RESPONSE__RESULT_PODS;
	r.pods = &lr;
	n = zapc__response__get_packed_size(&r);
	buf = malloc(n);
	zapc__response__pack(&r, buf);
	got = zapc__response__unpack(NULL, n, buf);
	ok(got && got->result_case == ZAPC__RESPONSE__RESULT_PODS && got->pods->n_pods == 2,
	   "pod list response round trip");
	if (got) {
		is_str(got->pods->pods[0]->mac, "02:5a:0a:c8:00:02", "pod mac kept");
		is_int(got->pods->pods[0]->init_pid, 4242, "pod init pid kept");
		is_int(got->pods->pods[0]->owner_uid, 1000, "pod owner kept");
		is_int(got->status, 0, "status 0 by default");
		zapc__response__free_unpacked(got, NULL);
	}
	free(buf);

	r = (Zapc__Response)ZAPC__RESPONSE__INIT;
	r.status = -2;
	r.error = "pod web: no such pod";
	r.result_case = ZAPC__RESPONSE__RESULT_EXEC;
	er.exit_code = 137;
	er.signal = 9;
	r.exec = &er;
	n = zapc__response__get_packed_size(&r);
	buf = malloc(n);
	zapc__response__pack(&r, buf);
	got = zapc__response__unpack(NULL, n, buf);
	ok(got && got->status == -2 && strcmp(got->error, "pod web: no such pod") == 0,
	   "error response round trip (negative status)");
	ok(got && got->exec && got->exec->exit_code == 137 && got->exec->signal == 9,
	   "exec result round trip");
	if (got)
		zapc__response__free_unpacked(got, NULL);
	free(buf);
}

int main(void)
{
	test_request();
	test_response();
	return tap_done();
}
