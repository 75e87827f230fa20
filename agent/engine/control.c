/*
 * control.c — see control.h.  Blocking frames on a unix socketpair: the
 * agent answers quickly, and the engine has nothing else to do meanwhile.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "agent/engine/control.h"
#include "lib/frame.h"
#include "lib/log.h"
#include "proto/engine.pb-c.h"

#define SYNC_WAIT_MAX_MS 120000

static int ctl = -1;

int control_open(const char *fd_arg)
{
	char *end;
	long fd = strtol(fd_arg, &end, 10);

	if (*end || fd < 0 || fd > 1024) {
		log_err("--control %s: not a file descriptor number", fd_arg);
		return -EINVAL;
	}
	ctl = (int)fd;
	return 0;
}

int control_active(void) { return ctl >= 0; }

static int send_msg(Zapc__Engine__ToAgent *m)
{
	int rc = frame_send_msg(ctl, &m->base, NULL, 0);

	if (rc < 0)
		log_err("control channel: send: %s", strerror(-rc));
	return rc;
}

int control_pod_needed(const char *name, const char *ip, const char *hostname,
		       int *netns_fd, char **cgroups, int max, int *ncg, struct pod_net *net)
{
	Zapc__Engine__ToAgent m = ZAPC__ENGINE__TO_AGENT__INIT;
	Zapc__Engine__PodNeeded pn = ZAPC__ENGINE__POD_NEEDED__INIT;
	Zapc__Engine__ToEngine *a = NULL;
	uint8_t *p = NULL;
	size_t len = 0;
	int fds[2], nfds = 0, rc;

	pn.name = (char *)(name ? name : "");
	pn.ip = (char *)(ip ? ip : "");
	pn.hostname = (char *)(hostname ? hostname : "");
	pn.net_by_engine = net->want;
	m.msg_case = ZAPC__ENGINE__TO_AGENT__MSG_POD_NEEDED;
	m.pod_needed = &pn;
	if ((rc = send_msg(&m)) < 0)
		return rc;
	rc = frame_recv(ctl, 64 << 10, &p, &len, fds, 2, &nfds);
	if (rc < 0) {
		log_err("control channel: waiting for the pod: %s",
			rc == -ENODATA ? "the agent closed the channel" : strerror(-rc));
		return rc;
	}
	a = zapc__engine__to_engine__unpack(NULL, len, p);
	free(p);
	rc = -EPROTO;
	if (!a) {
		log_err("control channel: malformed answer to PodNeeded");
	} else if (a->msg_case == ZAPC__ENGINE__TO_ENGINE__MSG_ABORT) {
		log_err("%s", a->abort->reason && a->abort->reason[0] ? a->abort->reason :
			"restore aborted by the agent");
		rc = -ECANCELED;
	} else if (a->msg_case != ZAPC__ENGINE__TO_ENGINE__MSG_POD_READY || nfds != 1) {
		log_err("control channel: expected PodReady with the pod's netns");
	} else {
		*ncg = 0;
		for (size_t i = 0; i < a->pod_ready->n_cgroups && *ncg < max; i++)
			cgroups[(*ncg)++] = strdup(a->pod_ready->cgroups[i]);
		*netns_fd = fds[0];
		nfds = 0;
		rc = 0;
		Zapc__Engine__PodReady *pr = a->pod_ready;
		net->deferred = net->want && pr->net_deferred;
		if (net->deferred) {
			snprintf(net->ip, sizeof(net->ip), "%s", pr->ip ? pr->ip : "");
			snprintf(net->gateway, sizeof(net->gateway), "%s", pr->gateway ? pr->gateway : "");
			net->prefix = pr->prefix;
		}
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (a)
		zapc__engine__to_engine__free_unpacked(a, NULL);
	return rc;
}

void control_progress(const char *phase, uint64_t bytes)
{
	Zapc__Engine__ToAgent m = ZAPC__ENGINE__TO_AGENT__INIT;
	Zapc__Engine__Progress pr = ZAPC__ENGINE__PROGRESS__INIT;

	if (ctl < 0)
		return;
	pr.phase = (char *)phase;
	pr.bytes = bytes;
	m.msg_case = ZAPC__ENGINE__TO_AGENT__MSG_PROGRESS;
	m.progress = &pr;
	send_msg(&m);
}

void control_done(const struct control_done *d)
{
	Zapc__Engine__ToAgent m = ZAPC__ENGINE__TO_AGENT__INIT;
	Zapc__Engine__Done dn = ZAPC__ENGINE__DONE__INIT;
	const char *why = log_last_err();

	if (ctl < 0)
		return;
	dn.status = d->status;
	dn.error = (char *)(d->status && why[0] ? why : "");
	dn.init_pid = d->init_pid;
	dn.frozen_us = d->frozen_us;
	dn.image_bytes = d->image_bytes;
	dn.processes = d->processes;
	dn.threads = d->threads;
	dn.hold_kept = d->hold_kept;
	m.msg_case = ZAPC__ENGINE__TO_AGENT__MSG_DONE;
	m.done = &dn;
	send_msg(&m);
	close(ctl);
	ctl = -1;
}

/* --- coordinated operations (manager; docs/manager-protocol.md) ----------- */

static int sync_on;

void control_sync_enable(void) { sync_on = 1; }

int control_sync(const char *phase, uint64_t frozen_us)
{
	Zapc__Engine__ToAgent m = ZAPC__ENGINE__TO_AGENT__INIT;
	Zapc__Engine__Sync sy = ZAPC__ENGINE__SYNC__INIT;
	Zapc__Engine__ToEngine *a;
	uint8_t *p = NULL;
	size_t len = 0;
	int nfds = 0, rc;

	if (!sync_on || ctl < 0)
		return 0;
	sy.phase = (char *)phase;
	sy.frozen_us = frozen_us;
	m.msg_case = ZAPC__ENGINE__TO_AGENT__MSG_SYNC;
	m.sync = &sy;
	if ((rc = send_msg(&m)) < 0)
		return rc;
	/* The agent owns the phase timeout and answers Abort, and a dead agent
	 * closes the channel (ENODATA).  A safety net all the same: an engine
	 * whose channel stays silent this long aborts instead of holding a pod
	 * (seen: an agent end kept open by another process after the agent died). */
	struct pollfd pf = { .fd = ctl, .events = POLLIN };
	if (poll(&pf, 1, SYNC_WAIT_MAX_MS) == 0) {
		log_err("%s: no answer from the agent within %d s; aborting", phase, SYNC_WAIT_MAX_MS / 1000);
		return -ETIMEDOUT;
	}
	struct timeval none = { 0, 0 };
	setsockopt(ctl, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
	rc = frame_recv(ctl, 64 << 10, &p, &len, NULL, 0, &nfds);
	if (rc < 0) {
		log_err("%s: control channel: %s", phase,
			rc == -ENODATA ? "the agent closed the channel" : strerror(-rc));
		return rc;
	}
	a = zapc__engine__to_engine__unpack(NULL, len, p);
	free(p);
	rc = -EPROTO;
	if (!a)
		log_err("%s: control channel: malformed answer to Sync", phase);
	else if (a->msg_case == ZAPC__ENGINE__TO_ENGINE__MSG_CONT)
		rc = 0;
	else if (a->msg_case == ZAPC__ENGINE__TO_ENGINE__MSG_ABORT) {
		log_err("%s", a->abort->reason && a->abort->reason[0] ? a->abort->reason :
			"aborted by the agent");
		rc = -ECANCELED;
	} else
		log_err("%s: control channel: expected Continue or Abort", phase);
	if (a)
		zapc__engine__to_engine__free_unpacked(a, NULL);
	return rc;
}
