/* gemm_lt.c -- per-shape cuBLASLt algorithm choice (gemm_lt.h).
 *
 * In cuBLAS's column-major terms the product is D (out x n) = W^T-op (out x
 * in) . X (in x n): A = W stored (in x out) with TRANSA = T, B = X (in x n),
 * C = D = Y (out x n); fp32 compute, beta 0 or 1. Candidates: up to
 * LT_CANDIDATES heuristic results; each is warmed once and timed over
 * LT_REPS runs with events; the fastest total wins. Table: (max_rows + 1)
 * rows of per_rows entries, matched on (in, out, beta).
 */
#include "runtime/gemm_lt.h"

#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

#define LT_CANDIDATES 8
#define LT_REPS 5

typedef struct {
    int in, out;
    float beta;
    bool used, ok;            /* used: tuned (ok: an algorithm was found) */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} LtEntry;

struct GemmLt {
    cublasLtHandle_t lt;
    void *ws_d;
    size_t ws_bytes;
    cudaStream_t st;
    int max_rows, per_rows;
    LtEntry *tab;             /* (max_rows + 1, per_rows) */
    cudaEvent_t ev0, ev1;
};

SglStatus gemm_lt_new(int max_rows, int per_rows, void *ws_d, size_t ws_bytes, cudaStream_t st, GemmLt **out,
                      SglErr *err)
{
    *out = NULL;
    GemmLt *g = calloc(1, sizeof *g);
    if (!g || max_rows < 0 || per_rows < 1 ||
        !(g->tab = calloc(((size_t)max_rows + 1) * (size_t)per_rows, sizeof *g->tab))) {
        free(g);
        return sgl_err(err, SGL_E_NOMEM, "gemm_lt: out of host memory");
    }
    g->ws_d = ws_d;
    g->ws_bytes = ws_bytes;
    g->st = st;
    g->max_rows = max_rows;
    g->per_rows = per_rows;
    if (cublasLtCreate(&g->lt) != CUBLAS_STATUS_SUCCESS || cudaEventCreate(&g->ev0) != cudaSuccess ||
        cudaEventCreate(&g->ev1) != cudaSuccess) {
        gemm_lt_free(g);
        return sgl_err(err, SGL_E_DEVICE, "gemm_lt: cuBLASLt / event init failed");
    }
    *out = g;
    return SGL_OK;
}

static void entry_clear(LtEntry *e)
{
    if (e->op) cublasLtMatmulDescDestroy(e->op);
    if (e->a) cublasLtMatrixLayoutDestroy(e->a);
    if (e->b) cublasLtMatrixLayoutDestroy(e->b);
    if (e->c) cublasLtMatrixLayoutDestroy(e->c);
    memset(e, 0, sizeof *e);
}

void gemm_lt_free(GemmLt *g)
{
    if (!g) return;
    if (g->tab)
        for (size_t i = 0; i < ((size_t)g->max_rows + 1) * (size_t)g->per_rows; i++) entry_clear(&g->tab[i]);
    free(g->tab);
    if (g->ev0) cudaEventDestroy(g->ev0);
    if (g->ev1) cudaEventDestroy(g->ev1);
    if (g->lt) cublasLtDestroy(g->lt);
    free(g);
}

/* The entry for the shape, or a free slot of row n when want_free; NULL. */
static LtEntry *find(GemmLt *g, int n, int in, int out, float beta, bool want_free)
{
    if (n < 1 || n > g->max_rows) return NULL;
    LtEntry *row = g->tab + (size_t)n * g->per_rows;
    for (int i = 0; i < g->per_rows; i++)
        if (row[i].used && row[i].in == in && row[i].out == out && row[i].beta == beta) return &row[i];
    if (want_free)
        for (int i = 0; i < g->per_rows; i++)
            if (!row[i].used) return &row[i];
    return NULL;
}

static cublasStatus_t launch(GemmLt *g, const LtEntry *e, const cublasLtMatmulAlgo_t *algo, const uint16_t *X,
                             const uint16_t *W, float *Y)
{
    const float alpha = 1.0f;
    return cublasLtMatmul(g->lt, e->op, &alpha, W, e->a, X, e->b, &e->beta, Y, e->c, Y, e->c, algo, g->ws_d,
                          g->ws_bytes, g->st);
}

SglStatus gemm_lt_tune(GemmLt *g, const uint16_t *X, const uint16_t *W, float *Y, int n, int in, int out,
                       float beta, SglErr *err)
{
    if (!g || find(g, n, in, out, beta, false)) return SGL_OK;
    LtEntry *e = find(g, n, in, out, beta, true);
    if (!e) return SGL_OK; /* out of range or row full: the caller's default path */
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res[LT_CANDIDATES];
    int n_res = 0;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    e->in = in;
    e->out = out;
    e->beta = beta;
    e->used = true;
    if (cublasLtMatmulDescCreate(&e->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) ||
        cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) ||
        cublasLtMatrixLayoutCreate(&e->a, CUDA_R_16BF, (uint64_t)in, (uint64_t)out, in) ||
        cublasLtMatrixLayoutCreate(&e->b, CUDA_R_16BF, (uint64_t)in, (uint64_t)n, in) ||
        cublasLtMatrixLayoutCreate(&e->c, CUDA_R_32F, (uint64_t)out, (uint64_t)n, out) ||
        cublasLtMatmulPreferenceCreate(&pref) ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &g->ws_bytes,
                                             sizeof g->ws_bytes) ||
        cublasLtMatmulAlgoGetHeuristic(g->lt, e->op, e->a, e->b, e->c, e->c, pref, LT_CANDIDATES, res, &n_res) ||
        n_res < 1) {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        entry_clear(e);
        e->used = true; /* tuned: nothing usable, the default path stays */
        e->in = in;
        e->out = out;
        e->beta = beta;
        return SGL_OK;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    float best = -1.0f;
    int best_i = -1;
    for (int i = 0; i < n_res; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS || launch(g, e, &res[i].algo, X, W, Y) != CUBLAS_STATUS_SUCCESS)
            continue; /* warm-up; an algorithm that will not launch is skipped */
        bool ok = cudaEventRecord(g->ev0, g->st) == cudaSuccess;
        for (int k = 0; ok && k < LT_REPS; k++) ok = launch(g, e, &res[i].algo, X, W, Y) == CUBLAS_STATUS_SUCCESS;
        float ms = 0.0f;
        if (!ok || cudaEventRecord(g->ev1, g->st) != cudaSuccess || cudaEventSynchronize(g->ev1) != cudaSuccess ||
            cudaEventElapsedTime(&ms, g->ev0, g->ev1) != cudaSuccess)
            continue;
        if (best < 0.0f || ms < best) {
            best = ms;
            best_i = i;
        }
    }
    cudaError_t ce = cudaGetLastError();
    if (ce != cudaSuccess)
        return sgl_err(err, SGL_E_DEVICE, "gemm_lt: tuning %dx%dx%d: %s", n, in, out, cudaGetErrorString(ce));
    if (best_i >= 0) {
        e->algo = res[best_i].algo;
        e->ok = true;
    }
    return SGL_OK;
}

bool gemm_lt_run(GemmLt *g, const uint16_t *X, const uint16_t *W, float *Y, int n, int in, int out, float beta,
                 int *bad)
{
    *bad = 0;
    LtEntry *e = g ? find(g, n, in, out, beta, false) : NULL;
    if (!e || !e->ok) return false;
    cublasStatus_t s = launch(g, e, &e->algo, X, W, Y);
    if (s != CUBLAS_STATUS_SUCCESS) {
        *bad = (int)s;
        return false;
    }
    return true;
}
