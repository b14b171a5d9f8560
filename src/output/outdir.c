/* outdir.c: input overlap and the one-job lock of the output directory
 * (see outdir.h for the rules and the lock file format). */
#define _GNU_SOURCE
#include "trtconv/output/outdir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trtconv/core/log.h"

/* ---- inputs ---- */

typedef struct file_id {
    dev_t dev;
    ino_t ino;
} file_id;

/* (dev, ino) of every directory from `path` (resolved, absolute) up to /. */
static size_t ancestry(const char *resolved, file_id *ids, size_t cap)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", resolved);
    size_t n = 0;
    for (;;) {
        struct stat sb;
        if (n < cap && stat(buf, &sb) == 0)
            ids[n++] = (file_id){ sb.st_dev, sb.st_ino };
        char *slash = strrchr(buf, '/');
        if (!slash || slash == buf) {
            if (strcmp(buf, "/") != 0 && n < cap && stat("/", &sb) == 0)
                ids[n++] = (file_id){ sb.st_dev, sb.st_ino };
            break;
        }
        *slash = '\0';
    }
    return n;
}

/* realpath of path, or of its deepest existing ancestor (the output may not
 * exist yet); *exists says which. */
static bool resolve(const char *path, char *out, bool *exists)
{
    char buf[PATH_MAX];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return false;
    *exists = true;
    for (;;) {
        if (realpath(buf, out))
            return true;
        *exists = false;
        char *slash = strrchr(buf, '/');
        if (!slash)
            return realpath(".", out) != NULL;
        if (slash == buf)
            return realpath("/", out) != NULL;
        *slash = '\0';
    }
}

static bool in_ids(const file_id *ids, size_t n, file_id x)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i].dev == x.dev && ids[i].ino == x.ino)
            return true;
    return false;
}

tc_status tc_outdir_check_inputs(const char *out_dir, const tc_outdir_input *in, size_t n)
{
    char out_real[PATH_MAX];
    bool out_exists = false;
    if (!resolve(out_dir, out_real, &out_exists))
        return tc_fail(TC_E_USAGE, "--output_dir %s: cannot resolve the path", out_dir);
    file_id out_chain[256];
    const size_t n_out = ancestry(out_real, out_chain, 256);
    file_id out_id = { 0, 0 };
    if (out_exists) {
        struct stat sb;
        if (stat(out_real, &sb) != 0)
            return tc_fail(TC_E_USAGE, "--output_dir %s: cannot stat: %s", out_dir, strerror(errno));
        out_id = (file_id){ sb.st_dev, sb.st_ino };
    }
    for (size_t i = 0; i < n; i++) {
        if (!in[i].path)
            continue;
        struct stat sb;
        if (stat(in[i].path, &sb) != 0)
            continue; /* a missing input is reported by its reader */
        const file_id id = { sb.st_dev, sb.st_ino };
        if (out_exists && id.dev == out_id.dev && id.ino == out_id.ino)
            return tc_fail(TC_E_USAGE, "--output_dir %s is the same %s as %s %s: trtconv never "
                           "writes into its inputs; choose another --output_dir", out_dir,
                           S_ISDIR(sb.st_mode) ? "directory" : "file", in[i].label, in[i].path);
        if (in_ids(out_chain, n_out, id))
            return tc_fail(TC_E_USAGE, "--output_dir %s lies inside %s %s: trtconv never writes "
                           "into its inputs; choose a directory outside it", out_dir, in[i].label,
                           in[i].path);
        if (out_exists) {
            char in_real[PATH_MAX];
            file_id in_chain[256];
            if (realpath(in[i].path, in_real)) {
                const size_t m = ancestry(in_real, in_chain, 256);
                if (in_ids(in_chain, m, out_id))
                    return tc_fail(TC_E_USAGE, "--output_dir %s contains %s %s: trtconv clears "
                                   "files in its output directory; choose one that holds no "
                                   "input", out_dir, in[i].label, in[i].path);
            }
        }
    }
    return TC_OK;
}

/* ---- lock ---- */

/* The lock this process holds, for the signal handlers (read-only there). */
static char g_held_path[PATH_MAX];
static char g_held_token[TC_LOCK_TOKEN_LEN + 1];
static volatile sig_atomic_t g_held;

struct tc_outdir_lock {
    char path[PATH_MAX];
    char token[TC_LOCK_TOKEN_LEN + 1];
    int fd;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
};

typedef struct lock_info {
    char token[TC_LOCK_TOKEN_LEN + 1];
    char host[256];
    long pid;
    unsigned long long start;
    bool parsed;
    time_t mtime;
} lock_info;

/* Start time of pid in clock ticks since boot (/proc/PID/stat field 22), 0
 * when unknown; *zombie set when the process has exited but is not reaped
 * yet (state Z or X: a killed job whose parent died too). */
static unsigned long long proc_start_state(long pid, bool *zombie)
{
    *zombie = false;
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *s = strrchr(buf, ')'); /* the command may hold spaces */
    if (!s)
        return 0;
    if (s[1] == ' ' && (s[2] == 'Z' || s[2] == 'X'))
        *zombie = true;
    unsigned long long v = 0;
    int field = 2;
    for (s++; *s && field < 22; s++)
        if (*s == ' ')
            field++;
    if (field == 22)
        v = strtoull(s, NULL, 10);
    return v;
}

static tc_status read_lock(const char *path, lock_info *li)
{
    memset(li, 0, sizeof *li);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? TC_E_CANCELLED
                               : tc_fail(TC_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    char buf[512];
    ssize_t n = -1;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return tc_fail(TC_E_IO, "%s: not a regular file or unreadable", path);
    buf[n] = '\0';
    li->mtime = sb.st_mtime;
    int ver = 0;
    li->parsed = sscanf(buf, "trtconv-lock %d %32s %255s %ld %llu", &ver, li->token, li->host,
                        &li->pid, &li->start) == 5 && ver == 1 &&
                 strlen(li->token) == TC_LOCK_TOKEN_LEN;
    return TC_OK;
}

/* The file server's clock: mtime of a file created in dir just now. */
static time_t server_now(const char *dir)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/.trtconv-clock.%ld", dir, (long)getpid());
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    time_t t = time(NULL);
    struct stat sb;
    if (fd >= 0) {
        if (fstat(fd, &sb) == 0)
            t = sb.st_mtime;
        close(fd);
        unlink(p);
    }
    return t;
}

/* Why a lock is stale, or NULL when its holder may still run. */
static const char *stale_reason(const lock_info *li, const char *host, time_t now)
{
    if (li->parsed && strcmp(li->host, host) == 0) {
        bool zombie = false;
        if (kill((pid_t)li->pid, 0) != 0 && errno == ESRCH)
            return "its process is gone";
        unsigned long long st = proc_start_state(li->pid, &zombie);
        if (zombie)
            return "its process is gone";
        if (st && li->start && st != li->start)
            return "its process id now belongs to another program";
        return NULL;
    }
    if (now - li->mtime > TC_LOCK_STALE_S)
        return "its holder stopped refreshing it";
    return NULL;
}

static void *heartbeat(void *arg)
{
    tc_outdir_lock *l = arg;
    int tick = 0;
    while (!atomic_load(&l->stop)) {
        struct timespec ts = { 0, 200 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        if (++tick % (TC_LOCK_HEARTBEAT_S * 5) == 0)
            (void)futimens(l->fd, NULL);
    }
    return NULL;
}

static void new_token(char *out)
{
    unsigned char r[TC_LOCK_TOKEN_LEN / 2];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* no entropy source: time and pid still differ between jobs */
        unsigned long long x = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
        for (size_t i = 0; i < sizeof r; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
            r[i] = (unsigned char)(x >> 56);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

tc_status tc_outdir_lock_acquire(const char *out_dir, const char *host, tc_outdir_lock **out,
                                 char *token)
{
    *out = NULL;
    tc_outdir_lock *l = calloc(1, sizeof *l);
    if (!l)
        return tc_fail(TC_E_INTERNAL, "out of memory");
    l->fd = -1;
    if ((size_t)snprintf(l->path, sizeof l->path, "%s/%s", out_dir, TC_LOCK_NAME) >= sizeof l->path) {
        free(l);
        return tc_fail(TC_E_USAGE, "--output_dir: path too long");
    }
    new_token(l->token);
    char line[512];
    bool zombie;
    const int len = snprintf(line, sizeof line, "trtconv-lock 1 %s %s %ld %llu\n", l->token, host,
                             (long)getpid(), proc_start_state((long)getpid(), &zombie));
    for (int attempt = 0; attempt < 4; attempt++) {
        int fd = open(l->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
            if (write(fd, line, (size_t)len) != len || fsync(fd) != 0) {
                tc_status st = tc_fail(TC_E_IO, "%s: cannot write the lock: %s", l->path,
                                       strerror(errno));
                close(fd);
                unlink(l->path);
                free(l);
                return st;
            }
            l->fd = fd;
            snprintf(g_held_path, sizeof g_held_path, "%s", l->path);
            memcpy(g_held_token, l->token, sizeof g_held_token);
            g_held = 1;
            if (pthread_create(&l->thread, NULL, heartbeat, l) == 0)
                l->thread_started = true;
            memcpy(token, l->token, sizeof l->token);
            *out = l;
            return TC_OK;
        }
        if (errno != EEXIST) {
            tc_status st = tc_fail(TC_E_IO, "%s: cannot create the lock: %s", l->path,
                                   strerror(errno));
            free(l);
            return st;
        }
        lock_info li;
        tc_status st = read_lock(l->path, &li);
        if (st == TC_E_CANCELLED)
            continue; /* released in between: try again */
        if (st != TC_OK) {
            free(l);
            return st;
        }
        const time_t now = server_now(out_dir);
        const char *why = stale_reason(&li, host, now);
        if (!why) {
            st = li.parsed
                     ? tc_fail(TC_E_IO, "%s is in use by another trtconv job (host %s, pid %ld; "
                               "lock %s refreshed %lld s ago): one job per output directory. "
                               "Wait for it or choose another --output_dir", out_dir, li.host,
                               li.pid, l->path, (long long)(now - li.mtime))
                     : tc_fail(TC_E_IO, "%s is in use by another trtconv job (its lock %s is "
                               "being written): one job per output directory", out_dir, l->path);
            free(l);
            return st;
        }
        /* Take the stale lock over: only one rename of it can succeed. If
         * what we moved aside is not the lock we judged (another job took it
         * over in between), put it back. */
        char aside[PATH_MAX + 64];
        snprintf(aside, sizeof aside, "%s.stale.%ld", l->path, (long)getpid());
        if (rename(l->path, aside) != 0)
            continue;
        lock_info moved;
        if (read_lock(aside, &moved) == TC_OK && strcmp(moved.token, li.token) != 0) {
            if (link(aside, l->path) == 0)
                unlink(aside);
            continue;
        }
        unlink(aside);
        tc_log(TC_LOG_WARNING, "%s: took over the lock of an earlier job (host %s, pid %ld): %s",
               out_dir, li.parsed ? li.host : "?", li.parsed ? li.pid : -1L, why);
    }
    free(l);
    return tc_fail(TC_E_IO, "%s: could not take the lock %s after several tries (another job "
                   "keeps taking it)", out_dir, TC_LOCK_NAME);
}

tc_status tc_outdir_lock_check(const char *out_dir, const char *token)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", out_dir, TC_LOCK_NAME);
    lock_info li;
    tc_status st = read_lock(path, &li);
    if (st == TC_E_CANCELLED || (st == TC_OK && strcmp(li.token, token) != 0))
        return tc_fail(TC_E_IO, "%s: this job no longer holds the output directory's lock (%s %s): "
                       "another job took it over; stopping without publishing anything", out_dir,
                       path, st == TC_OK ? "holds another job's token" : "is gone");
    return st;
}

void tc_outdir_lock_drop_in_signal(void)
{
    if (!g_held)
        return;
    char buf[128];
    int fd = open(g_held_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    /* "trtconv-lock 1 " then the token */
    if (n >= 15 + TC_LOCK_TOKEN_LEN && memcmp(buf + 15, g_held_token, TC_LOCK_TOKEN_LEN) == 0)
        unlink(g_held_path);
}

void tc_outdir_lock_release(tc_outdir_lock *l)
{
    if (!l)
        return;
    g_held = 0;
    atomic_store(&l->stop, true);
    if (l->thread_started)
        pthread_join(l->thread, NULL);
    lock_info li;
    if (read_lock(l->path, &li) == TC_OK && strcmp(li.token, l->token) == 0)
        unlink(l->path);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}
