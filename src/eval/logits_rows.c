/* logits_rows.c: the scalar reference of eval's per-token logits
 * comparison (logits_rows.h); kernels/eval_logits.cu is held to it. */
#include "trtconv/eval/logits_rows.h"

#include <limits.h>
#include <math.h>

void tc_logits_rows_max(const float *a, const float *b, int64_t V, int64_t r0, int64_t r1,
                        double *mx)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *ar = a + r * V, *br = b + r * V;
        float ba = -INFINITY, bb = -INFINITY;
        for (int64_t k = 0; k < V; k++) {
            ba = ar[k] > ba ? ar[k] : ba;
            bb = br[k] > bb ? br[k] : bb;
        }
        mx[2 * r] = ba;
        mx[2 * r + 1] = bb;
    }
}

void tc_logits_rows_sums(const float *a, const float *b, int64_t V, int64_t col0,
                         const int32_t *next, const double *mx, int64_t r0, int64_t r1,
                         double *sums, long long *arg)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *ar = a + r * V, *br = b + r * V;
        const float ma = (float)mx[2 * r], mb = (float)mx[2 * r + 1];
        double za = 0.0, zb = 0.0, s = 0.0, ta = 0.0, tb = 0.0;
        long long ia = LLONG_MAX, ib = LLONG_MAX;
        for (int64_t k = 0; k < V; k++) {
            const double ea = expf(ar[k] - ma);
            za += ea;
            zb += expf(br[k] - mb);
            s += ea * ((double)ar[k] - (double)br[k]);
            if (ia == LLONG_MAX && ar[k] == ma)
                ia = col0 + k;
            if (ib == LLONG_MAX && br[k] == mb)
                ib = col0 + k;
        }
        if (next[r] >= col0 && next[r] < col0 + V) {
            ta = ar[next[r] - col0];
            tb = br[next[r] - col0];
        }
        double *o = sums + 6 * r;
        o[0] = za, o[1] = zb, o[2] = s, o[3] = ta, o[4] = tb, o[5] = 0.0;
        arg[2 * r] = ia;
        arg[2 * r + 1] = ib;
    }
}
