/* The float32 FMA peak of one core: 12 independent chains of 256-bit FMAs
 * (enough to cover the FMA latency on every AVX2 core), best of 5 runs.
 * The ceiling of any float32 GEMM on this core, numpy's BLAS included.
 *
 *     gcc -O2 -mavx2 -mfma bench/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
 *     (/tmp/fma_peak & /tmp/fma_peak & wait)    # two cores side by side
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    volatile float seed = 1.0f; /* distinct starts: the compiler cannot merge the chains */
    __m256 acc[12];
    for (int j = 0; j < 12; j++) acc[j] = _mm256_set1_ps(seed + j);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    const long iterations = 100000000L;
    double best = 1e30;
    for (int run = 0; run < 5; run++) {
        double t = now();
        for (long i = 0; i < iterations; i++) {
#pragma GCC unroll 12 /* the chains must stay in registers */
            for (int j = 0; j < 12; j++) acc[j] = _mm256_fmadd_ps(acc[j], m, c);
        }
        t = now() - t;
        if (t < best) best = t;
    }
    float out[8], sum = 0.0f; /* use the results, so that the loop is kept */
    for (int j = 0; j < 12; j++) {
        _mm256_storeu_ps(out, acc[j]);
        sum += out[0];
    }
    printf("float32 FMA peak of one core: %.1f GFLOP/s (checksum %.3f)\n",
           iterations * 12.0 * 8 * 2 / best / 1e9, sum);
    return 0;
}
