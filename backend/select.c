/* select.c -- choice scoring for `select` (see select.h). */
#include "backend/select.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"

static double mean(const float *v, int32_t n)
{
    double s = 0;
    for (int32_t i = 0; i < n; i++)
        s += v[i];
    return n ? s / n : -INFINITY;
}

int32_t select_score(IrSelectMethod m, const SelTokens *c, int32_t n, double *scores)
{
    int32_t best = 0;
    if (n <= 0)
        return -1;
    for (int32_t i = 0; i < n; i++) {
        if (c[i].n == 0) {
            scores[i] = -INFINITY;
        } else if (m == IR_SEL_UNCONDITIONAL_LIKELIHOOD_NORMALIZED) {
            double s = 0;
            for (int32_t k = 0; k < c[i].n; k++)
                s += (double)c[i].lp[k] - (k == 0 || isnan(c[i].uncond[k]) ? 0.0 : c[i].uncond[k]);
            scores[i] = s / c[i].n;
        } else {
            scores[i] = mean(c[i].lp, c[i].n);
        }
        if (scores[i] > scores[best])
            best = i;
    }
    if (m != IR_SEL_GREEDY_TOKEN)
        return best;
    /* Greedy: column by column over the remaining choices, shorter choices
     * padded with their mean logprob (SGLang's _build_logprob_matrix). */
    int32_t max_n = 0;
    for (int32_t i = 0; i < n; i++)
        max_n = c[i].n > max_n ? c[i].n : max_n;
    bool *alive = calloc((size_t)n, sizeof *alive);
    if (!alive)
        return best;
    int32_t left = 0;
    for (int32_t i = 0; i < n; i++)
        left += alive[i] = c[i].n > 0;
    for (int32_t j = 0; j < max_n && left > 1; j++) {
        double top = -INFINITY;
        for (int32_t i = 0; i < n; i++)
            if (alive[i]) {
                double v = j < c[i].n ? (double)c[i].lp[j] : scores[i];
                top = v > top ? v : top;
            }
        left = 0;
        for (int32_t i = 0; i < n; i++)
            if (alive[i]) {
                double v = j < c[i].n ? (double)c[i].lp[j] : scores[i];
                left += alive[i] = v == top;
            }
    }
    int32_t pick = best;
    for (int32_t i = 0; i < n; i++)
        if (alive[i]) {
            pick = i;
            break;
        }
    free(alive);
    return pick;
}

int32_t select_heal_boundary(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
    int32_t k = 0;
    while (k < na && k < nb && a[k] == b[k])
        k++;
    return k;
}

static void prefill_only(SglRequest *r, const int32_t *ids, int32_t n, int32_t lp_start)
{
    memset(r, 0, sizeof *r);
    r->input_ids = ids;
    r->n_input = n;
    sgl_sampling_params_default(&r->params);
    r->params.max_new_tokens = 0;
    r->params.temperature = 0;
    r->params.logprob_start_len = lp_start;
}

bool select_run(SglEngine *e, struct SglRun *run, const char *prompt, size_t prompt_len,
                const char *const *choices, const size_t *lens, int32_t n, IrSelectMethod m,
                SelectResult *out, char *msg, size_t cap)
{
    if (n <= 0 || n > 1 << 20) {
        snprintf(msg, cap, "select: %d choices (must be 1 to %d)", (int)n, 1 << 20);
        return false;
    }
    bool ok = false, uncond = m == IR_SEL_UNCONDITIONAL_LIKELIHOOD_NORMALIZED;
    int32_t *pids = NULL, np = 0;
    int32_t **fids = calloc((size_t)n, sizeof *fids), *nf = calloc((size_t)n, sizeof *nf);
    int32_t *start = calloc((size_t)n, sizeof *start);
    SglRequest *reqs = calloc((size_t)n, sizeof *reqs);
    SglGenResult *res = calloc((size_t)n, sizeof *res), *ures = calloc((size_t)n, sizeof *ures);
    SelTokens *tk = calloc((size_t)n, sizeof *tk);
    float **ul = calloc((size_t)n, sizeof *ul);
    double *scores = calloc((size_t)n, sizeof *scores);
    char *full = NULL;
    SglGenResult pres = {0};
    memset(out, 0, sizeof *out);
    if (!fids || !nf || !start || !reqs || !res || !ures || !tk || !ul || !scores) {
        snprintf(msg, cap, "out of memory");
        goto out;
    }
    if (sgl_engine_encode(e, prompt, prompt_len, true, &pids, &np) != SGL_OK) {
        snprintf(msg, cap, "select: cannot tokenize the prompt");
        goto out;
    }
    /* 1. the shared prefix, prefilled once */
    SglRequest pr;
    prefill_only(&pr, pids, np, -1);
    if (!ops_generate(e, run, &pr, 1, &pres, NULL, msg, cap))
        goto out;
    out->prompt_tokens += np;
    out->cached_tokens += pres.n_samples ? pres.samples[0].cached_tokens : 0;
    out->requests++;
    /* 2. every choice at once, with prompt logprobs from the healed boundary */
    for (int32_t i = 0; i < n; i++) {
        free(full);
        full = malloc(prompt_len + lens[i] + 1);
        if (!full) {
            snprintf(msg, cap, "out of memory");
            goto out;
        }
        memcpy(full, prompt, prompt_len);
        memcpy(full + prompt_len, choices[i], lens[i]);
        if (sgl_engine_encode(e, full, prompt_len + lens[i], true, &fids[i], &nf[i]) != SGL_OK) {
            snprintf(msg, cap, "select: cannot tokenize choice %d", (int)i);
            goto out;
        }
        start[i] = select_heal_boundary(pids, np, fids[i], nf[i]);
        if (start[i] == 0 && nf[i] > 0)
            start[i] = 1;   /* position 0 has no logprob */
        prefill_only(&reqs[i], fids[i], nf[i], start[i]);
    }
    if (!ops_generate(e, run, reqs, n, res, NULL, msg, cap))
        goto out;
    for (int32_t i = 0; i < n; i++) {
        if (!res[i].prompt_logprobs && start[i] < nf[i]) {
            snprintf(msg, cap, "select: the engine returned no prompt logprobs");
            goto out;
        }
        tk[i].lp = res[i].prompt_logprobs ? res[i].prompt_logprobs + start[i] : NULL;
        tk[i].n = nf[i] - start[i];
        out->prompt_tokens += nf[i];
        out->cached_tokens += res[i].n_samples ? res[i].samples[0].cached_tokens : 0;
        out->requests++;
    }
    /* 3. unconditional: the choice's tokens alone */
    if (uncond) {
        for (int32_t i = 0; i < n; i++) {
            prefill_only(&reqs[i], fids[i] + start[i], tk[i].n > 0 ? tk[i].n : 0, 0);
            if (tk[i].n == 0) {
                reqs[i].input_ids = fids[i];
                reqs[i].n_input = nf[i] > 0 ? 1 : 0;
            }
        }
        if (!ops_generate(e, run, reqs, n, ures, NULL, msg, cap))
            goto out;
        for (int32_t i = 0; i < n; i++) {
            tk[i].uncond = ures[i].prompt_logprobs;
            if (!tk[i].uncond && tk[i].n > 0) {
                if (!(ul[i] = calloc((size_t)tk[i].n, sizeof(float)))) {
                    snprintf(msg, cap, "out of memory");
                    goto out;
                }
                tk[i].uncond = ul[i];
            }
            out->prompt_tokens += reqs[i].n_input;
            out->requests++;
        }
    }
    out->best = select_score(m, tk, n, scores);
    out->score = scores[out->best];
    ok = true;
out:
    if (res)
        for (int32_t i = 0; i < n; i++) {
            sgl_gen_result_free(&res[i]);
            sgl_gen_result_free(&ures[i]);
        }
    if (fids)
        for (int32_t i = 0; i < n; i++)
            free(fids[i]);
    if (ul)
        for (int32_t i = 0; i < n; i++)
            free(ul[i]);
    sgl_gen_result_free(&pres);
    free(full);
    free(pids);
    free(fids);
    free(nf);
    free(start);
    free(reqs);
    free(res);
    free(ures);
    free(tk);
    free(ul);
    free(scores);
    return ok;
}
