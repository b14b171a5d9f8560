/* badinput.c (tc-badinput): runs each case of the bad-input corpus
 * (tests/badinput/cases.tsv) through its reader and checks the exact error.
 *
 * cases.tsv, one case per line (# comments):
 *   READER <TAB> FILE <TAB> STATUS <TAB> MESSAGE
 * READER is safetensors | config | index | calib | torch | params (Meta params.json); FILE is under FILES_DIR;
 * STATUS the tc_status number; MESSAGE the exact first error the reader
 * reports, with {file} standing for the file's path.
 * Usage: tc-badinput CASES_TSV FILES_DIR [--print]   (--print: show what
 * each reader says, to add a case). Exit 0 when every case matches. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/model/hf_model.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/safetensors.h"
#include "trtconv/calib/tokens.h"
#include "trtconv/formats/torchfile.h"

static tc_status run_reader(const char *reader, const char *path)
{
    if (strcmp(reader, "safetensors") == 0) {
        tc_st_file *f = NULL;
        tc_status st = tc_st_open(path, &f, NULL);
        tc_st_close(f);
        return st;
    }
    if (strcmp(reader, "torch") == 0) {
        tc_st_file *f = NULL;
        tc_status st = tc_torch_open(path, &f);
        tc_st_close(f);
        return st;
    }
    if (strcmp(reader, "calib") == 0) {
        tc_token_set t;
        tc_status st = tc_tokens_load_jsonl(path, 64, 256, 1000, &t);
        if (st == TC_OK)
            tc_tokens_free(&t);
        return st;
    }
    char *text = NULL;
    size_t len = 0;
    tc_status st = tc_read_small_file(path, 1u << 24, &text, &len);
    if (st != TC_OK)
        return st;
    if (strcmp(reader, "params") == 0) {
        tc_hf_config cfg;
        st = tc_meta_params_parse(path, text, len, &cfg);
        if (st == TC_OK)
            tc_hf_config_free(&cfg);
    } else if (strcmp(reader, "config") == 0) {
        tc_hf_config cfg;
        st = tc_hf_config_parse(path, text, len, &cfg);
        if (st == TC_OK)
            tc_hf_config_free(&cfg);
    } else if (strcmp(reader, "index") == 0) {
        tc_hf_model *m = calloc(1, sizeof *m);
        pthread_mutex_init(&m->lock, NULL);
        st = tc_hf_index_parse(m, path, text, len);
        tc_hf_close(m);
    } else {
        fprintf(stderr, "unknown reader %s\n", reader);
        st = TC_E_USAGE;
    }
    free(text);
    return st;
}

/* expected with every "{file}" replaced by path. */
static void expand(const char *expected, const char *path, char *out, size_t n)
{
    size_t len = 0;
    for (const char *p = expected; *p && len + 1 < n;) {
        if (strncmp(p, "{file}", 6) == 0) {
            len += (size_t)snprintf(out + len, n - len, "%s", path);
            p += 6;
        } else {
            out[len++] = *p++;
        }
    }
    out[len < n ? len : n - 1] = '\0';
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tc-badinput CASES_TSV FILES_DIR [--print]\n");
        return 2;
    }
    const int print = argc > 3 && strcmp(argv[3], "--print") == 0;
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    tc_log_init(0, 1, NULL);
    tc_log_set_quiet(1);
    char line[4096];
    int cases = 0, failed = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *reader = strtok(line, "\t"), *file = strtok(NULL, "\t"),
             *status = strtok(NULL, "\t"), *msg = strtok(NULL, "");
        if (!reader || !file || !status || !msg) {
            fprintf(stderr, "malformed case line\n");
            return 2;
        }
        char path[1024], want[4096];
        snprintf(path, sizeof path, "%s/%s", argv[2], file);
        tc_clear_first_error();
        tc_status st = run_reader(reader, path);
        const char *got = tc_first_error();
        expand(msg, path, want, sizeof want);
        cases++;
        if (print) {
            printf("%s\t%s\t%d\t%s\n", reader, file, (int)st, got);
            continue;
        }
        if (st == TC_OK || (int)st != atoi(status) || strcmp(got, want) != 0) {
            failed++;
            printf("FAIL: %s (%s): status %d, expected %s\n  got:  %s\n  want: %s\n", file,
                   reader, (int)st, status, got, want);
        } else {
            printf("PASS: %s (%s): %s\n", file, reader, got);
        }
    }
    fclose(f);
    printf("%d bad inputs, %d failed\n", cases, failed);
    return failed || cases < 30 ? 1 : 0;
}
