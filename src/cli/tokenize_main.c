/* trtconv-tokenize: run a model's tokenizer (tokenizer.h) over JSON Lines
 * text, for checking trtconv's ids against Hugging Face's and for timing.
 *
 *   trtconv-tokenize --tokenizer_dir DIR [--source auto|model|json]
 *       [--input FILE.jsonl] [--calib] [--max_length L] [--no_special]
 *       [--threads N] [--repeat R] [--output FILE] [--describe]
 *
 * Input: one JSON object per line with a "text" (or "article") string.
 * Output (--output, default stdout; "-" stdout, "none" nothing): one line
 * {"ids": [...]} per input line, in input order. --calib applies the Python
 * tool's calibration text handling (tokenizer.h tc_calib_text) first, as
 * `trtconv --calib_dataset` does. --repeat R encodes the whole input R
 * times on N threads and prints tokens, seconds and tokens/s of the
 * encoding alone to stderr. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "trtconv/core/fsutil.h"
#include "trtconv/core/jsonutil.h"
#include "trtconv/core/log.h"
#include "trtconv/calib/tokenizer.h"
#include "trtconv/cli/args.h"

typedef struct job {
    const tc_tokenizer *tok;
    char **texts;
    size_t *lens;
    size_t n;
    int64_t max_len;
    bool special;
    int32_t **ids;
    size_t *n_ids;
    size_t next;         /* shared cursor */
    pthread_mutex_t mu;
    tc_status st;
    size_t tokens;
} job;

static void *worker(void *arg)
{
    job *j = arg;
    size_t tokens = 0;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t i = j->next < j->n ? j->next++ : j->n;
        bool stop = j->st != TC_OK;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n || stop)
            break;
        char what[64];
        snprintf(what, sizeof what, "input line %zu", i + 1);
        free(j->ids[i]);
        tc_status st = tc_tokenizer_encode(j->tok, j->texts[i], j->lens[i], j->special, j->max_len,
                                           what, &j->ids[i], &j->n_ids[i]);
        tokens += j->n_ids[i];
        if (st != TC_OK) {
            pthread_mutex_lock(&j->mu);
            j->st = st;
            pthread_mutex_unlock(&j->mu);
        }
    }
    pthread_mutex_lock(&j->mu);
    j->tokens += tokens;
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static tc_status run_all(job *j, int threads)
{
    pthread_t th[256];
    j->next = 0;
    j->tokens = 0;
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&th[started], NULL, worker, j) != 0)
            break;
    if (started == 0)
        worker(j);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    return j->st;
}

static tc_status read_input(const char *path, bool calib, char ***texts, size_t **lens, size_t *n)
{
    FILE *f = stdin;
    if (strcmp(path, "-") != 0) {
        int fd = -1;
        TC_TRY(tc_open_input(path, NULL, &fd));
        if (!(f = fdopen(fd, "rb"))) {
            close(fd);
            return tc_fail(TC_E_IO, "%s: %s", path, strerror(errno));
        }
    }
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    ssize_t len;
    long lineno = 0;
    tc_status st = TC_OK;
    *texts = NULL;
    *lens = NULL;
    *n = 0;
    while (st == TC_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len <= 1)
            continue;
        cJSON *o = tc_json_parse(path, line, (size_t)len);
        const cJSON *t = tc_json_get(o, "text");
        if (!t)
            t = tc_json_get(o, "article");
        if (!cJSON_IsString(t)) {
            st = tc_fail(TC_E_INPUT, "%s:%ld: no \"text\" or \"article\" string", path, lineno);
        } else {
            if (*n == alloc) {
                alloc = alloc ? alloc * 2 : 256;
                char **tv = realloc(*texts, alloc * sizeof *tv);
                size_t *lv = tv ? realloc(*lens, alloc * sizeof *lv) : NULL;
                if (tv)
                    *texts = tv;
                if (lv)
                    *lens = lv;
                if (!tv || !lv)
                    st = tc_fail(TC_E_INTERNAL, "out of memory");
            }
            if (st == TC_OK) {
                size_t tl = strlen(t->valuestring);
                if (calib) {
                    st = tc_calib_text(t->valuestring, tl, &(*texts)[*n], &(*lens)[*n]);
                } else {
                    (*texts)[*n] = strdup(t->valuestring);
                    (*lens)[*n] = tl;
                    if (!(*texts)[*n])
                        st = tc_fail(TC_E_INTERNAL, "out of memory");
                }
                if (st == TC_OK)
                    (*n)++;
            }
        }
        cJSON_Delete(o);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return st;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: trtconv-tokenize --tokenizer_dir DIR [--source auto|model|json] [--input F.jsonl]\n"
            "           [--calib] [--max_length L] [--no_special] [--threads N] [--repeat R]\n"
            "           [--output FILE|-|none] [--describe]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *input = "-", *output = "-";
    static const char *const sources[] = { "auto", "model", "json", NULL };
    int source_ix = 0;
    bool calib = false, no_special = false, describe = false;
    int64_t max_len = 0, threads = 1, repeat = 0;
    const tc_arg table[] = {
        TC_OPT_STR("tokenizer_dir", &dir),
        TC_OPT_STR("input", &input),
        TC_OPT_STR("output", &output),
        TC_OPT_CHOICE("source", &source_ix, sources),
        TC_OPT_INT("max_length", &max_len, 0, INT32_MAX),
        TC_OPT_INT("threads", &threads, 1, 256),
        TC_OPT_INT("repeat", &repeat, 0, 1000000),
        TC_OPT_FLAG("calib", &calib),
        TC_OPT_FLAG("no_special", &no_special),
        TC_OPT_FLAG("describe", &describe),
    };
    tc_args_stop stop;
    tc_log_init(0, 1, NULL);
    if (tc_args_parse("trtconv-tokenize", table, sizeof table / sizeof table[0], argc, argv, 1,
                      NULL, &stop) != TC_OK)
        return usage();
    if (stop == TC_ARGS_HELP)
        usage();
    if (stop != TC_ARGS_RUN)
        return 0;
    if (!dir)
        return usage();
    const bool special = !no_special;
    const tc_tokenizer_source source = source_ix == 1 ? TC_TOKENIZER_SPM_MODEL
                                     : source_ix == 2 ? TC_TOKENIZER_HF_JSON
                                                      : TC_TOKENIZER_AUTO;
    tc_log_init(0, 1, NULL);
    double t0 = now_s();
    tc_tokenizer *tok;
    tc_status st = tc_tokenizer_load(dir, source, &tok);
    if (st != TC_OK)
        return (int)st;
    double t_load = now_s() - t0;
    if (describe)
        fprintf(stderr, "%s (loaded in %.3f s)\n", tc_tokenizer_describe(tok), t_load);
    char **texts = NULL;
    size_t *lens = NULL, n = 0;
    st = read_input(input, calib, &texts, &lens, &n);
    job j = {.tok = tok, .texts = texts, .lens = lens, .n = n, .max_len = max_len,
             .special = special, .st = TC_OK};
    pthread_mutex_init(&j.mu, NULL);
    j.ids = calloc(n ? n : 1, sizeof *j.ids);
    j.n_ids = calloc(n ? n : 1, sizeof *j.n_ids);
    if (st == TC_OK && (!j.ids || !j.n_ids))
        st = tc_fail(TC_E_INTERNAL, "out of memory");
    if (st == TC_OK)
        st = run_all(&j, (int)threads);
    if (st == TC_OK && repeat > 0) {
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += lens[i];
        double t1 = now_s();
        size_t tokens = 0;
        for (int r = 0; r < repeat && st == TC_OK; r++) {
            st = run_all(&j, (int)threads);
            tokens += j.tokens;
        }
        double dt = now_s() - t1;
        fprintf(stderr, "trtconv-tokenize: %zu texts x %d, %zu tokens, %.1f MB of text, %.4f s, "
                "%.0f tokens/s, %d thread(s)\n", n, (int)repeat, tokens, (double)bytes * repeat / 1e6,
                dt, (double)tokens / dt, (int)threads);
    }
    if (st == TC_OK && strcmp(output, "none")) {
        FILE *f = strcmp(output, "-") ? fopen(output, "w") : stdout;
        if (!f)
            st = tc_fail(TC_E_IO, "cannot write %s", output);
        for (size_t i = 0; f && i < n; i++) {
            fputs("{\"ids\": [", f);
            for (size_t k = 0; k < j.n_ids[i]; k++)
                fprintf(f, k ? ", %d" : "%d", j.ids[i][k]);
            fputs("]}\n", f);
        }
        if (f && f != stdout && fclose(f) != 0)
            st = tc_fail(TC_E_IO, "writing %s failed", output);
    }
    for (size_t i = 0; i < n; i++) {
        free(texts[i]);
        free(j.ids[i]);
    }
    free(texts);
    free(lens);
    free(j.ids);
    free(j.n_ids);
    pthread_mutex_destroy(&j.mu);
    tc_tokenizer_free(tok);
    return (int)st;
}
