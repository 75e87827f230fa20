#!/bin/sh
# ca.t — `zapc ca init` / `zapc ca issue` (through the ca-tool driver, which runs cmd_ca):
# the files a TLS directory needs, their modes, what the certificate says (checked with
# openssl(1), an independent reader), and the refusals.
. "${ZAPC_SRC:-$(dirname "$0")/../..}/tests/lib.sh"

CA=$ZBIN/ca-tool
[ -x "$CA" ] || skip_all "no $CA (run make)"
command -v openssl >/dev/null || skip_all "no openssl(1) to check certificates with"
plan 19

T=$(mktemp -d /tmp/zapc-ca.XXXXXX)
on_exit "rm -rf '$T'"
mode() { stat -c %a "$1"; }

t_timeout 20 "$CA" init "$T/ca" > "$T/out" 2>&1
ok $? "ca init writes a CA"
is "$(mode "$T/ca/ca.key")" 600 "CA key is mode 600"
is "$(mode "$T/ca")" 700 "CA directory is mode 700"
t_timeout 20 "$CA" init "$T/ca" > "$T/out" 2>&1
st=$?
ok $((st == 0)) "ca init refuses to replace an existing CA"
grep -q "refusing to replace a CA key" "$T/out"
ok $? "and says why"

t_timeout 20 "$CA" issue n1 --ca "$T/ca" -o "$T/n1" --ip 10.77.0.1 --dns n1.sim > "$T/out" 2>&1
ok $? "ca issue n1"
ok $([ -s "$T/n1/node.crt" ] && [ -s "$T/n1/node.key" ] && cmp -s "$T/ca/ca.crt" "$T/n1/ca.crt"; echo $?) \
	"OUTDIR has node.crt, node.key and a copy of ca.crt"
is "$(mode "$T/n1/node.key")" 600 "node key is mode 600"
t_timeout 10 openssl verify -CAfile "$T/ca/ca.crt" "$T/n1/node.crt" > "$T/out" 2>&1
ok $? "openssl verifies n1's certificate against the cluster CA"
text=$(t_timeout 10 openssl x509 -in "$T/n1/node.crt" -noout -text)
echo "$text" | grep -q "Subject: O = zapc, CN = n1"
ok $? "subject CN=n1"
echo "$text" | grep -q "DNS:n1, DNS:n1.sim, IP Address:10.77.0.1"
ok $? "SAN has the name, the extra DNS name and the IP"
echo "$text" | grep -q "TLS Web Server Authentication, TLS Web Client Authentication"
ok $? "usable as TLS server and client"
t_timeout 10 openssl pkey -in "$T/n1/node.key" -noout -text 2>/dev/null | grep -q "ASN1 OID: prime256v1"
ok $? "key is EC P-256"

t_timeout 20 "$CA" init "$T/other" > /dev/null 2>&1 &&
	t_timeout 20 "$CA" issue n1 --ca "$T/other" -o "$T/fake" > /dev/null 2>&1
t_timeout 10 openssl verify -CAfile "$T/ca/ca.crt" "$T/fake/node.crt" > /dev/null 2>&1
st=$?
ok $((st == 0)) "a certificate from another CA does not verify against ours"

t_timeout 20 "$CA" issue n1 --ca "$T/ca" -o "$T/n1" > "$T/out" 2>&1
st=$?
ok $((st == 0)) "issue refuses to replace an existing node key"
t_timeout 20 "$CA" issue n1 --ca "$T/ca" -o "$T/n1" --force > /dev/null 2>&1
ok $? "--force replaces it"
t_timeout 20 "$CA" issue bad_name --ca "$T/ca" -o "$T/x" > "$T/out" 2>&1
st=$?
ok $((st == 0 ? 1 : 0)) "a node name with '_' is refused"
t_timeout 20 "$CA" issue n2 --ca "$T/ca" -o "$T/x" --ip 10.1.2 > "$T/out" 2>&1
st=$?
ok $((st == 0 ? 1 : 0)) "a malformed --ip is refused"
t_timeout 20 "$CA" issue n2 -o "$T/x" > "$T/out" 2>&1
is $? 2 "issue without --ca is a usage error"
