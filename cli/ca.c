/*
 * ca.c — `zapc ca init` and `zapc ca issue`: a tiny cluster CA written with
 * the OpenSSL 3 API (no openssl(1) needed on the nodes).
 *
 * Keys are EC P-256 (ECDSA/SHA-256: small, fast handshakes, accepted
 * everywhere).  Serial numbers are 159 random bits, so no serial file is
 * kept.  Node certificates carry CN=NAME, SAN DNS:NAME (+ --dns, --ip) and
 * both TLS usages (serverAuth, clientAuth): an agent is a server for the
 * manager and a client of another agent when it streams a migration.
 * Files are written to a temporary name and renamed, keys with mode 0600,
 * and an existing key is never overwritten without --force.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cli/ca.h"
#include "lib/log.h"
#include "lib/tls.h"

#define CA_DEFAULT_CN    "zapc cluster CA"
#define CA_DEFAULT_DAYS  3650
#define NODE_DEFAULT_DAYS 825
#define CA_MAX_SANS      64

static const char *ossl_err(void)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()))
		last = e;
	return last ? ERR_reason_error_string(last) : "unknown error";
}

/* mkdir -p with mode for the last component (and any created parent). */
static int make_dir(const char *dir, mode_t mode)
{
	char path[4096], *p;

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	for (p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

enum pem_kind { PEM_KEY, PEM_CERT };

/* Write one PEM object to DIR/NAME atomically with the given mode. */
static int write_pem(const char *dir, const char *name, enum pem_kind kind, void *obj,
		     mode_t mode)
{
	char path[4096], tmp[4200];
	FILE *f = NULL;
	int fd, r = 0, ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		r = -errno;
		log_err("ca: create %s: %s", tmp, strerror(errno));
		return r;
	}
	if (fchmod(fd, mode) < 0 || !(f = fdopen(fd, "w"))) {
		r = -errno;
		log_err("ca: %s: %s", tmp, strerror(errno));
		close(fd);
		goto out;
	}
	if (kind == PEM_KEY)
		ok = PEM_write_PrivateKey(f, obj, NULL, NULL, 0, NULL, NULL);
	else
		ok = PEM_write_X509(f, obj);
	if (!ok) {
		log_err("ca: write %s: %s", tmp, ossl_err());
		r = -EIO;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
		log_err("ca: write %s: %s", tmp, strerror(errno));
		r = -EIO;
	}
	fclose(f);
	if (r == 0 && rename(tmp, path) < 0) {
		r = -errno;
		log_err("ca: rename %s: %s", path, strerror(errno));
	}
out:
	if (r < 0)
		unlink(tmp);
	return r;
}

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	if (!k)
		log_err("ca: cannot generate EC P-256 key: %s", ossl_err());
	return k;
}

/* Validity: from an hour ago (clock skew between nodes) for `days` days;
 * days < 0: a window that ended -days days ago. */
static int set_validity(X509 *x, int days)
{
	long before = -3600, after = (long)days * 86400;

	if (days < 0)
		before = after - 86400;
	return X509_gmtime_adj(X509_getm_notBefore(x), before) &&
	       X509_gmtime_adj(X509_getm_notAfter(x), after);
}

static int set_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	int ok = bn && BN_rand(bn, 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
		 BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));

	BN_free(bn);
	return ok;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext) {
		log_err("ca: extension %s=%s: %s", OBJ_nid2sn(nid), value, ossl_err());
		return 0;
	}
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* A certificate for `key` named `cn`, signed by (issuer, ikey); self-signed
 * when issuer is NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, int days, X509 *issuer,
		       EVP_PKEY *ikey)
{
	X509 *x = X509_new();
	X509_NAME *name;

	if (!x)
		goto fail;
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, X509_VERSION_3) || !set_serial(x) || !set_validity(x, days) ||
	    !X509_set_pubkey(x, key) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
					(const unsigned char *)"zapc", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name))
		goto fail;
	return x;
fail:
	log_err("ca: cannot build certificate for '%s': %s", cn, ossl_err());
	X509_free(x);
	return NULL;
}

static int sign(X509 *x, EVP_PKEY *ikey, const char *cn)
{
	if (!X509_sign(x, ikey, EVP_sha256())) {
		log_err("ca: cannot sign certificate for '%s': %s", cn, ossl_err());
		return -EIO;
	}
	return 0;
}

static int file_exists(const char *dir, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

int ca_init(const char *dir, const char *cn, int days, int force)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	int r;

	if (!cn)
		cn = CA_DEFAULT_CN;
	if (days == 0)
		days = CA_DEFAULT_DAYS;
	r = make_dir(dir, 0700);
	if (r < 0) {
		log_err("ca: create %s: %s", dir, strerror(-r));
		return r;
	}
	if (!force && file_exists(dir, CA_KEY)) {
		log_err("ca: %s/%s exists; refusing to replace a CA key (--force)", dir, CA_KEY);
		return -EEXIST;
	}
	r = -EIO;
	if (!(key = new_key()) || !(x = make_cert(key, cn, days, NULL, NULL)))
		goto out;
	if (!add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(x, x, NID_subject_key_identifier, "hash"))
		goto out;
	if ((r = sign(x, key, cn)) < 0)
		goto out;
	/* Key first: a ca.crt without its key would look like a usable CA. */
	r = write_pem(dir, CA_KEY, PEM_KEY, key, 0600);
	if (r == 0)
		r = write_pem(dir, TLS_CA_CERT, PEM_CERT, x, 0644);
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}

static int read_pem(const char *dir, const char *name, enum pem_kind kind, void **obj)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f) {
		int r = -errno;

		log_err("ca: open %s: %s", path, strerror(errno));
		return r;
	}
	*obj = kind == PEM_KEY ? (void *)PEM_read_PrivateKey(f, NULL, NULL, NULL)
			       : (void *)PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!*obj) {
		log_err("ca: %s: not a PEM %s: %s", path,
			kind == PEM_KEY ? "private key" : "certificate", ossl_err());
		return -EINVAL;
	}
	return 0;
}

/* Node names become DNS SANs: letters, digits, '-' and '.', 1..63 chars. */
static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[0] == '.')
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789-.") == n;
}

static int valid_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int build_san(const struct ca_issue_req *q, char *san, size_t len)
{
	size_t n = 0;
	int i, w;

	w = snprintf(san, len, "DNS:%s", q->name);
	if (w < 0 || (size_t)w >= len)
		return -ENAMETOOLONG;
	n = (size_t)w;
	for (i = 0; i < q->n_dns; i++) {
		if (!valid_name(q->dns[i])) {
			log_err("ca: --dns '%s': not a valid name", q->dns[i]);
			return -EINVAL;
		}
		w = snprintf(san + n, len - n, ",DNS:%s", q->dns[i]);
		if (w < 0 || (size_t)w >= len - n)
			return -ENAMETOOLONG;
		n += (size_t)w;
	}
	for (i = 0; i < q->n_ips; i++) {
		if (!valid_ip(q->ips[i])) {
			log_err("ca: --ip '%s': not an IPv4 or IPv6 address", q->ips[i]);
			return -EINVAL;
		}
		w = snprintf(san + n, len - n, ",IP:%s", q->ips[i]);
		if (w < 0 || (size_t)w >= len - n)
			return -ENAMETOOLONG;
		n += (size_t)w;
	}
	return 0;
}

int ca_issue(const struct ca_issue_req *q)
{
	EVP_PKEY *cakey = NULL, *key = NULL;
	X509 *cacert = NULL, *x = NULL;
	char san[8192];
	int r, days = q->days ? q->days : NODE_DEFAULT_DAYS;

	if (!valid_name(q->name)) {
		log_err("ca: node name '%s': use letters, digits, '-' and '.' (max 63)", q->name);
		return -EINVAL;
	}
	if ((r = build_san(q, san, sizeof(san))) < 0) {
		if (r == -ENAMETOOLONG)
			log_err("ca: too many subject alternative names");
		return r;
	}
	if ((r = read_pem(q->ca_dir, CA_KEY, PEM_KEY, (void **)&cakey)) < 0 ||
	    (r = read_pem(q->ca_dir, TLS_CA_CERT, PEM_CERT, (void **)&cacert)) < 0)
		goto out;
	if (!X509_check_private_key(cacert, cakey)) {
		log_err("ca: %s/%s does not match %s/%s", q->ca_dir, CA_KEY, q->ca_dir,
			TLS_CA_CERT);
		r = -EINVAL;
		goto out;
	}
	if ((r = make_dir(q->out_dir, 0700)) < 0) {
		log_err("ca: create %s: %s", q->out_dir, strerror(-r));
		goto out;
	}
	if (!q->force && file_exists(q->out_dir, TLS_NODE_KEY)) {
		log_err("ca: %s/%s exists; refusing to replace it (--force)", q->out_dir,
			TLS_NODE_KEY);
		r = -EEXIST;
		goto out;
	}
	r = -EIO;
	if (!(key = new_key()) || !(x = make_cert(key, q->name, days, cacert, cakey)))
		goto out;
	if (!add_ext(x, cacert, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, cacert, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, cacert, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    !add_ext(x, cacert, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, cacert, NID_authority_key_identifier, "keyid:always") ||
	    !add_ext(x, cacert, NID_subject_alt_name, san))
		goto out;
	if ((r = sign(x, cakey, q->name)) < 0)
		goto out;
	if ((r = write_pem(q->out_dir, TLS_NODE_KEY, PEM_KEY, key, 0600)) < 0 ||
	    (r = write_pem(q->out_dir, TLS_NODE_CERT, PEM_CERT, x, 0644)) < 0 ||
	    (r = write_pem(q->out_dir, TLS_CA_CERT, PEM_CERT, cacert, 0644)) < 0)
		goto out;
	r = 0;
out:
	X509_free(x);
	X509_free(cacert);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
	return r;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: zapc ca init DIR [--cn NAME] [--days N] [--force]\n"
		"       zapc ca issue NAME --ca DIR -o OUTDIR [--ip ADDR]... [--dns NAME]...\n"
		"                     [--days N] [--force]\n");
	return 2;
}

static int parse_days(const char *s, int *days)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == 0 || *end || v == 0 || v < -36500 || v > 36500) {
		fprintf(stderr, "zapc ca: --days '%s': want a non-zero number of days\n", s);
		return -1;
	}
	*days = (int)v;
	return 0;
}

static const struct option ca_opts[] = {
	{ "ca", required_argument, NULL, 'c' },
	{ "out", required_argument, NULL, 'o' },
	{ "ip", required_argument, NULL, 'i' },
	{ "dns", required_argument, NULL, 'd' },
	{ "days", required_argument, NULL, 'D' },
	{ "cn", required_argument, NULL, 'n' },
	{ "force", no_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

int cmd_ca(int argc, char **argv)
{
	const char *ips[CA_MAX_SANS], *dns[CA_MAX_SANS];
	struct ca_issue_req q = { .ips = ips, .dns = dns };
	const char *cn = NULL, *sub;
	int c, days = 0, force = 0, r;

	if (argc < 2)
		return usage();
	sub = argv[1];
	argc--;
	argv++;
	optind = 0;	/* GNU: full re-initialisation, the caller may have used getopt */
	while ((c = getopt_long(argc, argv, "c:o:fh", ca_opts, NULL)) != -1) {
		switch (c) {
		case 'c': q.ca_dir = optarg; break;
		case 'o': q.out_dir = optarg; break;
		case 'n': cn = optarg; break;
		case 'f': force = 1; break;
		case 'D':
			if (parse_days(optarg, &days) < 0)
				return 2;
			break;
		case 'i':
			if (q.n_ips == CA_MAX_SANS) {
				fprintf(stderr, "zapc ca: at most %d --ip\n", CA_MAX_SANS);
				return 2;
			}
			ips[q.n_ips++] = optarg;
			break;
		case 'd':
			if (q.n_dns == CA_MAX_SANS) {
				fprintf(stderr, "zapc ca: at most %d --dns\n", CA_MAX_SANS);
				return 2;
			}
			dns[q.n_dns++] = optarg;
			break;
		default:
			return usage();
		}
	}
	if (strcmp(sub, "init") == 0) {
		if (optind != argc - 1 || q.ca_dir || q.out_dir || q.n_ips || q.n_dns)
			return usage();
		r = ca_init(argv[optind], cn, days, force);
		if (r == 0)
			printf("cluster CA in %s: %s, %s (keep %s secret)\n", argv[optind],
			       TLS_CA_CERT, CA_KEY, CA_KEY);
		return r == 0 ? 0 : 1;
	}
	if (strcmp(sub, "issue") == 0) {
		if (optind != argc - 1 || !q.ca_dir || !q.out_dir || cn)
			return usage();
		q.name = argv[optind];
		q.days = days;
		q.force = force;
		r = ca_issue(&q);
		if (r == 0)
			printf("%s: %s/%s, %s/%s, %s/%s\n", q.name, q.out_dir, TLS_NODE_CERT,
			       q.out_dir, TLS_NODE_KEY, q.out_dir, TLS_CA_CERT);
		return r == 0 ? 0 : 1;
	}
	return usage();
}
