/*
 * pod.c — pod life cycle: prepare, start, adopt, exec, destroy (see pod.h).
 *
 * Kernel facts relied on:
 *  - clone3() takes CLONE_NEWTIME (it does not fit clone()'s flags), and the
 *    child of clone3(CLONE_NEWPID) is pid 1 of the new pid ns, so it can
 *    mount the pod's /proc itself before it execs zapc-init;
 *  - setns(pidfd, CLONE_NEW*) joins several namespaces of a process at once
 *    (Linux >= 5.8); a pid ns joined that way applies to children only,
 *    hence the helper forks once more in pod_exec;
 *  - a netns lives as long as an fd refers to it, so pod_prepare can make
 *    one with no process: unshare, open /proc/thread-self/ns/net, setns back;
 *  - when pid 1 of a pid ns dies the kernel SIGKILLs the rest of the ns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/netlink.h"
#include "agent/pod.h"
#include "lib/fsutil.h"
#include "lib/log.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define POD_NS_FLAGS (CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWNS)
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int pod_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > POD_NAME_MAX || name[0] == '.' || name[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

struct pod *pod_find(struct pod_node *node, const char *name)
{
	for (struct pod *p = node->pods; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

struct pod *pod_find_pid(struct pod_node *node, pid_t pid)
{
	for (struct pod *p = node->pods; p; p = p->next)
		if (p->init_pid == pid)
			return p;
	return NULL;
}

void pod_mac_of_ip(struct in_addr ip, uint8_t mac[6])
{
	mac[0] = 0x02;	/* locally administered, unicast */
	mac[1] = 0x5a;	/* 'Z' */
	memcpy(mac + 2, &ip.s_addr, 4);	/* network order: a.b.c.d */
}

static uint32_t fnv1a(const char *a, const char *b)
{
	uint32_t h = 2166136261u;

	for (; *a; a++)
		h = (h ^ (uint8_t)*a) * 16777619u;
	h = (h ^ '/') * 16777619u;
	for (; *b; b++)
		h = (h ^ (uint8_t)*b) * 16777619u;
	return h;
}

int pod_node_init(struct pod_node *node, const char *name, const char *state_dir,
		  const char *pod_net, const char *bridge, const char *cgroup_parent,
		  const char *init_exe)
{
	char net[32], *slash;
	int rc, n;

	memset(node, 0, sizeof(*node));
	node->init_exe_fd = -1;
	snprintf(node->name, sizeof(node->name), "%s", name);
	snprintf(node->state_dir, sizeof(node->state_dir), "%s", state_dir);
	snprintf(node->cgroup_parent, sizeof(node->cgroup_parent), "%s", cgroup_parent);
	if (strlen(bridge) >= sizeof(node->bridge)) {
		log_err("bridge name %s: longer than 15 characters", bridge);
		return -EINVAL;
	}
	snprintf(node->bridge, sizeof(node->bridge), "%s", bridge);

	snprintf(net, sizeof(net), "%s", pod_net);
	slash = strchr(net, '/');
	if (slash)
		*slash = 0;
	if (!slash || inet_pton(AF_INET, net, &node->net) != 1 ||
	    (node->prefix = atoi(slash + 1)) < 8 || node->prefix > 30) {
		log_err("pod network %s: want A.B.C.D/P with 8 <= P <= 30", pod_net);
		return -EINVAL;
	}
	node->net_host = ntohl(node->net.s_addr) & (0xffffffffu << (32 - node->prefix));
	node->net.s_addr = htonl(node->net_host);
	node->gateway.s_addr = htonl(node->net_host + 1);
	node->pool_lo = node->net_host + 2;
	node->pool_hi = node->net_host + (uint32_t)((1ull << (32 - node->prefix)) - 2);

	node->init_exe_fd = open(init_exe, O_PATH | O_CLOEXEC);
	if (node->init_exe_fd < 0) {
		rc = -errno;
		log_err("pod init %s: %s", init_exe, strerror(errno));
		return rc;
	}
	rc = cgroup_detect();
	if (rc < 0)
		return rc;
	mkdir_p(state_dir, 0755);

	/* Leftovers of a previous agent with this cgroup parent and bridge. */
	n = cgroup_clean_parent(cgroup_parent);
	if (n > 0)
		log_info("removed %d stale pod cgroups under %s", n, cgroup_parent);
	n = net_bridge_flush(bridge, "zv");
	if (n > 0)
		log_info("removed %d stale pod veths from %s", n, bridge);

	rc = net_bridge_ensure(bridge, node->gateway, node->prefix, &node->bridge_created,
			       &node->bridge_ifindex);
	if (rc < 0)
		return rc;
	n = net_host_route_flush(node->bridge_ifindex);
	if (n > 0)
		log_info("removed %d stale pod routes from %s", n, bridge);
	/*
	 * Pods of one cluster share the pod network, but only those on this node
	 * are on this bridge.  The node routes for the others (routes to other
	 * nodes' pools, /32s for pods that moved — the cluster's business), and
	 * answers ARP for them on the bridge (proxy_arp answers only for
	 * addresses routed out of another interface, so local pods still answer
	 * for themselves).  Both sysctls apply to the agent's netns only.
	 */
	{
		char p[128];

		snprintf(p, sizeof(p), "/proc/sys/net/ipv4/conf/%s/proxy_arp", bridge);
		if (write_file("/proc/sys/net/ipv4/ip_forward", "1") < 0 ||
		    write_file(p, "1") < 0)
			log_warn("node %s: cannot enable forwarding/proxy ARP: pods will only "
				 "reach pods of this node", name);
	}
	return 0;
}

int pod_node_set_pool(struct pod_node *node, const char *pool)
{
	char buf[32], *slash;
	struct in_addr a;
	uint32_t lo, hi, size;
	int prefix;

	snprintf(buf, sizeof(buf), "%s", pool);
	slash = strchr(buf, '/');
	if (slash)
		*slash = 0;
	if (!slash || inet_pton(AF_INET, buf, &a) != 1 || (prefix = atoi(slash + 1)) < node->prefix ||
	    prefix > 30) {
		log_err("pod pool %s: want A.B.C.D/P inside the pod network, P <= 30", pool);
		return -EINVAL;
	}
	size = (uint32_t)(1ull << (32 - prefix));
	lo = ntohl(a.s_addr) & ~(size - 1);
	if ((lo & (0xffffffffu << (32 - node->prefix))) != node->net_host) {
		log_err("pod pool %s: not inside the pod network", pool);
		return -EINVAL;
	}
	hi = lo + size - 2;
	lo += 1;
	node->pool_lo = lo > node->pool_lo ? lo : node->pool_lo;
	node->pool_hi = hi < node->pool_hi ? hi : node->pool_hi;
	return 0;
}

static void pod_free(struct pod_node *node, struct pod *pod)
{
	struct pod **pp;

	for (pp = &node->pods; *pp; pp = &(*pp)->next)
		if (*pp == pod) {
			*pp = pod->next;
			break;
		}
	if (node->forget && pod->watch)
		node->forget(pod);
	if (pod->argv) {
		for (char **a = pod->argv; *a; a++)
			free(*a);
		free(pod->argv);
	}
	free(pod);
}

/* Remove the pod's kernel objects (its processes must be dead or dying). */
static void pod_teardown(struct pod_node *node, struct pod *pod)
{
	cgroup_kill(&pod->cg);
	cgroup_remove(&pod->cg, 3000);
	net_link_delete(pod->veth);
	if (pod->host_route)
		net_host_route(0, pod->ip, node->bridge_ifindex);
	pod->host_route = 0;
	if (pod->netns_fd >= 0)
		close(pod->netns_fd);
	pod->netns_fd = -1;
	if (pod->pidfd >= 0)
		close(pod->pidfd);
	pod->pidfd = -1;
}

static int ip_in_use(struct pod_node *node, struct in_addr ip)
{
	for (struct pod *p = node->pods; p; p = p->next)
		if (p->ip.s_addr == ip.s_addr)
			return 1;
	return 0;
}

static int avoided(const struct pod_spec *spec, struct in_addr ip)
{
	struct in_addr a;

	for (size_t i = 0; i < spec->n_avoid; i++)
		if (inet_pton(AF_INET, spec->avoid[i], &a) == 1 && a.s_addr == ip.s_addr)
			return 1;
	return 0;
}

static int pick_ip(struct pod_node *node, const struct pod_spec *spec, struct in_addr *ip)
{
	const char *want = spec->ip;
	uint32_t size = 1u << (32 - node->prefix), h;

	if (want && want[0]) {
		if (inet_pton(AF_INET, want, ip) != 1) {
			log_err("pod ip %s: not an IPv4 address", want);
			return -EINVAL;
		}
		h = ntohl(ip->s_addr);
		if ((h & ~(size - 1)) != node->net_host || h - node->net_host < 2 ||
		    h - node->net_host >= size - 1) {
			log_err("pod ip %s: not a pod address of %s/%d", want,
				inet_ntoa(node->net), node->prefix);
			return -EINVAL;
		}
		if (ip_in_use(node, *ip)) {
			log_err("pod ip %s: in use", want);
			return -EADDRINUSE;
		}
		return 0;
	}
	for (h = node->pool_lo; h <= node->pool_hi; h++) {
		ip->s_addr = htonl(h);
		if (!ip_in_use(node, *ip) && !avoided(spec, *ip))
			return 0;
	}
	log_err("pod network %s/%d: no free address", inet_ntoa(node->net), node->prefix);
	return -EADDRNOTAVAIL;
}

/* A new network namespace held only by the returned fd. */
static int netns_new(void)
{
	int self, fd = -1, rc;

	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	if (unshare(CLONE_NEWNET) < 0) {
		rc = -errno;
		goto out;
	}
	fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	rc = fd < 0 ? -errno : fd;
	if (setns(self, CLONE_NEWNET) < 0) {
		/* Cannot happen for root; if it did, the agent would be lost. */
		log_err("netns: cannot return to the node netns: %s", strerror(errno));
		abort();
	}
out:
	close(self);
	return rc;
}

int pod_prepare(struct pod_node *node, const struct pod_spec *spec, struct pod **out)
{
	struct pod *pod;
	int rc;

	if (!pod_name_valid(spec->name)) {
		log_err("pod name '%.40s': want 1-%d of [A-Za-z0-9_.-]", spec->name, POD_NAME_MAX);
		return -EINVAL;
	}
	if (pod_find(node, spec->name)) {
		log_err("pod %s: exists", spec->name);
		return -EEXIST;
	}
	pod = calloc(1, sizeof(*pod));
	if (!pod)
		return -ENOMEM;
	pod->netns_fd = -1;
	pod->pidfd = -1;
	snprintf(pod->name, sizeof(pod->name), "%s", spec->name);
	snprintf(pod->root, sizeof(pod->root), "%s", spec->root ? spec->root : "");
	if (snprintf(pod->console, sizeof(pod->console), "%s/%s.log", node->state_dir,
		     pod->name) >= (int)sizeof(pod->console)) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	pod->uid = spec->uid;
	pod->gid = spec->gid;
	pod->created = time(NULL);
	rc = pick_ip(node, spec, &pod->ip);
	if (rc < 0)
		goto fail;
	pod_mac_of_ip(pod->ip, pod->mac);
	snprintf(pod->veth, sizeof(pod->veth), "zv%08x", fnv1a(node->name, pod->name));
	for (struct pod *p = node->pods; p; p = p->next)
		if (strcmp(p->veth, pod->veth) == 0) {
			log_err("pod %s: veth name %s collides with pod %s", pod->name, pod->veth, p->name);
			rc = -EEXIST;
			goto fail;
		}

	rc = cgroup_create(node->cgroup_parent, pod->name, &pod->cg);
	if (rc < 0)
		goto fail;
	rc = netns_new();
	if (rc < 0) {
		log_err("pod %s: new netns: %s", pod->name, strerror(-rc));
		goto fail_cg;
	}
	pod->netns_fd = rc;
	rc = net_veth_create(pod->veth, node->bridge_ifindex, pod->netns_fd, pod->mac);
	if (rc < 0)
		goto fail_cg;
	rc = spec->defer_net ? 0 : net_pod_configure(pod->netns_fd, pod->ip, node->prefix, node->gateway);
	if (rc < 0)
		goto fail_cg;
	rc = net_host_route(1, pod->ip, node->bridge_ifindex);
	if (rc < 0)
		goto fail_cg;
	pod->host_route = 1;
	pod->state = POD_PREPARED;
	pod->next = node->pods;
	node->pods = pod;
	*out = pod;
	return 0;
fail_cg:
	pod_teardown(node, pod);
fail:
	free(pod);
	return rc;
}

static char **strv_dup(char *const v[])
{
	size_t n = 0;
	char **c;

	while (v && v[n])
		n++;
	c = calloc(n + 1, sizeof(*c));
	for (size_t i = 0; c && i < n; i++)
		c[i] = strdup(v[i]);
	return c;
}

static void reset_signals(void)
{
	sigset_t all;

	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

struct start_args {
	struct pod_node *node;
	struct pod *pod;
	char **init_argv;
	char *const *envp;
	int go_fd, err_fd, null_fd, console_fd, ready_fd;
};

/* The clone3 child: becomes the pod's pid 1 (zapc-init).  Never returns. */
static void __attribute__((noreturn)) start_child(struct start_args *a)
{
	int step = 0, e = 0, exe_fd;
	char go;

	reset_signals();
	if (read(a->go_fd, &go, 1) != 1)
		_exit(127);	/* the agent gave up */
	step = 1;
	if (setns(a->pod->netns_fd, CLONE_NEWNET) < 0)
		goto fail;
	step = 2;
	if (sethostname(a->pod->name, strlen(a->pod->name)) < 0)
		goto fail;
	step = 3;
	e = pod_setup_mounts(a->pod->root);
	if (e < 0) {
		errno = -e;
		goto fail;
	}
	step = 4;
	/* fds 0-3 are about to be reused: keep the ones still needed out of the way */
	exe_fd = fcntl(a->node->init_exe_fd, F_DUPFD_CLOEXEC, 10);
	if (exe_fd < 0)
		goto fail;
	if (a->err_fd <= 3) {
		int e2 = fcntl(a->err_fd, F_DUPFD_CLOEXEC, 10);

		if (e2 < 0)
			goto fail;
		a->err_fd = e2;
	}
	if (dup2(a->null_fd, 0) < 0 || dup2(a->console_fd, 1) < 0 || dup2(a->console_fd, 2) < 0)
		goto fail;
	/* fd 3: zapc-init's start report (-r 3); dup2 clears close-on-exec */
	if (a->ready_fd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(a->ready_fd, 3) < 0)
		goto fail;
	syscall(SYS_close_range, 4, ~0U, CLOSE_RANGE_CLOEXEC);
	step = 5;
	syscall(SYS_execveat, exe_fd, "", a->init_argv, a->envp, AT_EMPTY_PATH);
fail:
	e = errno;
	{
		int msg[2] = { step, e };

		if (write(a->err_fd, msg, sizeof(msg)) < 0)
			_exit(126);
	}
	_exit(127);
}

/*
 * zapc-init's start report: EOF with nothing written = the workload was
 * exec'd; "ERRNO message" = it could not be.  Bounded wait (10 s): a hung
 * init must not hang the agent.
 */
static int wait_workload_started(struct pod *pod, int fd, const char *cmd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char msg[257];
	ssize_t n;
	int e;

	if (poll(&pfd, 1, 10000) <= 0) {
		log_err("pod %s: zapc-init did not report the start of %s within 10 s", pod->name, cmd);
		return -ETIMEDOUT;
	}
	n = read(fd, msg, sizeof(msg) - 1);
	if (n <= 0)
		return 0;
	msg[n] = 0;
	e = atoi(msg);
	log_err("pod %s: cannot start %s", pod->name, strchr(msg, ' ') ? strchr(msg, ' ') + 1 : msg);
	return e > 0 ? -e : -EIO;
}

int pod_start(struct pod_node *node, struct pod *pod, char *const argv[], char *const envp[],
	      const char *cwd)
{
	static const char *steps[] = { "wait", "join netns", "set hostname", "mounts",
				       "stdio", "exec zapc-init" };
	static char *default_env[] = { DEFAULT_PATH, NULL };
	struct start_args a = { .node = node, .pod = pod, .go_fd = -1, .err_fd = -1,
				.null_fd = -1, .console_fd = -1, .ready_fd = -1 };
	int go[2] = { -1, -1 }, err[2] = { -1, -1 }, ready[2] = { -1, -1 };
	int pidfd = -1, rc = 0, msg[2], st;
	char ubuf[16], gbuf[16];
	size_t n = 0;
	pid_t pid;

	if (!argv || !argv[0])
		return -EINVAL;
	while (argv[n])
		n++;
	a.init_argv = calloc(n + 12, sizeof(char *));
	if (!a.init_argv)
		return -ENOMEM;
	snprintf(ubuf, sizeof(ubuf), "%u", (unsigned)pod->uid);
	snprintf(gbuf, sizeof(gbuf), "%u", (unsigned)pod->gid);
	{
		size_t i = 0;

		a.init_argv[i++] = "zapc-init";
		a.init_argv[i++] = "-u";
		a.init_argv[i++] = ubuf;
		a.init_argv[i++] = "-g";
		a.init_argv[i++] = gbuf;
		a.init_argv[i++] = "-d";
		a.init_argv[i++] = (char *)(cwd && cwd[0] ? cwd : "/");
		a.init_argv[i++] = "-r";
		a.init_argv[i++] = "3";
		a.init_argv[i++] = "--";
		for (size_t j = 0; j < n; j++)
			a.init_argv[i++] = argv[j];
	}
	a.envp = envp && envp[0] ? envp : default_env;

	a.null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	a.console_fd = open(pod->console, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
	if (a.null_fd < 0 || a.console_fd < 0) {
		rc = -errno;
		log_err("pod %s: console %s: %s", pod->name, pod->console, strerror(errno));
		goto out;
	}
	pod->console_owned = 1;
	if (fchown(a.console_fd, pod->uid, pod->gid) < 0)
		log_warn("pod %s: chown console: %s", pod->name, strerror(errno));
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	a.go_fd = go[0];
	a.err_fd = err[1];
	a.ready_fd = ready[1];

	{
		struct clone_args ca = {
			.flags = POD_NS_FLAGS & ~CLONE_NEWNET,
			.pidfd = (uint64_t)(uintptr_t)&pidfd,
			.exit_signal = SIGCHLD,
		};

		ca.flags |= CLONE_NEWTIME | CLONE_PIDFD;
		pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	}
	if (pid < 0) {
		rc = -errno;
		log_err("pod %s: clone3: %s", pod->name, strerror(errno));
		goto out;
	}
	if (pid == 0)
		start_child(&a);

	close(go[0]);
	go[0] = -1;
	close(err[1]);
	err[1] = -1;
	close(ready[1]);
	ready[1] = -1;
	rc = cgroup_attach(&pod->cg, pid);
	if (rc < 0) {
		log_err("pod %s: attach init %d to cgroups: %s", pod->name, pid, strerror(-rc));
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		close(pidfd);
		goto out;
	}
	if (write(go[1], "g", 1) != 1) {
		rc = -errno;
		goto out;
	}
	if (read(err[0], msg, sizeof(msg)) == (ssize_t)sizeof(msg)) {
		rc = -msg[1];
		log_err("pod %s: start: %s: %s", pod->name,
			steps[msg[0] >= 0 && msg[0] <= 5 ? msg[0] : 0], strerror(msg[1]));
		waitpid(pid, &st, 0);
		close(pidfd);
		goto out;
	}
	rc = wait_workload_started(pod, ready[0], argv[0]);
	if (rc < 0) {
		waitpid(pid, &st, 0);
		close(pidfd);
		goto out;
	}
	pod->init_pid = pid;
	pod->pidfd = pidfd;
	pod->argv = strv_dup(argv);
	pod->state = POD_RUNNING;
	if (node->watch)
		rc = node->watch(node, pod);
out:
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (err[i] >= 0)
			close(err[i]);
		if (ready[i] >= 0)
			close(ready[i]);
	}
	if (a.null_fd >= 0)
		close(a.null_fd);
	if (a.console_fd >= 0)
		close(a.console_fd);
	free(a.init_argv);
	return rc;
}

/* The workload of a restored pod, for `pod list`: the restored zapc-init's
 * command line is "zapc-init [options] -- CMD ARGS". */
static char **workload_of(pid_t init_pid)
{
	char path[64], buf[4096], *argv[64];
	ssize_t n;
	int fd, na = 0, after = 0;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", init_pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	for (char *a = buf; a < buf + n && na < 63; a += strlen(a) + 1) {
		if (after)
			argv[na++] = a;
		else if (!strcmp(a, "--"))
			after = 1;
	}
	argv[na] = NULL;
	return na ? strv_dup(argv) : NULL;
}

int pod_adopt(struct pod_node *node, struct pod *pod, pid_t init_pid)
{
	int fd = pidfd_open_(init_pid);

	if (fd < 0) {
		int rc = -errno;

		log_err("pod %s: adopt init %d: %s", pod->name, init_pid, strerror(errno));
		return rc;
	}
	pod->init_pid = init_pid;
	pod->pidfd = fd;
	pod->state = POD_RUNNING;
	if (!pod->argv)
		pod->argv = workload_of(init_pid);
	return node->watch ? node->watch(node, pod) : 0;
}

int pod_destroy(struct pod_node *node, struct pod *pod)
{
	int st;

	pod->state = POD_STOPPING;
	if (pod->pidfd >= 0) {
		struct pollfd pfd = { .fd = pod->pidfd, .events = POLLIN };

		pidfd_kill(pod->pidfd, SIGKILL);
		cgroup_kill(&pod->cg);
		if (poll(&pfd, 1, 5000) <= 0)
			log_warn("pod %s: init %d did not die within 5 s", pod->name, pod->init_pid);
		waitpid(pod->init_pid, &st, WNOHANG);	/* reap it if it is ours */
	}
	pod_teardown(node, pod);
	if (pod->console_owned)
		unlink(pod->console);
	log_info("pod %s destroyed", pod->name);
	pod_free(node, pod);
	return 0;
}

void pod_exited(struct pod_node *node, struct pod *pod, int status)
{
	char how[48];

	if (status < 0)
		snprintf(how, sizeof(how), "ended");
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	pod_teardown(node, pod);
	log_info("pod %s: init %d %s; pod torn down", pod->name, pod->init_pid, how);
	pod_free(node, pod);
}

static pid_t exec_child;

static void forward_signal(int sig)
{
	kill(exec_child, sig);
}

/* In the pod: stdio from fds, privileges dropped, exec.  On failure the
 * reason goes to stderr and, with report >= 0, "errno" to report. */
static void __attribute__((noreturn)) exec_command(char *const argv[], char *const envp[], const char *cwd,
						   uid_t uid, gid_t gid, const int fds[3], int report)
{
	static char *default_env[] = { DEFAULT_PATH, NULL };
	int null_fd = open("/dev/null", O_RDWR), e;
	const char *what = argv[0];

	for (int i = 0; i < 3; i++)
		if (dup2(fds[i] >= 0 ? fds[i] : null_fd, i) < 0)
			_exit(126);
	syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);   /* report included: closes on exec */
	if (uid != 0 && (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)) {
		what = "drop privileges";
		goto fail;
	}
	if (chdir(cwd && cwd[0] ? cwd : "/") < 0) {
		what = cwd;
		goto fail;
	}
	execvpe(argv[0], argv, envp && envp[0] ? envp : default_env);
fail:
	e = errno;
	dprintf(2, "zapc: %s: %s\n", what, strerror(e));
	if (report >= 0)
		dprintf(report, "%d", e);
	_exit(e == ENOENT ? 127 : 126);
}

/*
 * Detached: the command becomes a process of the pod like any other — the
 * child of the pod's init (an intermediate child exits at once, so the
 * orphan is re-parented to the namespace's init) in a session of its own.
 * Only such processes can be checkpointed with the pod: an attached exec's
 * command has its parent (this helper) and session outside the pod.  The
 * helper returns 0 once the command has been exec'd, or its exec error.
 */
static void __attribute__((noreturn)) exec_detached(char *const argv[], char *const envp[], const char *cwd,
						    uid_t uid, gid_t gid, const int fds[3])
{
	int rep[2], st, e = 0;
	char msg[32];
	ssize_t n;
	pid_t pid;

	if (pipe2(rep, O_CLOEXEC) < 0)
		_exit(126);
	pid = fork();
	if (pid < 0)
		_exit(126);
	if (pid == 0) {
		pid_t c = fork();

		if (c == 0) {
			close(rep[0]);
			setsid();
			exec_command(argv, envp, cwd, uid, gid, fds, rep[1]);
		}
		_exit(c < 0 ? 126 : 0);
	}
	close(rep[1]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			_exit(126);
	do
		n = read(rep[0], msg, sizeof(msg) - 1);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		msg[n] = 0;
		e = atoi(msg);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		_exit(126);
	_exit(e ? (e == ENOENT ? 127 : 126) : 0);
}

/* The exec helper (a child of the agent): join the pod, fork, wait.  Never returns. */
static void __attribute__((noreturn)) exec_helper(struct pod *pod, char *const argv[],
						  char *const envp[], const char *cwd,
						  uid_t uid, gid_t gid, const int fds[3], int detach)
{
	int st;
	pid_t pid;

	reset_signals();
	if (cgroup_attach(&pod->cg, 0) < 0 ||
	    (setns(pod->pidfd, POD_NS_FLAGS | CLONE_NEWTIME) < 0 &&
	     setns(pod->pidfd, POD_NS_FLAGS) < 0)) {
		dprintf(fds[2] >= 0 ? fds[2] : 2, "zapc: pod %s: join: %s\n", pod->name, strerror(errno));
		_exit(126);
	}
	if (detach)
		exec_detached(argv, envp, cwd, uid, gid, fds);
	pid = fork();
	if (pid < 0)
		_exit(126);
	if (pid == 0)
		exec_command(argv, envp, cwd, uid, gid, fds, -1);
	/* Hold none of the agent's sockets: clients must see EOF when it closes them. */
	syscall(SYS_close_range, 0, ~0U, 0);
	/* The agent sends SIGHUP when the client has gone: pass it (and TERM/INT) on. */
	exec_child = pid;
	signal(SIGHUP, forward_signal);
	signal(SIGTERM, forward_signal);
	signal(SIGINT, forward_signal);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			_exit(126);
	_exit(WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st));
}

int pod_exec(struct pod_node *node, struct pod *pod, char *const argv[], char *const envp[],
	     const char *cwd, uid_t uid, gid_t gid, const int fds[3], int detach, pid_t *helper)
{
	pid_t pid;

	if (pod->state != POD_RUNNING || pod->pidfd < 0)
		return -ESRCH;
	if (!argv || !argv[0])
		return -EINVAL;
	pid = fork();
	if (pid < 0) {
		int rc = -errno;

		log_err("pod %s: exec: fork: %s", pod->name, strerror(errno));
		return rc;
	}
	if (pid == 0)
		exec_helper(pod, argv, envp, cwd, uid, gid, fds, detach);
	*helper = pid;
	return 0;
}

void pod_node_fini(struct pod_node *node, int keep_pods)
{
	if (!keep_pods) {
		while (node->pods)
			pod_destroy(node, node->pods);
		cgroup_remove_parent(node->cgroup_parent);
		if (node->bridge_created)
			net_link_delete(node->bridge);
	} else {
		while (node->pods) {
			struct pod *p = node->pods;

			if (p->netns_fd >= 0)
				close(p->netns_fd);
			if (p->pidfd >= 0)
				close(p->pidfd);
			log_info("pod %s left running (init %d)", p->name, p->init_pid);
			pod_free(node, p);
		}
	}
	if (node->init_exe_fd >= 0)
		close(node->init_exe_fd);
	node->init_exe_fd = -1;
}
