/*
 * ca.h — `zapc ca`: the cluster certificate authority (see docs/tls.md).
 *
 *   zapc ca init DIR [--cn NAME] [--days N] [--force]
 *   zapc ca issue NAME --ca DIR -o OUTDIR [--ip ADDR]... [--dns NAME]...
 *                 [--days N] [--force]
 *
 * `init` writes DIR/ca.key (0600) and DIR/ca.crt; `issue` writes
 * OUTDIR/node.key (0600), OUTDIR/node.crt and a copy of DIR/ca.crt, so
 * OUTDIR is a complete TLS directory for lib/tls.
 */
#ifndef ZAPC_CLI_CA_H
#define ZAPC_CLI_CA_H

/* argv[0] is "ca"; returns the exit status (0 ok, 1 error, 2 usage). */
int cmd_ca(int argc, char **argv);

#define CA_KEY  "ca.key"

/*
 * The same operations for programs and tests.  days < 0 makes a certificate
 * that expired -days days ago (tests of the refusal path).  0 or -errno,
 * one line logged on error.
 */
int ca_init(const char *dir, const char *cn, int days, int force);

struct ca_issue_req {
	const char *ca_dir;
	const char *name;	/* CN and first DNS SAN */
	const char *out_dir;
	const char **ips;	/* IP SANs */
	int n_ips;
	const char **dns;	/* extra DNS SANs */
	int n_dns;
	int days;
	int force;
};
int ca_issue(const struct ca_issue_req *req);

#endif
