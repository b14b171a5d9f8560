/* args.c: see args.h. */
#include "trtconv/cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "trtconv/build_config.h"
#include "trtconv/core/log.h"

tc_status tc_arg_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out,
                     char *msg, size_t msg_len)
{
    char *end = NULL;
    const bool digits = s && ((s[0] >= '0' && s[0] <= '9') ||
                              (s[0] == '-' && s[1] >= '0' && s[1] <= '9'));
    errno = 0;
    long long v = digits ? strtoll(s, &end, 10) : 0;
    if (!digits || errno || *end || v < lo || v > hi) {
        snprintf(msg, msg_len, "--%s: invalid value '%s' (expected an integer in [%lld, %lld])",
                 flag, s ? s : "", (long long)lo, (long long)hi);
        return TC_E_USAGE;
    }
    *out = v;
    return TC_OK;
}

tc_status tc_arg_real(const char *flag, const char *s, double lo, bool lo_open, double hi,
                      double *out, char *msg, size_t msg_len)
{
    char *end = NULL;
    errno = 0;
    double v = s && *s && *s != ' ' ? strtod(s, &end) : NAN;
    bool ok = s && end && end != s && !*end && !errno && isfinite(v) && v <= hi &&
              (lo_open ? v > lo : v >= lo);
    if (!ok) {
        if (isinf(lo) && isinf(hi))
            snprintf(msg, msg_len, "--%s: invalid value '%s' (expected a number)", flag,
                     s ? s : "");
        else
            snprintf(msg, msg_len, "--%s: invalid value '%s' (expected a number in %s%g, %g])",
                     flag, s ? s : "", lo_open ? "(" : "[", lo, hi);
        return TC_E_USAGE;
    }
    *out = v;
    return TC_OK;
}

static const tc_arg *find(const tc_arg *t, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(t[i].name) == len && !strncmp(t[i].name, name, len))
            return &t[i];
    return NULL;
}

static tc_status set_value(const char *prog, const tc_arg *a, const char *v)
{
    char msg[512];
    switch (a->kind) {
    case TC_ARG_STR:
        *(const char **)a->dst = v;
        return TC_OK;
    case TC_ARG_INT:
        if (tc_arg_int(a->name, v, a->lo, a->hi, a->dst, msg, sizeof msg) != TC_OK)
            return tc_fail(TC_E_USAGE, "%s: %s", prog, msg);
        return TC_OK;
    case TC_ARG_REAL:
        if (tc_arg_real(a->name, v, a->rlo, a->rlo_open, a->rhi, a->dst, msg, sizeof msg) !=
            TC_OK)
            return tc_fail(TC_E_USAGE, "%s: %s", prog, msg);
        return TC_OK;
    case TC_ARG_CHOICE: {
        size_t len = 0;
        msg[0] = '\0';
        for (int i = 0; a->choices[i]; i++) {
            if (!strcmp(a->choices[i], v)) {
                *(int *)a->dst = i;
                return TC_OK;
            }
            int w = snprintf(msg + len, sizeof msg - len, "%s%s", i ? ", " : "", a->choices[i]);
            if (w > 0)
                len = len + (size_t)w < sizeof msg ? len + (size_t)w : sizeof msg - 1;
        }
        return tc_fail(TC_E_USAGE, "%s: --%s: invalid choice '%s' (choose from %s)", prog,
                       a->name, v, msg);
    }
    case TC_ARG_FLAG:
        break;
    }
    return tc_fail(TC_E_INTERNAL, "%s: --%s: bad option table", prog, a->name);
}

tc_status tc_args_parse(const char *prog, const tc_arg *table, size_t n, int argc, char **argv,
                        int first, const char **positional, tc_args_stop *stop)
{
    *stop = TC_ARGS_RUN;
    for (int i = first; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            *stop = TC_ARGS_HELP;
            return TC_OK;
        }
        if (!strcmp(k, "--version")) {
            printf("%s %s\n", prog, TRTCONV_VERSION);
            *stop = TC_ARGS_VERSION;
            return TC_OK;
        }
        if (strncmp(k, "--", 2) != 0) {
            if (positional && !*positional) {
                *positional = k;
                continue;
            }
            return tc_fail(TC_E_USAGE, "%s: unexpected argument '%s' (see --help)", prog, k);
        }
        const char *name = k + 2, *eq = strchr(name, '=');
        const tc_arg *a = find(table, n, name, eq ? (size_t)(eq - name) : strlen(name));
        if (!a)
            return tc_fail(TC_E_USAGE, "%s: unknown option '%s' (see --help)", prog, k);
        if (a->kind == TC_ARG_FLAG) {
            if (eq)
                return tc_fail(TC_E_USAGE, "%s: --%s takes no value", prog, a->name);
            *(bool *)a->dst = true;
            continue;
        }
        const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!v)
            return tc_fail(TC_E_USAGE, "%s: --%s needs a value", prog, a->name);
        TC_TRY(set_value(prog, a, v));
    }
    return TC_OK;
}
