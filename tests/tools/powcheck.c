/* powcheck.c: tc-powcheck [--dump FILE] TABLE...: holds tc_torch_pow_scalar (sq.h) to the
 * results PyTorch computed on CUDA (tests/sq/torch_pow_table.py writes the
 * tables: every non-negative input bit pattern of float16 or bfloat16,
 * raised to a list of Python-float exponents). Prints the number of
 * mismatches per table and the first few; exit 0 only when all agree.
 * --dump FILE appends every mismatch as a line "dtype w_bits e_bits
 * torch_bits" (hex; e_bits: the exponent rounded to the dtype), the input
 * of tests/sq/make_pow_fixups.py. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/dtype.h"
#include "trtconv/quant/sq.h"

static FILE *g_dump;

static int check(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return 1;
    }
    unsigned char head[24];
    uint32_t v[4];
    if (fread(head, 1, sizeof head, f) != sizeof head || memcmp(head, "TCPOW1\0\0", 8) != 0) {
        fprintf(stderr, "%s: not a TCPOW1 table\n", path);
        fclose(f);
        return 1;
    }
    memcpy(v, head + 8, sizeof v);
    const tc_dtype dt = v[0] == 0 ? TC_DT_F16 : TC_DT_BF16;
    const uint32_t n_in = v[1], n_exp = v[2];
    if (v[0] > 1 || n_in == 0 || n_in > 0x10000) {
        fprintf(stderr, "%s: bad header\n", path);
        fclose(f);
        return 1;
    }
    uint16_t *r = malloc((size_t)n_in * sizeof *r);
    uint64_t bad = 0, total = 0;
    for (uint32_t k = 0; r && k < n_exp; k++) {
        double e;
        if (fread(&e, sizeof e, 1, f) != 1 || fread(r, sizeof *r, n_in, f) != n_in) {
            fprintf(stderr, "%s: truncated at exponent %" PRIu32 "\n", path, k);
            bad++;
            break;
        }
        for (uint32_t b = 0; b < n_in; b++) {
            const float w = dt == TC_DT_F16 ? tc_f16_to_f32((uint16_t)b) : tc_bf16_to_f32((uint16_t)b);
            const float got = tc_torch_pow_scalar(dt, w, e);
            const uint16_t gb = dt == TC_DT_F16 ? tc_f32_to_f16(got) : tc_f32_to_bf16(got);
            total++;
            if (gb != r[b] && g_dump)
                fprintf(g_dump, "%s %04x %04x %04x\n", dt == TC_DT_F16 ? "f16" : "bf16", b,
                        dt == TC_DT_F16 ? tc_f32_to_f16((float)e) : tc_f32_to_bf16((float)e), r[b]);
            if (gb != r[b] && bad++ < 10)
                printf("  mismatch: %s w=0x%04x (%.9g) e=%.17g: torch 0x%04x, trtconv 0x%04x\n",
                       tc_dtype_name(dt), b, (double)w, e, r[b], gb);
        }
    }
    free(r);
    fclose(f);
    printf("%s: %s, %" PRIu32 " exponents x %" PRIu32 " inputs: %" PRIu64 " of %" PRIu64
           " results differ\n", path, tc_dtype_name(dt), n_exp, n_in, bad, total);
    return bad != 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: tc-powcheck TABLE...\n");
        return 2;
    }
    int rc = 0, i = 1;
    if (argc > 3 && strcmp(argv[1], "--dump") == 0) {
        g_dump = fopen(argv[2], "a");
        if (!g_dump) {
            fprintf(stderr, "%s: cannot open\n", argv[2]);
            return 2;
        }
        i = 3;
    }
    for (; i < argc; i++)
        rc |= check(argv[i]);
    if (g_dump)
        fclose(g_dump);
    return rc;
}
