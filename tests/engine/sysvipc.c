/*
 * sysvipc.c — a program using SysV IPC, checkpointed by tests/engine/sysvipc.t.
 *
 *   zt-sysvipc TRIGGER [partial]
 * Creates (keys 0x5a5a0001..): a 3-page+100-byte shm segment (mode 0640,
 * owner 1234:5678) attached by this process and by a child that increments
 * a counter in it; a private segment attached read-only at a fixed address;
 * a segment removed (IPC_RMID) while attached; the private one SHM_LOCKed;
 * a set of 3 semaphores; a
 * message queue with 3 messages of types 1, 7, 2.  Prints "ready ..." with
 * the ids, then waits for TRIGGER to exist and prints one line: "ok ..." or
 * the first thing that differs.  The ids are kept in memory only, so after a
 * restore they are compared with what the kernel gives for the same keys.
 * Objects of each type were created and removed first, so the ids are not
 * the first ones a fresh namespace hands out.  "partial": the last page of the shared
 * segment is unmapped (a dump must refuse it).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_SHM 0x5a5a0001
#define KEY_SEM 0x5a5a0002
#define KEY_MSG 0x5a5a0003
#define SEG_LEN (3 * 4096 + 100)
#define RO_ADDR ((void *)0x7e0000000000ull)

static char fail[256];
#define CHECK(c, ...) do { if (!fail[0] && !(c)) snprintf(fail, sizeof(fail), __VA_ARGS__); } while (0)

struct msg { long type; char text[32]; };

static uint8_t pattern(size_t i) { return (uint8_t)(i * 7 + 3); }

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	shmctl(shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600), IPC_RMID, NULL);
	semctl(semget(IPC_PRIVATE, 1, IPC_CREAT | 0600), 0, IPC_RMID);
	msgctl(msgget(IPC_PRIVATE, IPC_CREAT | 0600), IPC_RMID, NULL);
	int shm = shmget(KEY_SHM, SEG_LEN, IPC_CREAT | IPC_EXCL | 0600);
	int priv = shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0600);
	int gone = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	int sem = semget(KEY_SEM, 3, IPC_CREAT | IPC_EXCL | 0600);
	int q = msgget(KEY_MSG, IPC_CREAT | IPC_EXCL | 0600);
	if (shm < 0 || priv < 0 || gone < 0 || sem < 0 || q < 0) {
		perror("create");
		return 1;
	}
	volatile uint8_t *seg = shmat(shm, NULL, 0);
	uint8_t *w = shmat(priv, NULL, 0);
	volatile uint8_t *g = shmat(gone, NULL, 0);
	if (seg == (void *)-1 || w == (void *)-1 || g == (void *)-1)
		return 1;
	for (size_t i = 8; i < SEG_LEN; i++)
		seg[i] = pattern(i);
	memset(w, 'R', 8192);
	shmdt(w);
	const uint8_t *ro = shmat(priv, RO_ADDR, SHM_RDONLY);
	memcpy((void *)g, "removed but attached", 21);
	shmctl(gone, IPC_RMID, NULL);
	struct shmid_ds ds;
	shmctl(shm, IPC_STAT, &ds);
	ds.shm_perm.uid = 1234;
	ds.shm_perm.gid = 5678;
	ds.shm_perm.mode = 0640;
	shmctl(shm, IPC_SET, &ds);
	shmctl(priv, SHM_LOCK, NULL);
	unsigned short vals[3] = { 1, 5, 9 };
	semctl(sem, 0, SETALL, vals);
	struct sembuf op = { 0, 1, 0 };          /* 1 -> 2 */
	semop(sem, &op, 1);
	struct msg m1 = { 1, "first" }, m7 = { 7, "seventh" }, m2 = { 2, "second" };
	msgsnd(q, &m1, 6, 0);
	msgsnd(q, &m7, 8, 0);
	msgsnd(q, &m2, 7, 0);

	bool partial = argc > 2 && !strcmp(argv[2], "partial");
	if (partial)
		munmap((void *)(seg + 3 * 4096), 4096);
	volatile uint64_t *counter = (volatile uint64_t *)seg;
	pid_t kid = fork();
	if (kid == 0) {
		for (;;) {                       /* the attachment is inherited */
			(*counter)++;
			usleep(2000);
		}
	}
	printf("ready shm=%d priv=%d gone=%d sem=%d msg=%d\n", shm, priv, gone, sem, q);
	struct stat st;
	while (stat(argv[1], &st) < 0)
		usleep(10000);

	if (partial) {
		uint64_t c = *counter;
		usleep(100000);
		printf("%s\n", *counter > c ? "alive" : "counter stuck");
		kill(kid, SIGKILL);
		return 0;
	}
	/* same ids for the same keys */
	CHECK(shmget(KEY_SHM, 0, 0) == shm, "shm id %d, was %d", shmget(KEY_SHM, 0, 0), shm);
	CHECK(semget(KEY_SEM, 0, 0) == sem, "sem id %d, was %d", semget(KEY_SEM, 0, 0), sem);
	CHECK(msgget(KEY_MSG, 0) == q, "msg id %d, was %d", msgget(KEY_MSG, 0), q);
	/* content, owner, mode, attach count */
	for (size_t i = 8; i < SEG_LEN && !fail[0]; i++)
		CHECK(seg[i] == pattern(i), "shm byte %zu is %u", i, seg[i]);
	CHECK(shmctl(shm, IPC_STAT, &ds) == 0 && ds.shm_perm.uid == 1234 && ds.shm_perm.gid == 5678 &&
	      (ds.shm_perm.mode & 0777) == 0640 && ds.shm_segsz == SEG_LEN && ds.shm_nattch == 2,
	      "shm stat uid %u gid %u mode %o size %zu nattch %lu", ds.shm_perm.uid, ds.shm_perm.gid,
	      ds.shm_perm.mode & 0777, ds.shm_segsz, (unsigned long)ds.shm_nattch);
	/* the child still writes into the same segment we see */
	uint64_t c0 = *counter;
	usleep(100000);
	CHECK(*counter > c0, "counter stuck at %llu", (unsigned long long)c0);
	/* our attach is the segment itself, not a copy: a new attach sees writes */
	volatile uint8_t *again = shmat(shm, NULL, 0);
	seg[SEG_LEN - 1] = 0xee;
	CHECK(again != (void *)-1 && again[SEG_LEN - 1] == 0xee, "second attach does not share");
	/* read-only attach at its address, still read-only */
	CHECK(ro == RO_ADDR && ro[0] == 'R' && ro[8191] == 'R', "read-only attach lost");
	CHECK(shmctl(priv, IPC_STAT, &ds) == 0 && ds.shm_perm.__key == IPC_PRIVATE, "private segment lost");
	CHECK(ds.shm_perm.mode & SHM_LOCKED, "SHM_LOCK lost");
	/* removed segment: still attached, content kept, marked for destruction */
	CHECK(!memcmp((void *)g, "removed but attached", 21), "removed segment content lost");
	CHECK(shmctl(gone, IPC_STAT, &ds) == 0 && (ds.shm_perm.mode & SHM_DEST), "removed segment not SHM_DEST");
	/* semaphores */
	unsigned short now[3] = { 0 };
	semctl(sem, 0, GETALL, now);
	CHECK(now[0] == 2 && now[1] == 5 && now[2] == 9, "semaphores %u %u %u", now[0], now[1], now[2]);
	struct sembuf dec = { 1, -5, IPC_NOWAIT };
	CHECK(semop(sem, &dec, 1) == 0 && semctl(sem, 1, GETVAL) == 0, "semop on restored set");
	/* messages: by type, then in order */
	struct msg r;
	ssize_t n = msgrcv(q, &r, sizeof(r.text), 7, IPC_NOWAIT);
	CHECK(n == 8 && r.type == 7 && !strcmp(r.text, "seventh"), "msg type 7: %zd", n);
	n = msgrcv(q, &r, sizeof(r.text), 0, IPC_NOWAIT);
	CHECK(n == 6 && r.type == 1 && !strcmp(r.text, "first"), "first msg: %zd type %ld", n, r.type);
	n = msgrcv(q, &r, sizeof(r.text), 0, IPC_NOWAIT);
	CHECK(n == 7 && r.type == 2 && !strcmp(r.text, "second"), "second msg: %zd type %ld", n, r.type);
	CHECK(msgrcv(q, &r, sizeof(r.text), 0, IPC_NOWAIT) < 0 && errno == ENOMSG, "extra message");
	/* a new object after the restore gets a fresh id, not a restored one */
	int fresh = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	CHECK(fresh >= 0 && fresh != shm && fresh != priv && fresh != gone, "new segment id %d", fresh);

	kill(kid, SIGKILL);
	if (fail[0])
		printf("FAIL %s\n", fail);
	else
		printf("ok shm=%d priv=%d gone=%d sem=%d msg=%d\n", shm, priv, gone, sem, q);
	return 0;
}
