/* e4m3check.c DIR: tc_f32_to_e4m3fn against PyTorch's CUDA
 * .to(torch.float8_e4m3fn) (fixtures from tests/fp8/make_e4m3_fixtures.py):
 * every float16 and bfloat16 bit pattern byte for byte, and the SHA-256 of
 * 10^7 float32 values from the same counter-based splitmix64. Exit 0 when
 * all agree; the first mismatches are printed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trtconv/core/dtype.h"
#include "trtconv/core/sha256.h"

static int check_table(const char *dir, const char *name, int bf16)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    static uint8_t want[65536];
    if (!f || fread(want, 1, sizeof want, f) != sizeof want) {
        fprintf(stderr, "%s: cannot read 65536 bytes\n", path);
        if (f)
            fclose(f);
        return 1;
    }
    fclose(f);
    int bad = 0;
    for (uint32_t p = 0; p < 65536; p++) {
        const float x = bf16 ? tc_bf16_to_f32((uint16_t)p) : tc_f16_to_f32((uint16_t)p);
        /* torch widens a float16 on the GPU with cvt.f32.f16, whose NaN is
         * the positive canonical NaN: a negative float16 NaN gives 0x7F
         * (the fixture shows it; bfloat16 is widened by a shift and keeps
         * the sign). trtconv never casts a float16 NaN to E4M3 directly:
         * its FP8 paths divide first, and NaN quotients are canonical too. */
        const uint8_t got = !bf16 && x != x ? 0x7F : tc_f32_to_e4m3fn(x);
        if (got != want[p] && bad++ < 10)
            printf("%s 0x%04x (%g): trtconv 0x%02x, torch 0x%02x\n", name, p, (double)x, got,
                   want[p]);
    }
    printf("%s: %d of 65536 differ\n", name, bad);
    return bad != 0;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int check_random(const char *dir)
{
    char path[4096], want[65] = "";
    unsigned long long n = 0, seed = 0;
    snprintf(path, sizeof path, "%s/f32.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f || fscanf(f, "n %llu\nseed %llu\nsha256 %64s", &n, &seed, want) != 3 ||
        n == 0 || n > 100000000ULL) {
        fprintf(stderr, "%s: expected 'n N', 'seed S', 'sha256 HEX'\n", path);
        if (f)
            fclose(f);
        return 1;
    }
    fclose(f);
    uint8_t *out = malloc(n);
    if (!out)
        return 1;
    for (uint64_t i = 0; i < n; i++) {
        const uint64_t z = mix64(seed + (i + 1) * UINT64_C(0x9E3779B97F4A7C15));
        uint32_t bits = (uint32_t)(z >> 32);
        if (i & 1)
            bits = (bits & UINT32_C(0x807FFFFF)) |
                   ((UINT32_C(0x70) + (uint32_t)((z & 0xFFFF) % 0x19)) << 23);
        float x;
        memcpy(&x, &bits, 4);
        out[i] = tc_f32_to_e4m3fn(x);
    }
    tc_sha256 s = { .scalar_only = false };
    uint8_t d[TC_SHA256_BYTES];
    tc_sha256_init(&s);
    tc_sha256_update(&s, out, n);
    tc_sha256_final(&s, d);
    free(out);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    const int ok = strcmp(hex, want) == 0;
    printf("float32 x %llu: SHA-256 %s torch's\n", n, ok ? "equals" : "differs from");
    return !ok;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tc-e4m3check FIXTURE_DIR\n");
        return 2;
    }
    int bad = check_table(argv[1], "f16.bin", 0);
    bad |= check_table(argv[1], "bf16.bin", 1);
    bad |= check_random(argv[1]);
    return bad;
}
