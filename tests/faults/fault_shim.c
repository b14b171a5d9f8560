/* fault_shim.c: LD_PRELOAD library that injects one I/O fault into a
 * trtconv rank, for the fault-injection tests (tests/mpi/test_faults.sh;
 * durability-and-failures.md §5: "I/O faults come from an LD_PRELOAD shim").
 *
 * Environment (all optional except TC_FAULT_OP):
 *   TC_FAULT_OP      pread | pwrite | write | fsync | rename  (the call to hit)
 *   TC_FAULT_PATH    substring the file's path must contain (for rename: the
 *                    source path); default: any file
 *   TC_FAULT_RANK    only this MPI rank (OMPI_COMM_WORLD_RANK / PMIX_RANK)
 *   TC_FAULT_AFTER   matching calls let through before the fault (default 0)
 *   TC_FAULT_ACTION  kill (SIGKILL, the default) | eio | enospc | hang
 * Every matching call from the (AFTER+1)-th on faults (eio/enospc return -1
 * with that errno; a hang sleeps forever). The first fault prints one line
 * "fault_shim: ..." to stderr so the tests can tell it happened. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static atomic_long g_calls;
static atomic_int g_announced;

static int fd_path(int fd, char *buf, size_t n)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, buf, n - 1);
    if (len < 0)
        return -1;
    buf[len] = '\0';
    return 0;
}

/* Does this call of `op` on `path` fault? Returns the action, or NULL. */
static const char *should_fault(const char *op, const char *path)
{
    const char *want = getenv("TC_FAULT_OP");
    if (!want || strcmp(want, op) != 0)
        return NULL;
    const char *sub = getenv("TC_FAULT_PATH");
    if (sub && (!path || !strstr(path, sub)))
        return NULL;
    const char *rank = getenv("TC_FAULT_RANK");
    if (rank) {
        const char *mine = getenv("OMPI_COMM_WORLD_RANK");
        if (!mine)
            mine = getenv("PMIX_RANK");
        if (!mine || strcmp(mine, rank) != 0)
            return NULL;
    }
    const char *after = getenv("TC_FAULT_AFTER");
    long n = atomic_fetch_add(&g_calls, 1);
    if (after && n < atol(after))
        return NULL;
    const char *action = getenv("TC_FAULT_ACTION");
    action = action ? action : "kill";
    if (atomic_exchange(&g_announced, 1) == 0) {
        char line[PATH_MAX + 128];
        int len = snprintf(line, sizeof line, "fault_shim: %s on %s (call %ld): %s\n", op,
                           path ? path : "?", n + 1, action);
        if (len > 0)
            (void)!write(STDERR_FILENO, line, (size_t)len);
    }
    return action;
}

/* Apply the action; returns the errno to fail with (kill/hang never return). */
static int act(const char *action)
{
    if (strcmp(action, "eio") == 0)
        return EIO;
    if (strcmp(action, "enospc") == 0)
        return ENOSPC;
    if (strcmp(action, "hang") == 0)
        for (;;)
            pause();
    raise(SIGKILL);
    return EIO;
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

static const char *fault_fd(const char *op, int fd)
{
    if (!getenv("TC_FAULT_OP"))
        return NULL;
    char path[PATH_MAX];
    return should_fault(op, fd_path(fd, path, sizeof path) == 0 ? path : NULL);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    const char *a = fault_fd("pread", fd);
    if (a) { errno = act(a); return -1; }
    return NEXT(pread)(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    const char *a = fault_fd("pread", fd);
    if (a) { errno = act(a); return -1; }
    return NEXT(pread64)(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    const char *a = fault_fd("pwrite", fd);
    if (a) { errno = act(a); return -1; }
    return NEXT(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    const char *a = fault_fd("pwrite", fd);
    if (a) { errno = act(a); return -1; }
    return NEXT(pwrite64)(fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    /* stdout/stderr are never faulted: the tests read the messages. */
    const char *a = fd > 2 ? fault_fd("write", fd) : NULL;
    if (a) { errno = act(a); return -1; }
    return NEXT(write)(fd, buf, n);
}

int fsync(int fd)
{
    const char *a = fault_fd("fsync", fd);
    if (a) { errno = act(a); return -1; }
    return NEXT(fsync)(fd);
}

int rename(const char *from, const char *to)
{
    const char *a = getenv("TC_FAULT_OP") ? should_fault("rename", from) : NULL;
    if (a) { errno = act(a); return -1; }
    return NEXT(rename)(from, to);
}
