/* test_norm_gemv.c -- sgl_k_norm_gemv (RMSNorm + few-row product, plain or
 * with the SwiGLU epilogue) vs sgl_ref_norm_gemv (the unfused references
 * composed), over 1-2 rows, with and without a row map, widths that are and
 * are not multiples of the 256-element warp step, up to the 48 KB staging
 * limit; canaries around every output; bad arguments rejected. Then a
 * dependent chain (sgl_k_gemv writes the norm's input, norm_gemv reads it)
 * launched with PDL, plain and inside a captured CUDA graph, 20 times each,
 * the intermediate reset to canary before each run: the norm_gemv result is
 * compared with the reference applied to the intermediate the GPU wrote, so
 * a missing wait (a read of the canary or a half-written row) shows.
 * Before the GPU part (which skips with 77 without a device) the reference is
 * checked on the CPU against a direct double-precision formula.
 * Tolerances: the kernel's inverse norm can differ from the reference's in
 * the last fp32 bit (another summation order), which moves a staged bf16
 * input by one ulp (2^-8 relative) with probability ~2^-16 per element: with
 * |W| <= 1 one such flip moves y by <= 0.01, hence atol 1e-2 on y (fp32 sums
 * are otherwise ~1e-5 off); the silu output is bf16 itself: rtol 1e-2.
 * --bench: the fused kernel vs rmsnorm + gemv (+ silu_mul) on Llama-3-8B
 * decode shapes. */
#include "tests/kernels/ktest.h"

/* Direct formula in double: the CPU check of the reference. */
static double direct(const float *x, const int32_t *rows, const uint16_t *nw, float eps, int in,
                     const uint16_t *W, int r, int o)
{
    const float *xr = x + (int64_t)(rows ? rows[r] : r) * in;
    double ss = 0.0, s = 0.0;
    for (int k = 0; k < in; k++) ss += (double)xr[k] * xr[k];
    float inv = (float)(1.0 / sqrt(ss / in + eps));
    for (int k = 0; k < in; k++)
        s += (double)sgl_bf16_to_f32(sgl_f32_to_bf16(xr[k] * inv * sgl_bf16_to_f32(nw[k]))) *
             sgl_bf16_to_f32(W[(int64_t)o * in + k]);
    return s;
}

static int cpu_check(void)
{
    int bad = 0, n = 2, in = 72, out = 10, x_rows = 4;
    int32_t rows[2] = {3, 1};
    float *x = kt_xmalloc((size_t)x_rows * in * 4), y[2 * 10];
    uint16_t *nw = kt_xmalloc((size_t)in * 2), *W = kt_xmalloc((size_t)out * in * 2), act[2 * 5];
    kt_fill_f32(x, (size_t)x_rows * in, -2, 2);
    kt_fill_bf16(nw, (size_t)in, 0.5f, 1.5f);
    kt_fill_bf16(W, (size_t)out * in, -1, 1);
    sgl_ref_norm_gemv(x, rows, nw, 1e-5f, n, in, W, out, y, NULL);
    sgl_ref_norm_gemv(x, rows, nw, 1e-5f, n, in, W, out, NULL, act);
    for (int r = 0; r < n; r++)
        for (int o = 0; o < out; o++) {
            double d = direct(x, rows, nw, 1e-5f, in, W, r, o);
            if (fabs(d - y[r * out + o]) > 1e-4) bad++;
            if (o < out / 2) {
                double g = d, u = direct(x, rows, nw, 1e-5f, in, W, r, o + out / 2);
                double a = g / (1.0 + exp(-g)) * u, got = sgl_bf16_to_f32(act[r * (out / 2) + o]);
                if (fabs(a - got) > 1e-2 * fabs(a) + 1e-4) bad++;
            }
        }
    free(x); free(nw); free(W);
    return bad;
}

typedef struct {
    const float *x; const int32_t *rows; const uint16_t *nw; int n, in; const uint16_t *W; int out;
    float *y; uint16_t *act; uint16_t *xn;
} Ctx;
static void run_fused(void *p)
{
    Ctx *c = p;
    sgl_k_norm_gemv(c->x, c->rows, c->nw, 1e-5f, c->n, c->in, c->W, c->out, c->y, c->act, 0);
}
static void run_unfused(void *p)
{
    Ctx *c = p;
    sgl_k_rmsnorm((float *)c->x, NULL, c->nw, c->in, 1e-5f, c->rows, c->n, c->xn, 0);
    sgl_k_gemv(c->xn, c->W, c->y, c->n, c->in, c->out, 0.0f, 0);
    if (c->act) sgl_k_silu_mul(c->y, c->n, c->out / 2, c->act, 0);
}

/* gemv writes y1 (n, in) from x0 (n, in0) and W1 (in, in0); norm_gemv reads it. */
static void chain_check(cudaStream_t st, int graph)
{
    int n = 2, in0 = 4096, in = 1024, out = 512;
    uint16_t *x0 = kt_xmalloc((size_t)n * in0 * 2), *W1 = kt_xmalloc((size_t)in * in0 * 2);
    uint16_t *nw = kt_xmalloc((size_t)in * 2), *W = kt_xmalloc((size_t)out * in * 2);
    float *y1 = kt_xmalloc((size_t)n * in * 4), *ref = kt_xmalloc((size_t)n * out * 4);
    float *y1_got = kt_xmalloc((size_t)n * in * 4);
    float *got = kt_xmalloc((size_t)n * out * 4);
    kt_fill_bf16(x0, (size_t)n * in0, -1, 1);
    kt_fill_bf16(W1, (size_t)in * in0, -1, 1);
    kt_fill_bf16(nw, (size_t)in, 0.5f, 1.5f);
    kt_fill_bf16(W, (size_t)out * in, -1, 1);
    sgl_ref_gemv(x0, W1, y1, n, in0, in, 0.0f);
    uint16_t *x0_d = kt_dup(x0, (size_t)n * in0 * 2), *W1_d = kt_dup(W1, (size_t)in * in0 * 2);
    uint16_t *nw_d = kt_dup(nw, (size_t)in * 2), *W_d = kt_dup(W, (size_t)out * in * 2);
    float *y1_d = kt_alloc((size_t)n * in * 4), *y_d = kt_alloc((size_t)n * out * 4);
    cudaGraphExec_t ge = NULL;
    if (graph) {
        cudaGraph_t g;
        KT_CUDA(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        KT_CHECK(sgl_k_gemv(x0_d, W1_d, y1_d, n, in0, in, 0.0f, st) == 0, "gemv capture");
        KT_CHECK(sgl_k_norm_gemv(y1_d, NULL, nw_d, 1e-5f, n, in, W_d, out, y_d, NULL, st) == 0, "capture");
        KT_CUDA(cudaStreamEndCapture(st, &g));
        KT_CUDA(cudaGraphInstantiate(&ge, g, 0));
        KT_CUDA(cudaGraphDestroy(g));
    }
    int bad = 0;
    for (int it = 0; it < 20; it++) {
        KT_CUDA(cudaMemsetAsync(y1_d, KT_CANARY, (size_t)n * in * 4, st));
        KT_CUDA(cudaMemsetAsync(y_d, KT_CANARY, (size_t)n * out * 4, st));
        if (graph) {
            KT_CUDA(cudaGraphLaunch(ge, st));
        } else {
            KT_CHECK(sgl_k_gemv(x0_d, W1_d, y1_d, n, in0, in, 0.0f, st) == 0, "gemv");
            KT_CHECK(sgl_k_norm_gemv(y1_d, NULL, nw_d, 1e-5f, n, in, W_d, out, y_d, NULL, st) == 0, "norm_gemv");
        }
        KT_CUDA(cudaStreamSynchronize(st));
        kt_down(got, y_d, (size_t)n * out * 4);
        kt_down(y1_got, y1_d, (size_t)n * in * 4);
        sgl_ref_norm_gemv(y1_got, NULL, nw, 1e-5f, n, in, W, out, ref, NULL);
        bad += kt_cmp("chain y1", y1_got, y1, (size_t)n * in, 2e-3f, 1e-4f) != 0; /* gemv's tolerance */
        bad += kt_cmp("chain y", got, ref, (size_t)n * out, 1e-2f, 1e-3f) != 0;
    }
    KT_CHECK(bad == 0, "PDL chain gemv -> norm_gemv (%s): %d wrong comparisons in 20 runs", graph ? "graph" : "stream", bad);
    if (ge) KT_CUDA(cudaGraphExecDestroy(ge));
    kt_free(x0_d); kt_free(W1_d); kt_free(nw_d); kt_free(W_d); kt_free(y1_d); kt_free(y_d);
    free(x0); free(W1); free(nw); free(W); free(y1); free(y1_got); free(ref); free(got);
}

int main(int argc, char **argv)
{
    int cpu_bad = cpu_check();
    printf("test_norm_gemv: reference vs direct formula on the CPU: %s\n", cpu_bad ? "FAIL" : "ok");
    if (cpu_bad) return 1;
    kt_init(argc, argv, "test_norm_gemv");
    sgl_k_set_pdl(1);
    /* n, in, out, silu, row map */
    static const int shapes[][5] = {{1, 8, 1, 0, 0},      {2, 24, 17, 0, 1},   {1, 264, 10, 1, 0},
                                    {2, 1032, 34, 1, 1},  {1, 4096, 6144, 0, 0}, {2, 4096, 600, 1, 1},
                                    {1, 14336, 40, 0, 1}, {2, 8192, 64, 1, 0}, {2, 776, 4097, 0, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2], silu = shapes[s][3];
        int x_rows = n + 3;
        int32_t rows[2] = {n + 2, 0};
        const int32_t *rp = shapes[s][4] ? rows : NULL;
        size_t xs = (size_t)x_rows * in, ws = (size_t)out * in, ys = (size_t)n * out, as = (size_t)n * (out / 2);
        float *x = kt_xmalloc(xs * 4), *ref = kt_xmalloc(ys * 4), *got = kt_xmalloc(ys * 4);
        uint16_t *nw = kt_xmalloc((size_t)in * 2), *W = kt_xmalloc(ws * 2);
        uint16_t *aref = kt_xmalloc(as * 2 + 2), *agot = kt_xmalloc(as * 2 + 2);
        float *af = kt_xmalloc(as * 4 + 4), *aref_f = kt_xmalloc(as * 4 + 4);
        kt_fill_f32(x, xs, -2, 2);
        kt_fill_bf16(nw, (size_t)in, 0.5f, 1.5f);
        kt_fill_bf16(W, ws, -1, 1);
        float *x_d = kt_dup(x, xs * 4);
        uint16_t *nw_d = kt_dup(nw, (size_t)in * 2), *W_d = kt_dup(W, ws * 2);
        int32_t *r_d = rp ? kt_dup(rows, sizeof rows) : NULL;
        if (!silu) {
            sgl_ref_norm_gemv(x, rp, nw, 1e-5f, n, in, W, out, ref, NULL);
            float *y_d = kt_alloc(ys * 4);
            KT_CHECK(sgl_k_norm_gemv(x_d, r_d, nw_d, 1e-5f, n, in, W_d, out, y_d, NULL, 0) == 0, "launch");
            KT_CUDA(cudaDeviceSynchronize());
            kt_down(got, y_d, ys * 4);
            KT_CHECK(kt_cmp("y", got, ref, ys, 1e-2f, 1e-3f) == 0, "norm_gemv n=%d in=%d out=%d rows=%d", n, in,
                     out, rp != NULL);
            KT_CHECK(kt_guard_ok(y_d, ys * 4), "guard n=%d in=%d out=%d", n, in, out);
            kt_free(y_d);
        } else {
            sgl_ref_norm_gemv(x, rp, nw, 1e-5f, n, in, W, out, NULL, aref);
            uint16_t *a_d = kt_alloc(as * 2);
            KT_CHECK(sgl_k_norm_gemv(x_d, r_d, nw_d, 1e-5f, n, in, W_d, out, NULL, a_d, 0) == 0, "launch");
            KT_CUDA(cudaDeviceSynchronize());
            kt_down(agot, a_d, as * 2);
            kt_bf16_to_f32(agot, af, as);
            kt_bf16_to_f32(aref, aref_f, as);
            KT_CHECK(kt_cmp("act", af, aref_f, as, 1e-2f, 1e-2f) == 0, "norm_gemv silu n=%d in=%d out=%d rows=%d",
                     n, in, out, rp != NULL);
            KT_CHECK(kt_guard_ok(a_d, as * 2), "guard silu n=%d in=%d out=%d", n, in, out);
            kt_free(a_d);
        }
        /* the input rows are only read */
        float *xback = kt_xmalloc(xs * 4);
        kt_down(xback, x_d, xs * 4);
        KT_CHECK(!memcmp(xback, x, xs * 4), "x unchanged n=%d in=%d", n, in);
        free(xback);
        kt_free(x_d); kt_free(nw_d); kt_free(W_d); kt_free(r_d);
        free(x); free(ref); free(got); free(nw); free(W); free(aref); free(agot); free(af); free(aref_f);
    }
    KT_CHECK(sgl_k_norm_gemv(NULL, NULL, NULL, 1e-5f, 3, 8, NULL, 8, NULL, NULL, 0) == SGL_K_EINVAL, "n > 2 rejected");
    KT_CHECK(sgl_k_norm_gemv(NULL, NULL, NULL, 1e-5f, 1, 12, NULL, 8, NULL, NULL, 0) == SGL_K_EINVAL,
             "in not a multiple of 8 rejected");
    KT_CHECK(sgl_k_norm_gemv(NULL, NULL, NULL, 1e-5f, 2, 8200, NULL, 8, NULL, NULL, 0) == SGL_K_EINVAL,
             "staging over 32 KB rejected");
    uint16_t dummy;
    KT_CHECK(sgl_k_norm_gemv(NULL, NULL, NULL, 1e-5f, 1, 8, NULL, 7, NULL, &dummy, 0) == SGL_K_EINVAL,
             "odd out with silu rejected");
    cudaStream_t st;
    KT_CUDA(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    chain_check(st, 0);
    chain_check(st, 1);
    KT_CUDA(cudaStreamDestroy(st));
    if (kt_bench_mode) { /* Llama-3-8B decode shapes: qkv, gate|up (silu), lm_head */
        static const int bench[][3] = {{4096, 6144, 0}, {4096, 28672, 1}, {4096, 128256, 0}};
        for (int n = 1; n <= 2; n++)
            for (size_t b = 0; b < sizeof bench / sizeof bench[0]; b++) {
                int in = bench[b][0], out = bench[b][1], silu = bench[b][2];
                size_t ws = (size_t)out * in;
                uint16_t *W = kt_xmalloc(ws * 2), *nw = kt_xmalloc((size_t)in * 2);
                float *x = kt_xmalloc((size_t)n * in * 4);
                kt_fill_bf16(W, ws, -1, 1);
                kt_fill_bf16(nw, (size_t)in, 0.5f, 1.5f);
                kt_fill_f32(x, (size_t)n * in, -2, 2);
                uint16_t *W_d = kt_dup(W, ws * 2), *nw_d = kt_dup(nw, (size_t)in * 2);
                float *x_d = kt_dup(x, (size_t)n * in * 4), *y_d = kt_alloc((size_t)n * out * 4);
                uint16_t *xn_d = kt_alloc((size_t)n * in * 2), *a_d = silu ? kt_alloc((size_t)n * out) : NULL;
                Ctx c = {x_d, NULL, nw_d, n, in, W_d, out, y_d, a_d, xn_d};
                double us = kt_bench(run_fused, &c, 20), us_u = kt_bench(run_unfused, &c, 20);
                printf("bench norm_gemv%s n=%d in=%d out=%d: %.2f us, %.0f GB/s; rmsnorm+gemv%s %.2f us, %.0f GB/s\n",
                       silu ? "(silu)" : "", n, in, out, us, ws * 2.0 / us / 1e3, silu ? "+silu_mul" : "", us_u,
                       ws * 2.0 / us_u / 1e3);
                kt_free(W_d); kt_free(nw_d); kt_free(x_d); kt_free(y_d); kt_free(xn_d); kt_free(a_d);
                free(W); free(nw); free(x);
            }
    }
    return kt_summary("test_norm_gemv");
}
