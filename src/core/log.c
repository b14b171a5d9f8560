/* log.c: rank-prefixed logging to stderr and the first-error record. */
#define _POSIX_C_SOURCE 200809L
#include "trtconv/core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

static struct {
    int rank, size;
    char host[64];
    enum tc_log_level level;
    int quiet;
    char first_error[1024];
    int have_first_error;
    int elapsed;          /* TRTCONV_LOG_ELAPSED: seconds since tc_log_init and RSS on each line */
    double t0;
} g_log = { 0, 1, "", TC_LOG_INFO, 0, "", 0, 0, 0.0 };

/* One mutex serialises lines from worker threads and guards first_error. */
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Probing depth of this thread (tc_log_push_quiet). */
static _Thread_local int t_probing;

static const char *const level_names[] = {
    "internal error", "error", "warning", "info", "verbose", "debug"
};

void tc_log_init(int rank, int size, const char *host)
{
    g_log.rank = rank;
    g_log.size = size;
    if (host) {
        snprintf(g_log.host, sizeof g_log.host, "%s", host);
    } else if (gethostname(g_log.host, sizeof g_log.host) != 0) {
        g_log.host[0] = '\0';
    }
    g_log.host[sizeof g_log.host - 1] = '\0';
    /* Where a run's time goes, without a profiler: every line stamped. */
    const char *el = getenv("TRTCONV_LOG_ELAPSED");
    g_log.elapsed = el && *el && strcmp(el, "0") != 0;
    g_log.t0 = tc_now_seconds();
}

void tc_log_set_level(enum tc_log_level level) { g_log.level = level; }
enum tc_log_level tc_log_get_level(void) { return g_log.level; }
void tc_log_set_quiet(int quiet) { g_log.quiet = quiet; }
void tc_log_push_quiet(void) { t_probing++; }
void tc_log_pop_quiet(void) { t_probing--; }

int tc_log_level_parse(const char *name, enum tc_log_level *out)
{
    static const struct { const char *name; enum tc_log_level level; } table[] = {
        { "internal_error", TC_LOG_INTERNAL_ERROR }, { "error", TC_LOG_ERROR },
        { "warning", TC_LOG_WARNING }, { "info", TC_LOG_INFO },
        { "verbose", TC_LOG_VERBOSE }, { "debug", TC_LOG_DEBUG },
        { "trace", TC_LOG_DEBUG },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(name, table[i].name) == 0) {
            *out = table[i].level;
            return 0;
        }
    }
    return -1;
}

/* Resident and peak resident host memory in MiB (-1 where unknown): where
 * a rank's host memory goes, line by line, without a profiler. */
static void rss_mib(double *now, double *peak)
{
    *now = *peak = -1.0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        long long size = 0, resident = 0;
        if (fscanf(f, "%lld %lld", &size, &resident) == 2)
            *now = (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
        fclose(f);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        *peak = (double)ru.ru_maxrss / 1024.0;
    /* The kernel's two counters are read at different moments and synced
     * lazily per thread: the peak is never below what was just resident. */
    if (*peak < *now)
        *peak = *now;
}

static void vlog_line(enum tc_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void vlog_line(enum tc_log_level level, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    pthread_mutex_lock(&g_log_lock);
    if (g_log.elapsed) {
        double now, peak;
        rss_mib(&now, &peak);
        fprintf(stderr, "trtconv[%d/%d %s] +%.3f s rss %.0f/%.0f MiB %s: %s\n", g_log.rank,
                g_log.size, g_log.host, tc_now_seconds() - g_log.t0, now, peak,
                level_names[level], msg);
    } else
        fprintf(stderr, "trtconv[%d/%d %s] %s: %s\n", g_log.rank, g_log.size, g_log.host,
                level_names[level], msg);
    fflush(stderr);
    pthread_mutex_unlock(&g_log_lock);
}

void tc_log(enum tc_log_level level, const char *fmt, ...)
{
    if (level > g_log.level || g_log.quiet || t_probing)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog_line(level, fmt, ap);
    va_end(ap);
}

tc_status tc_fail(tc_status st, const char *fmt, ...)
{
    if (t_probing)
        return st;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&g_log_lock);
    if (!g_log.have_first_error) {
        va_list aq;
        va_copy(aq, ap);
        vsnprintf(g_log.first_error, sizeof g_log.first_error, fmt, aq);
        va_end(aq);
        g_log.have_first_error = 1;
    }
    pthread_mutex_unlock(&g_log_lock);
    if (!g_log.quiet)
        vlog_line(TC_LOG_ERROR, fmt, ap);
    va_end(ap);
    return st;
}

const char *tc_first_error(void) { return g_log.first_error; }

void tc_clear_first_error(void)
{
    pthread_mutex_lock(&g_log_lock);
    g_log.first_error[0] = '\0';
    g_log.have_first_error = 0;
    pthread_mutex_unlock(&g_log_lock);
}

double tc_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
