/* The kernels of app/llm/gemm.c for one weight type, included once per type: WEIGHT (the
 * element type of w), LOADW (W of them as float32) and NAME (each function's name for that
 * type) are defined by the includer. */

/* rows x (vecs * W) of out from x (rows x K) and a (K x vecs * W) slice of w. */
static inline __attribute__((always_inline)) void NAME(tile)(int rows, int vecs, int K, const float *x,
                                                        int64_t ldx, const WEIGHT *w, int64_t ldw,
                                                        float *out, int64_t ldo) {
    vec acc[MAX_ROWS][PANEL]; /* tiles()'s every case compiles; a build runs ROWS */
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < vecs; j++) acc[r][j] = (vec){0};
    for (int k = 0; k < K; k++) {
        const WEIGHT *wk = w + k * ldw;
        const WEIGHT *ahead = wk + PREFETCH * ldw; /* may point past w: prefetch never faults */
        vec wv[PANEL];
        for (int j = 0; j < vecs; j++) {
            __builtin_prefetch(ahead + W * j);
            wv[j] = LOADW(wk + W * j);
        }
        for (int r = 0; r < rows; r++) {
            float s = x[r * ldx + k];
            for (int j = 0; j < vecs; j++) acc[r][j] = fmadd(acc[r][j], s, wv[j]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < vecs; j++) storev(out + r * ldo + W * j, acc[r][j]);
}

static void NAME(tiles)(int rows, int vecs, int K, const float *x, int64_t ldx, const WEIGHT *w,
                  int64_t ldw, float *out, int64_t ldo) {
    if (vecs == PANEL) {
        BY_ROWS(PANEL)
    } else {
        BY_ROWS(1)
    }
}

/* Columns [v0, v1) (in 16-float vectors) of out, all M rows, tile by tile. */
static void NAME(columns)(int M, int K, int v0, int v1, const float *x, int64_t ldx, const WEIGHT *w,
                    int64_t ldw, float *out, int64_t ldo) {
    for (int v = v0; v < v1;) {
        int vecs = v1 - v >= PANEL ? PANEL : 1;
        for (int m = 0; m < M; m += ROWS)
            NAME(tiles)(M - m < ROWS ? M - m : ROWS, vecs, K, x + m * ldx, ldx, w + (int64_t)W * v,
                  ldw, out + m * ldo + (int64_t)W * v, ldo);
        v += vecs;
    }
}

/* One row (a single sequence's decode step): bandwidth-bound, so panels of WIDE vectors, each
 * step of k reading a long run of a weight row (1 KB of float32 with AVX-512, 384 bytes with
 * AVX2), which the memory streams faster than tile()'s PANEL vectors per row. The same sums in
 * the same order as tile(): a sequence's step alone gives what its row of a batched step gives,
 * bit for bit. */
static void NAME(row_columns)(int K, int v0, int v1, const float *x, const WEIGHT *w, int64_t ldw,
                        float *out) {
    int v = v0;
    for (; v + WIDE <= v1; v += WIDE) {
        vec acc[WIDE];
        for (int j = 0; j < WIDE; j++) acc[j] = (vec){0};
        const WEIGHT *wn = w + (int64_t)W * v;
        for (int k = 0; k < K; k++) {
            const WEIGHT *wk = wn + k * ldw;
            for (int j = 0; j < WIDE; j++) acc[j] = fmadd(acc[j], x[k], LOADW(wk + W * j));
        }
        for (int j = 0; j < WIDE; j++) storev(out + W * (v + j), acc[j]);
    }
    NAME(columns)(1, K, v, v1, x, K, w, ldw, out, 0);
}

/* out (M x N, row stride ldo) = x (M x K, row stride ldx) @ w (K x N, row stride ldw). */
void NAME(memento_gemm)(int M, int K, int N, const float *x, int ldx, const WEIGHT *w, int ldw,
                  float *out, int ldo) {
    int panels = N / (W * PANEL), vectors = N / W;
#pragma omp parallel
    {
        int p0, p1;
        if (M == 1) {
            share(vectors, &p0, &p1);
            NAME(row_columns)(K, p0, p1, x, w, ldw, out);
        } else {
            share(panels, &p0, &p1);
            /* the last thread also takes the vectors after the whole panels */
            int v1 = p1 == panels ? vectors : PANEL * p1;
            NAME(columns)(M, K, PANEL * p0, v1, x, ldx, w, ldw, out, ldo);
        }
    }
}

