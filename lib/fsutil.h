/*
 * fsutil.h — small file-system helpers shared by the agent and the CLI.
 */
#ifndef ZAPC_FSUTIL_H
#define ZAPC_FSUTIL_H

#include <sys/types.h>

/* Create path and its missing parents (mode for each); existing dirs are fine.  0/-errno. */
int mkdir_p(const char *path, mode_t mode);
/* The same for every component but the last (the directory a file will go in). */
int mkdir_parents(const char *path, mode_t mode);
/* Write s to an existing file (sysctl, cgroup control file) in one write.  0/-errno. */
int write_file(const char *path, const char *s);

#endif
