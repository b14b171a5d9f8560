/* main.c: the run of trtconv-genmodel (genmodel.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "genmodel.h"
#include "trtconv/core/fsutil.h"
#include "trtconv/core/log.h"
#include "trtconv/formats/st_writer.h"
#include "trtconv/formats/torchwrite.h"
#include "trtconv/formats/zipread.h"

/* ------------------------------------------------------------------ */
/* Main                                                                 */

static tc_status gm_run(const struct gm_opts *o)
{
    tc_status st = TC_OK;
    struct gm_model m = { NULL, 0, 0, NULL };
    char (*fnames)[64] = NULL;
    char path[4096];
    size_t total_tensors = 0;
    uint64_t total_file_bytes = 0;
    double t0 = tc_now_seconds(), dt;
    int64_t s;

    st = gm_model_build(o, &m);
    if (st != TC_OK)
        goto done;
    st = tc_mkdir_p(o->out, "--out");
    if (st != TC_OK)
        goto done;
    fnames = calloc((size_t)o->shards, sizeof *fnames);
    if (!fnames) {
        st = tc_fail(TC_E_INTERNAL, "out of memory");
        goto done;
    }
    const int bin = o->format == GM_FMT_BIN;
    for (s = 0; s < o->shards; s++) {
        int len = o->shards == 1
            ? snprintf(fnames[s], sizeof fnames[s], bin ? "pytorch_model.bin" : "model.safetensors")
            : snprintf(fnames[s], sizeof fnames[s],
                       bin ? "pytorch_model-%05lld-of-%05lld.bin" : "model-%05lld-of-%05lld.safetensors",
                       (long long)s + 1, (long long)o->shards);
        if (len < 0 || (size_t)len >= sizeof fnames[s]) {
            st = tc_fail(TC_E_INTERNAL, "shard name too long");
            goto done;
        }
    }

    if (o->format == GM_FMT_META) {
        st = gm_write_meta(o, &m, &total_tensors, &total_file_bytes);
        if (st != TC_OK)
            goto done;
        goto report;
    }
    st = tc_path_join(path, sizeof path, o->out, "config.json");
    if (st != TC_OK)
        goto done;
    st = gm_write_config(o, path);
    if (st != TC_OK)
        goto done;
    if (bin) {
        /* Safetensors take precedence in a model directory: remove them. */
        static const char *const stale[] = { "model.safetensors",
                                             "model.safetensors.index.json" };
        for (size_t k = 0; k < 2; k++) {
            st = tc_path_join(path, sizeof path, o->out, stale[k]);
            if (st != TC_OK)
                goto done;
            if (unlink(path) != 0 && errno != ENOENT) {
                st = tc_fail(TC_E_IO, "%s: unlink: %s", path, strerror(errno));
                goto done;
            }
        }
        st = tc_path_join(path, sizeof path, o->out, o->shards == 1
                     ? "pytorch_model.bin.index.json" : "pytorch_model.bin");
        if (st == TC_OK && unlink(path) != 0 && errno != ENOENT)
            st = tc_fail(TC_E_IO, "%s: unlink: %s", path, strerror(errno));
        if (st == TC_OK)
            st = gm_write_bin(o, &m, fnames, &total_tensors, &total_file_bytes);
        if (st == TC_OK && o->shards > 1) {
            st = tc_path_join(path, sizeof path, o->out, "pytorch_model.bin.index.json");
            if (st == TC_OK)
                st = gm_write_index(&m, fnames, path);
        }
        if (st != TC_OK)
            goto done;
        goto report;
    }

    /* Remove the other layout's entry point so a directory reused with a
     * different --shards is not ambiguous. */
    st = tc_path_join(path, sizeof path, o->out, o->shards == 1
                 ? "model.safetensors.index.json" : "model.safetensors");
    if (st != TC_OK)
        goto done;
    if (unlink(path) != 0 && errno != ENOENT) {
        st = tc_fail(TC_E_IO, "%s: unlink: %s", path, strerror(errno));
        goto done;
    }

    for (s = 0; s < o->shards; s++) {
        size_t nt = 0;
        uint64_t fb = 0;
        st = tc_path_join(path, sizeof path, o->out, fnames[s]);
        if (st != TC_OK)
            goto done;
        st = gm_write_shard(o, &m, (int)s, path, &nt, &fb);
        if (st != TC_OK)
            goto done;
        printf("%s: %zu tensors, %llu bytes\n", fnames[s], nt,
               (unsigned long long)fb);
        total_tensors += nt;
        total_file_bytes += fb;
    }
    if (o->shards > 1) {
        st = tc_path_join(path, sizeof path, o->out,
                     "model.safetensors.index.json");
        if (st != TC_OK)
            goto done;
        st = gm_write_index(&m, fnames, path);
        if (st != TC_OK)
            goto done;
    }
report:
    dt = tc_now_seconds() - t0;
    printf("total: %lld files, %zu tensors, %llu bytes (%llu data) in %.2f s, "
           "%.0f MB/s\n", (long long)(o->format == GM_FMT_META ? o->mp : o->shards), total_tensors,
           (unsigned long long)total_file_bytes,
           (unsigned long long)m.total_bytes, dt,
           dt > 0 ? (double)total_file_bytes / dt / 1e6 : 0.0);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        st = tc_fail(TC_E_IO, "stdout: write failed");
        goto done;
    }
done:
    free(fnames);
    free(m.first);
    free(m.t);
    return st;
}

int main(int argc, char **argv)
{
    struct gm_opts o;
    tc_status st;
    int help = 0;

    tc_log_init(0, 1, NULL);
    st = gm_parse_args(argc, argv, &o, &help);
    if (st != TC_OK) {
        fputs("try 'trtconv-genmodel --help'\n", stderr);
        return (int)st;
    }
    if (help == 2)
        return 0; /* --version */
    if (help) {
        gm_usage(stdout);
        return fflush(stdout) == 0 ? 0 : (int)TC_E_IO;
    }
    st = gm_run(&o);
    return (int)st;
}
