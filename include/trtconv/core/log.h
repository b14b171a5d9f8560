/* log.h: one logging function with a rank prefix, to stderr.
 *
 * Every line is prefixed "trtconv[rank/size host] level: ". Errors are
 * printed by the rank that hits them (tc_fail); the first error message of
 * the process is also kept so rank 0 can print a job-wide summary after the
 * ranks agreed on failure (that is the only reason for the stored text). */
#ifndef TRTCONV_LOG_H
#define TRTCONV_LOG_H

#include "trtconv/core/status.h"

/* Ordered like TensorRT-LLM's logger levels (--log_level). */
enum tc_log_level {
    TC_LOG_INTERNAL_ERROR = 0,
    TC_LOG_ERROR,
    TC_LOG_WARNING,
    TC_LOG_INFO,
    TC_LOG_VERBOSE,
    TC_LOG_DEBUG
};

/* Set the rank prefix; host may be NULL. Safe to call again after MPI init. */
void tc_log_init(int rank, int size, const char *host);
void tc_log_set_level(enum tc_log_level level);
enum tc_log_level tc_log_get_level(void);
/* Parse a --log_level name ("internal_error", "error", "warning", "info",
 * "verbose", "debug", "trace"=debug). Returns 0 on success, -1 if unknown. */
int tc_log_level_parse(const char *name, enum tc_log_level *out);

void tc_log(enum tc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Log an error and remember it as this process's first error (thread-safe).
 * Returns st, so call sites read: return tc_fail(TC_E_INPUT, "...", ...). */
tc_status tc_fail(tc_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The first message passed to tc_fail in this process, or "" if none.
 * The pointer stays valid for the life of the process. */
const char *tc_first_error(void);
/* Forget the first error (unit tests). */
void tc_clear_first_error(void);
/* Suppress printing (messages are still recorded); for unit tests that
 * provoke errors on purpose. */
void tc_log_set_quiet(int quiet);
/* While pushed (nesting), this thread's tc_log/tc_fail neither print nor
 * record: for probes whose failure is an answer, not an error (is an
 * earlier run's file reusable?). */
void tc_log_push_quiet(void);
void tc_log_pop_quiet(void);

/* Seconds on the monotonic clock (CLOCK_MONOTONIC), for durations. */
double tc_now_seconds(void);

#endif
