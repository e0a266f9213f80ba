/* One decoded token's attention for many sequences in one call: the numpy path's decode
 * attention (app/llm/attend_native.py loads this; app/llm/cpu_kernels.py falls back to numpy).
 *
 * Why C: in numpy a sequence's attention in one layer is a dozen small calls (~40-70 us on
 * 2 cores at 100 cached tokens, ~150 us at 550), mostly call overhead, and a batched decode
 * step of 16 sequences makes 480 of them (30 layers): a quarter of the step at short contexts
 * and ~40% of it at 550 tokens (README, Load). Here a layer is one call for all sequences.
 *
 * Numerics follow the numpy kernel: q is multiplied by the scale first (as `q * scale` is),
 * scores less their max, exp, the weighted sum of values, divided by the sum of the weights.
 * Every dot product and sum runs in 8 fixed lanes (GCC/Clang vector extensions: AVX, or two
 * SSE/NEON registers), in the same order on every call, so results match numpy to float32
 * rounding, not bit for bit; the single-token step and the batched step both call this, so
 * they agree with each other exactly. Head sizes must be a multiple of 8 (the caller checks).
 */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define MAX_HEAD_DIM 256
#define MAX_BLOCKS (MAX_HEAD_DIM / 8)
#define MAX_REP 16
#define POS_BLOCK 4 /* positions whose scores are computed together: independent FMA chains */

static inline v8 load8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

static inline float hsum(v8 a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* exp(x) for x <= 0 (scores less their max), ~1 ulp: Cephes' expf polynomial on 8 lanes. */
static inline v8 exp_le0(v8 x) {
    const v8 floor_x = {-87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f, -87.0f};
    v8i low = x < floor_x;
    x = (v8)((low & (v8i)floor_x) | (~low & (v8i)x));
    v8i n = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, v8i); /* x <= 0: nearest */
    v8 fn = __builtin_convertvector(n, v8);
    v8 r = x - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    v8 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    v8 y = p * r * r + r + 1.0f;
    return y * (v8)((n + 127) << 23);
}

/* Scores of one query head (scaled, `blocks` x 8 floats) against keys 0..len-1. */
static inline __attribute__((always_inline)) void scores(const float *q, const float *keys,
                                                          int64_t len, int blocks, float *out) {
    int d = blocks * 8;
    int64_t t = 0;
    for (; t + POS_BLOCK <= len; t += POS_BLOCK) {
        const float *k = keys + t * d;
        v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int b = 0; b < blocks; b++) {
            v8 qv = load8(q + 8 * b);
            a0 += qv * load8(k + 8 * b);
            a1 += qv * load8(k + d + 8 * b);
            a2 += qv * load8(k + 2 * d + 8 * b);
            a3 += qv * load8(k + 3 * d + 8 * b);
        }
        out[t] = hsum(a0);
        out[t + 1] = hsum(a1);
        out[t + 2] = hsum(a2);
        out[t + 3] = hsum(a3);
    }
    for (; t < len; t++) {
        v8 a = {0};
        for (int b = 0; b < blocks; b++) a += load8(q + 8 * b) * load8(keys + t * d + 8 * b);
        out[t] = hsum(a);
    }
}

/* The largest of s[0..len), len >= 1: in 8 lanes, as a plain loop of compares does not
 * vectorize (the order matters for NaN); the result is the same in any order. */
static float largest(const float *s, int64_t len) {
    int64_t t = 0;
    float m = s[0];
    if (len >= 8) {
        v8 mv = load8(s);
        for (t = 8; t + 8 <= len; t += 8) {
            v8 x = load8(s + t);
            v8i above = x > mv; /* C has no vector ?: */
            mv = (v8)((above & (v8i)x) | (~above & (v8i)mv));
        }
        for (int l = 0; l < 8; l++) m = mv[l] > m ? mv[l] : m;
    }
    for (; t < len; t++) m = s[t] > m ? s[t] : m;
    return m;
}

/* exp(s - max) in place; returns the sum of the weights. */
static float weights(float *s, int64_t len) {
    float m = largest(s, len);
    v8 acc = {0};
    int64_t t = 0;
    for (; t + 8 <= len; t += 8) {
        v8 e = exp_le0(load8(s + t) - m);
        store8(s + t, e);
        acc += e;
    }
    if (t < len) { /* the tail, in a padded block whose extra lanes are zeroed before the sum */
        float tail[8];
        for (int l = 0; l < 8; l++) tail[l] = t + l < len ? s[t + l] - m : -87.0f;
        v8 e = exp_le0(load8(tail));
        for (int l = 0; t + l < len; l++) s[t + l] = e[l];
        for (int l = (int)(len - t); l < 8; l++) e[l] = 0.0f;
        acc += e;
    }
    return hsum(acc);
}

static inline __attribute__((always_inline)) void attend_head(
    const float *q, float scale, const float *kh, const float *vh, int64_t len, int rep,
    int blocks, float *scratch, float *out) {
    int d = blocks * 8;
    float qs[MAX_REP * MAX_HEAD_DIM];
    for (int j = 0; j < rep * d; j++) qs[j] = q[j] * scale;
    for (int r = 0; r < rep; r++) {
        float *s = scratch + r * len;
        scores(qs + r * d, kh, len, blocks, s);
        float sum = weights(s, len);
        v8 acc[MAX_BLOCKS];
        for (int b = 0; b < blocks; b++) acc[b] = (v8){0};
        for (int64_t t = 0; t < len; t++) {
            float p = s[t];
            for (int b = 0; b < blocks; b++) acc[b] += p * load8(vh + t * d + 8 * b);
        }
        for (int b = 0; b < blocks; b++) store8(out + r * d + 8 * b, acc[b] / sum);
    }
}

/* For each sequence i: write its new key and value at position pos[i] of its cache buffers
 * (keys[i], values[i]: (n_kv, cap[i], d) float32) and attend over positions 0..pos[i].
 * qk[i] points at its row of rotated queries then keys ((n_kv * rep + n_kv) * d floats), v[i]
 * at its new values (n_kv * d), out[i] at its output row (n_kv * rep * d). scratch holds
 * rep * (max pos + 1) floats for each thread (memento_attend_threads). Sequences are split
 * between threads (OpenMP, when built with it), each computed whole by one: the same result
 * whichever thread and whatever else is in the call. Returns 0, or -1 if d or rep do not fit
 * the fixed buffers. */
int memento_attend_decode(int n_seq, int n_kv, int rep, int d, float scale,
                          const int64_t *keys, const int64_t *values, const int64_t *cap,
                          const int64_t *pos, const int64_t *qk, const int64_t *v,
                          const int64_t *out, float *scratch) {
    if (d > MAX_HEAD_DIM || d % 8 != 0 || rep > MAX_REP) return -1;
    int64_t most = 0;
    for (int i = 0; i < n_seq; i++) most = pos[i] + 1 > most ? pos[i] + 1 : most;
#pragma omp parallel for schedule(dynamic) if (n_seq > 1) /* one alone: no wake-up, no barrier */
    for (int i = 0; i < n_seq; i++) {
#ifdef _OPENMP
        float *mine = scratch + (int64_t)omp_get_thread_num() * rep * most;
#else
        float *mine = scratch;
#endif
        const float *q = (const float *)qk[i];
        const float *k_new = q + (int64_t)n_kv * rep * d;
        const float *v_new = (const float *)v[i];
        float *o = (float *)out[i];
        int64_t len = pos[i] + 1, stride = cap[i] * d;
        for (int h = 0; h < n_kv; h++) {
            float *kh = (float *)keys[i] + h * stride;
            float *vh = (float *)values[i] + h * stride;
            memcpy(kh + pos[i] * d, k_new + h * d, d * sizeof(float));
            memcpy(vh + pos[i] * d, v_new + h * d, d * sizeof(float));
            const float *qh = q + (int64_t)h * rep * d;
            float *oh = o + (int64_t)h * rep * d;
            if (d == 64) /* SmolLM2's and most small llamas' heads: loops of constant length */
                attend_head(qh, scale, kh, vh, len, rep, 8, mine, oh);
            else
                attend_head(qh, scale, kh, vh, len, rep, d / 8, mine, oh);
        }
    }
    return 0;
}

/* A prompt chunk's attention softmax (app/llm/cpu_prefill.py): row r of `scores` (rows x n,
 * row stride ld: a block of queries against the cached keys, `rep` rows per query) sees its
 * first len0 + r / rep keys, the causal limit of its query; exp(s - max) over them in place,
 * zero past them, and sums[r] the sum of its weights. In numpy the masks, max, exp and sums
 * were ~0.13 s of a 250-token chunk's 0.52 s at an offset of 2,400 (README, Time to first
 * token). Rows are independent: split between threads (OpenMP, when built with it). */
void memento_softmax_causal(int rows, int n, float *scores, int ld, int rep, int len0,
                            float *sums) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        float *s = scores + (int64_t)r * ld;
        int64_t len = (int64_t)len0 + r / rep;
        if (len > n) len = n;
        sums[r] = weights(s, len);
        memset(s + len, 0, (size_t)(n - len) * sizeof(float));
    }
}

/* How many threads share a call (1 without OpenMP): the caller sizes scratch by it. */
int memento_attend_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
