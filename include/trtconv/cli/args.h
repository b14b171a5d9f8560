/* args.h: the one option helper of trtconv's executables.
 *
 * Bounded parsing of one value (tc_arg_int, tc_arg_real), used by every
 * executable: decimal integers only (no sign games, no trailing text, no
 * overflow), finite reals within bounds; the message names the flag, the
 * value and the rule. trtconv itself keeps getopt_long_only over these
 * primitives (convert_checkpoint.py's argparse accepts unique prefixes and
 * "-sq"), the tools (trtconv-forward, -stats, -tokenize, -genmodel) parse
 * with a table through tc_args_parse.
 *
 * Ownership: values of TC_ARG_STR point into argv. */
#ifndef TRTCONV_CLI_ARGS_H
#define TRTCONV_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "trtconv/core/status.h"

/* Parse s as an integer in [lo, hi]. On failure returns TC_E_USAGE and
 * writes "--flag: invalid value 's' (expected an integer in [lo, hi])" to
 * msg (msg_len bytes). */
tc_status tc_arg_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out,
                     char *msg, size_t msg_len);
/* Parse s as a finite real in [lo, hi] (pass -INFINITY/INFINITY for no
 * bound); lo_open excludes lo itself ("a positive number"). */
tc_status tc_arg_real(const char *flag, const char *s, double lo, bool lo_open, double hi,
                      double *out, char *msg, size_t msg_len);

typedef enum tc_arg_kind {
    TC_ARG_FLAG,      /* bool *: set when present */
    TC_ARG_STR,       /* const char **: the value */
    TC_ARG_INT,       /* int64_t *: within [lo, hi] */
    TC_ARG_REAL,      /* double *: within [rlo, rhi], rlo excluded when rlo_open */
    TC_ARG_CHOICE,    /* int *: index of the value in choices (NULL-terminated) */
} tc_arg_kind;

typedef struct tc_arg {
    const char *name;             /* without the dashes: "tp_size" */
    tc_arg_kind kind;
    void *dst;
    int64_t lo, hi;
    double rlo, rhi;
    bool rlo_open;
    const char *const *choices;
} tc_arg;

/* Table rows. */
#define TC_OPT_FLAG(name_, dst_) { .name = (name_), .kind = TC_ARG_FLAG, .dst = (dst_) }
#define TC_OPT_STR(name_, dst_) { .name = (name_), .kind = TC_ARG_STR, .dst = (dst_) }
#define TC_OPT_INT(name_, dst_, lo_, hi_) \
    { .name = (name_), .kind = TC_ARG_INT, .dst = (dst_), .lo = (lo_), .hi = (hi_) }
#define TC_OPT_REAL(name_, dst_, lo_, lo_open_, hi_) \
    { .name = (name_), .kind = TC_ARG_REAL, .dst = (dst_), .rlo = (lo_), .rlo_open = (lo_open_), \
      .rhi = (hi_) }
#define TC_OPT_CHOICE(name_, dst_, choices_) \
    { .name = (name_), .kind = TC_ARG_CHOICE, .dst = (dst_), .choices = (choices_) }

/* Why parsing stopped early: the caller prints its usage for HELP, exits 0
 * for both. */
typedef enum tc_args_stop { TC_ARGS_RUN = 0, TC_ARGS_HELP, TC_ARGS_VERSION } tc_args_stop;

/* Parse argv[first..argc) against table[0..n): "--name value" and
 * "--name=value"; "-h"/"--help" stop with TC_ARGS_HELP, "--version" prints
 * "prog VERSION" (build_config.h: the project version, one place) and
 * stops with TC_ARGS_VERSION. Unknown flags,
 * missing values and values out of bounds are TC_E_USAGE through tc_fail,
 * naming prog and the flag. A positional argument is refused unless
 * positional is not NULL, where the first one is stored. */
tc_status tc_args_parse(const char *prog, const tc_arg *table, size_t n, int argc, char **argv,
                        int first, const char **positional, tc_args_stop *stop);

#endif
