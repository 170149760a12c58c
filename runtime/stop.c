/* stop.c -- stop strings matched incrementally on decoded output text.
 *
 * Each stop string has a KMP automaton whose state is the length of the
 * longest prefix of the stop that ends the text so far. A push feeds only the
 * new bytes through every automaton, so no byte is scanned twice. A stop is
 * found when a state reaches its length; the first completion in the byte
 * stream wins (on a tie, the longer stop, which starts earlier), so the result
 * does not depend on how the text was split into pushes. The text that may
 * still become a stop is exactly the longest state: it is held back, the rest
 * is safe to stream. Invariant: every state <= len - emitted, so the held
 * tail never reaches into text already released.
 */
#include "runtime/sampler.h"

#include <stdlib.h>
#include <string.h>

#define INIT_CAP 256

SglStatus sgl_stop_init(SglStopMatcher *m, const char *const *stops, int32_t n)
{
    memset(m, 0, sizeof *m);
    if (n < 0 || n > SGL_MAX_STOP || (n > 0 && !stops)) return SGL_E_INVAL;
    for (int32_t i = 0; i < n; i++) {
        size_t len = stops[i] ? strnlen(stops[i], SGL_MAX_STOP_LEN + 1) : 0;
        if (len == 0 || len > SGL_MAX_STOP_LEN) {
            sgl_stop_deinit(m);
            return SGL_E_INVAL;
        }
        m->stops[i] = malloc(len + 1);
        m->fail[i] = malloc(len * sizeof *m->fail[i]);
        m->n_stops = i + 1;
        if (!m->stops[i] || !m->fail[i]) goto nomem;
        memcpy(m->stops[i], stops[i], len + 1);
        m->lens[i] = (int32_t)len;
        if (len > m->max_len) m->max_len = len;
        /* fail[j]: length of the longest proper prefix of s[0..j] that is also its suffix */
        const char *s = m->stops[i];
        int32_t *f = m->fail[i], k = 0;
        f[0] = 0;
        for (int32_t j = 1; j < (int32_t)len; j++) {
            while (k > 0 && s[j] != s[k]) k = f[k - 1];
            if (s[j] == s[k]) k++;
            f[j] = k;
        }
    }
    m->matched_stop = -1;
    m->buf = malloc(INIT_CAP);
    if (!m->buf) goto nomem;
    m->cap = INIT_CAP;
    m->buf[0] = '\0';
    return SGL_OK;
nomem:
    sgl_stop_deinit(m);
    return SGL_E_NOMEM;
}

void sgl_stop_deinit(SglStopMatcher *m)
{
    for (int32_t i = 0; i < m->n_stops; i++) {
        free(m->stops[i]);
        free(m->fail[i]);
    }
    free(m->buf);
    memset(m, 0, sizeof *m);
}

SglStatus sgl_stop_push(SglStopMatcher *m, const char *text, size_t len, size_t *safe_len)
{
    *safe_len = 0;
    if (m->matched || len == 0) return SGL_OK;
    if (len > SIZE_MAX - m->len - 1) return SGL_E_NOMEM;
    size_t need = m->len + len + 1;
    if (need > m->cap) {
        size_t cap = m->cap ? m->cap : INIT_CAP;
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *nb = realloc(m->buf, cap);
        if (!nb) return SGL_E_NOMEM;
        m->buf = nb;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, text, len);
    size_t old = m->len;
    m->len += len;
    m->buf[m->len] = '\0';
    for (size_t p = old; p < m->len; p++) {
        char c = m->buf[p];
        int32_t hit = -1;
        for (int32_t i = 0; i < m->n_stops; i++) {
            const char *s = m->stops[i];
            int32_t q = m->state[i];
            if (q == m->lens[i]) q = m->fail[i][q - 1];
            while (q > 0 && s[q] != c) q = m->fail[i][q - 1];
            if (s[q] == c) q++;
            m->state[i] = q;
            if (q == m->lens[i] && (hit < 0 || m->lens[i] > m->lens[hit])) hit = i;
        }
        if (hit >= 0) {
            size_t cut = p + 1 - (size_t)m->lens[hit];
            m->matched = true;
            m->matched_stop = hit;
            m->len = cut;
            m->buf[cut] = '\0';
            *safe_len = cut - m->emitted;
            m->emitted = cut;
            return SGL_OK;
        }
    }
    int32_t hold = 0;
    for (int32_t i = 0; i < m->n_stops; i++)
        if (m->state[i] > hold) hold = m->state[i];
    size_t safe_end = m->len - (size_t)hold;
    *safe_len = safe_end - m->emitted;
    m->emitted = safe_end;
    return SGL_OK;
}

size_t sgl_stop_finish(SglStopMatcher *m)
{
    size_t n = m->len - m->emitted;
    m->emitted = m->len;
    for (int32_t i = 0; i < m->n_stops; i++) m->state[i] = 0;
    return n;
}
