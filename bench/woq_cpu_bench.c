/* woq_cpu_bench.c: throughput of the fast CPU weight-only path
 * (tc_woq_quantize_rows) on a 14336 x 4096 matrix (Llama-3-8B mlp.fc), for
 * int8/int4, the sm80 and sm90 layouts, F16 and BF16 input, on 1..T threads
 * that split the rows as trtconv's --workers do. Prints GB/s of input.
 * usage: bench_woq_cpu [MAX_THREADS] */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "trtconv/core/dtype.h"
#include "trtconv/core/log.h"
#include "trtconv/quant/woq.h"

enum { N = 14336, K = 4096 };

typedef struct job {
    const uint8_t *w;
    tc_dtype dt;
    int bits, sm;
    int64_t n0, rows;
    uint8_t *out;
    uint8_t *scales;
} job;

static void *run(void *arg)
{
    job *j = arg;
    size_t es = tc_dtype_bits(j->dt) / 8;
    if (tc_woq_quantize_rows(j->w + (size_t)j->n0 * K * es, j->dt, j->rows, K, j->bits, j->sm, j->n0,
                             j->out + (size_t)j->n0 * K * (size_t)j->bits / 8,
                             j->scales + (size_t)j->n0 * es) != TC_OK)
        abort();
    return NULL;
}

int main(int argc, char **argv)
{
    int max_threads = argc > 1 ? atoi(argv[1]) : 4;
    float *wf = malloc((size_t)N * K * sizeof *wf);
    uint8_t *w = malloc((size_t)N * K * 2), *out = malloc((size_t)N * K), *sc = malloc(N * 4);
    if (!wf || !w || !out || !sc)
        return 1;
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < (size_t)N * K; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        wf[i] = (float)((double)(x >> 11) * 0x1p-53 - 0.5) * 0.04f;
    }
    const tc_dtype dts[2] = { TC_DT_F16, TC_DT_BF16 };
    const int sms[2] = { 80, 90 };
    printf("| input | layout | bits | threads | GB/s of input |\n|---|---|---|---|---|\n");
    for (int d = 0; d < 2; d++) {
        tc_convert(w, dts[d], wf, TC_DT_F32, (size_t)N * K);
        for (int s = 0; s < 2; s++)
            for (int bits = 8; bits >= 4; bits -= 4)
                for (int t = 1; t <= max_threads; t *= 2) {
                    double best = 1e9;
                    for (int rep = 0; rep < 3; rep++) {
                        pthread_t th[64];
                        job jb[64];
                        int64_t per = (N / t) / 4 * 4;
                        double t0 = tc_now_seconds();
                        for (int i = 0; i < t; i++) {
                            jb[i] = (job){ w, dts[d], bits, sms[s], i * per,
                                           i == t - 1 ? N - i * per : per, out, sc };
                            pthread_create(&th[i], NULL, run, &jb[i]);
                        }
                        for (int i = 0; i < t; i++)
                            pthread_join(th[i], NULL);
                        double el = tc_now_seconds() - t0;
                        if (el < best)
                            best = el;
                    }
                    printf("| %s | sm%d | int%d | %d | %.2f |\n", tc_dtype_name(dts[d]), sms[s], bits, t,
                           (double)N * K * 2 / best / 1e9);
                }
    }
    free(wf); free(w); free(out); free(sc);
    return 0;
}
