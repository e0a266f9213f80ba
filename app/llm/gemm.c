/* out = x @ w for the numpy path's many-row steps: a batched decode step (one row per sequence)
 * and a prompt chunk (one row per token). app/llm/gemm_native.py loads this;
 * app/llm/cpu_kernels.py `gemm` falls back to OpenBLAS's cblas_sgemm where it is missing.
 *
 * Why not only OpenBLAS: its sgemm packs the weight panel it reads into a buffer on every call,
 * which for a few rows costs as much as the multiply, and the kernels a build picks for a CPU
 * it does not know (OpenBLAS 0.3.21 on AMD Zen 5 picks its AVX2 "Haswell" kernels) leave the
 * wider units idle. Measured on 2 cores with SmolLM2-135M's matrices, a whole model's worth so
 * nothing stays in cache (README, Many streams): 16 rows 29 -> 20 ms a step, 512 rows 476 ->
 * 273 ms; one row about as fast as OpenBLAS's sgemv (12.5-14.4 against 14.0-14.7 ms).
 *
 * How: w is the (in, out) matrix (app/llm/cpu_kernels.py `in_out`), read as is, no packing;
 * app/llm/cpu_fast.py pads its rows by a cache line, so a panel's rows do not share cache sets.
 * The output is cut into panels of PANEL vectors (with AVX-512 three 16-float vectors, 48
 * columns); a tile of ROWS rows keeps its sums in registers while k runs over the whole input,
 * each step one row of the panel's weights and a broadcast of each row's x[k]: ROWS x PANEL
 * FMAs per PANEL weight loads. The next panel rows are prefetched (the hardware does not follow
 * a 4 KB stride on its own). Threads
 * (OpenMP, when the compiler has it) each take a share of the panels, so each weight is read
 * by one thread. Every output element sums its products in k order, the same for any row
 * count, so a row's result does not depend on which other rows share the call.
 *
 * Weights in float32 (memento_gemm) or float16 (memento_gemm_f16, the same code: gemm_tiles.h is
 * included once per type). A GGUF's quantized layers dequantize to values float16 holds
 * exactly, so app/llm/cpu_fast.py stores them so: converted back as they are read, they give
 * the very sums of the float32 matrix from half the bytes, and every step here streams its
 * weights (one row: 27 -> 20 ms for a whole model's GEMVs; 16 rows 68 -> 48 ms; even 256 rows,
 * 543 -> 376 ms: the 4 KB-strided rows of a tile cost less at half the width).
 *
 * GCC/Clang vector extensions in the machine's own width (-march=native: AVX-512, AVX2, NEON;
 * geometry below). N must be a multiple of 16 (the caller checks; every width divides it).
 */
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* Tile geometry per instruction set, in the machine's own vectors (W floats): GCC splits a
 * vector wider than the registers through the stack (AVX2 with 64-byte vectors ran at 4-12
 * GFLOP/s, OpenBLAS 120), and a tile's sums must fit the register file beside its weights and
 * a broadcast: ROWS x PANEL sums + PANEL weights + 1. WIDE: the one-row path's sums. Any
 * geometry gives the same sums (each is its products in k order); -D overrides are for
 * measuring. */
#if defined(__AVX512F__)
#define W 16 /* 32 registers: 8 x 3 + 3 + 1 = 28 */
#define GEOMETRY_ROWS 8
#define GEOMETRY_PANEL 3
#define GEOMETRY_WIDE 16
#elif defined(__AVX__)
#define W 8 /* 16 registers: 6 x 2 + 2 + 1 = 15 */
#define GEOMETRY_ROWS 6
#define GEOMETRY_PANEL 2
#define GEOMETRY_WIDE 12
#elif defined(__aarch64__)
#define W 4 /* 32 registers: 8 x 3 + 3 + 1 = 28 */
#define GEOMETRY_ROWS 8
#define GEOMETRY_PANEL 3
#define GEOMETRY_WIDE 24
#else
#define W 4 /* SSE's 16 registers */
#define GEOMETRY_ROWS 4
#define GEOMETRY_PANEL 3
#define GEOMETRY_WIDE 12
#endif
#define MAX_ROWS 8 /* tiles()'s cases */
#ifndef ROWS
#define ROWS GEOMETRY_ROWS /* rows per tile */
#endif
_Static_assert(ROWS <= MAX_ROWS, "a tile has at most MAX_ROWS rows");
#ifndef PANEL
#define PANEL GEOMETRY_PANEL /* vectors per panel */
#endif
#ifndef WIDE
#define WIDE GEOMETRY_WIDE
#endif
#define PREFETCH 32 /* weight rows ahead */

typedef float vec __attribute__((vector_size(W * sizeof(float))));

/* acc + s * w, fused where the machine has FMA. Spelled out: GCC's Zen tuning leaves a loop's
 * accumulating multiply-add unfused in some of a kernel's copies and not others, and then a
 * row's sums would depend on the path that computed them. */
static inline vec fmadd(vec acc, float s, vec w) {
#if defined(__AVX512F__)
    return _mm512_fmadd_ps(_mm512_set1_ps(s), w, acc);
#elif defined(__FMA__) && defined(__AVX__)
    return _mm256_fmadd_ps(_mm256_set1_ps(s), w, acc);
#else
    return acc + s * w;
#endif
}

static inline vec loadv(const float *p) {
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* W float16 weights as float32: exact (every float16 is a float32), so a matrix stored in
 * float16 gives the very sums of its float32 copy. Only where the hardware converts a vector at
 * once: elsewhere memento_gemm_f16 is not built and the weights stay float32. */
#if defined(__AVX512F__)
#define HALF_WEIGHTS
static inline vec loadh(const uint16_t *p) {
    __m512 r = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    vec v;
    memcpy(&v, &r, sizeof v);
    return v;
}
#elif defined(__F16C__) && defined(__AVX__)
#define HALF_WEIGHTS
static inline vec loadh(const uint16_t *p) {
    __m256 r = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    vec v;
    memcpy(&v, &r, sizeof v);
    return v;
}
#elif defined(__aarch64__)
#define HALF_WEIGHTS
typedef __fp16 half4 __attribute__((vector_size(W * sizeof(__fp16))));
static inline vec loadh(const uint16_t *p) {
    half4 h;
    memcpy(&h, p, sizeof h);
    return __builtin_convertvector(h, vec);
}
#endif

static inline void storev(float *p, vec v) { memcpy(p, &v, sizeof v); }

/* Each thread's share of `units` (whole panels, so no two threads write one panel): [u0, u1). */
static void share(int units, int *u0, int *u1) {
#ifdef _OPENMP
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    int t = 0, nt = 1;
#endif
    *u0 = (int)((int64_t)units * t / nt);
    *u1 = (int)((int64_t)units * (t + 1) / nt);
}

/* tile() with the row count and panel width as constants, so each tile's sums stay in
 * registers: one specialised copy per (rows, vecs). */
#define TILE(r, v) NAME(tile)(r, v, K, x, ldx, w, ldw, out, ldo)
#define BY_ROWS(v)                                                                               \
    switch (rows) {                                                                              \
    case 8: TILE(8, v); break;                                                                   \
    case 7: TILE(7, v); break;                                                                   \
    case 6: TILE(6, v); break;                                                                   \
    case 5: TILE(5, v); break;                                                                   \
    case 4: TILE(4, v); break;                                                                   \
    case 3: TILE(3, v); break;                                                                   \
    case 2: TILE(2, v); break;                                                                   \
    default: TILE(1, v);                                                                         \
    }

/* tile() etc. for float32 weights (memento_gemm) and for float16 ones (memento_gemm_f16) */
#define WEIGHT float
#define LOADW loadv
#define NAME(f) f
#include "gemm_tiles.h"
#undef WEIGHT
#undef LOADW
#undef NAME

#ifdef HALF_WEIGHTS
#define WEIGHT uint16_t
#define LOADW loadh
#define NAME(f) f##_f16
#include "gemm_tiles.h"
#undef WEIGHT
#undef LOADW
#undef NAME
#endif

/* out (M x N) = x (M x K) @ w.T, w (N x K, row stride ldw): prefill attention's scores, a chunk's
 * queries against the cached keys, N any length. Each thread copies 48 rows of w at a time
 * into a (K x 48) panel, zero past N, and runs the same tiles on it; a partial panel's columns
 * go through a scratch tile. K <= MAX_NT_K (a head's size). */
#define MAX_NT_K 512
int memento_gemm_nt(int M, int K, int N, const float *x, int ldx, const float *w, int ldw,
                    float *out, int ldo) {
    if (K > MAX_NT_K)
        return -1;
    int width = W * PANEL, panels = (N + width - 1) / width;
#pragma omp parallel
    {
        static __thread float panel[MAX_NT_K * W * PANEL];
        float part[ROWS * W * PANEL];
        int p0, p1;
        share(panels, &p0, &p1);
        for (int p = p0; p < p1; p++) {
            int n0 = p * width, cols = N - n0 < width ? N - n0 : width;
            for (int k = 0; k < K; k++)
                for (int c = 0; c < width; c++)
                    panel[k * width + c] = c < cols ? w[(int64_t)(n0 + c) * ldw + k] : 0.0f;
            if (cols == width) {
                columns(M, K, 0, PANEL, x, ldx, panel, width, out + n0, ldo);
                continue;
            }
            for (int m = 0; m < M; m += ROWS) {
                int rows = M - m < ROWS ? M - m : ROWS;
                tiles(rows, PANEL, K, x + (int64_t)m * ldx, ldx, panel, width, part, width);
                for (int r = 0; r < rows; r++)
                    memcpy(out + (int64_t)(m + r) * ldo + n0, part + r * width, sizeof(float) * cols);
            }
        }
    }
    return 0;
}

/* How many threads a call uses (1 without OpenMP), for the startup log and the caller's choice. */
int memento_gemm_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* The tile geometry this build chose (floats per vector, rows and vectors per tile, the one-row
 * path's vectors), for the startup log and a test that the build fits the machine. */
void memento_gemm_geometry(int *out) {
    out[0] = W;
    out[1] = ROWS;
    out[2] = PANEL;
    out[3] = WIDE;
}
