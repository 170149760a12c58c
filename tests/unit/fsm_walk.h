/* fsm_walk.h -- shared test helpers for the constraint tests: a seeded RNG
 * and random walks through a DFA that end in an accepting state (so every
 * generated string is accepted by construction, and every prefix is live).
 * Header-only (static functions) to keep each test one file.
 */
#ifndef SGL_TESTS_FSM_WALK_H
#define SGL_TESTS_FSM_WALK_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/dfa.h"

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint32_t rng_below(uint64_t *s, uint32_t n)
{
    return n ? (uint32_t)(rng_next(s) % n) : 0;
}

/* dist[s] = fewest bytes from s to an accepting state (INT32_MAX: none).
 * Caller frees. Plain Bellman-Ford style relaxation: small DFAs in tests. */
static inline int32_t *dfa_dist_to_accept(const SglDfa *d)
{
    int32_t n = d->n_states, k = d->n_classes;
    int32_t *dist = malloc((size_t)n * sizeof *dist);
    if (!dist)
        return NULL;
    for (int32_t s = 0; s < n; s++)
        dist[s] = d->accept[s] ? 0 : INT32_MAX;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int32_t s = 0; s < n; s++)
            for (int32_t c = 0; c < k; c++) {
                int32_t t = d->trans[(size_t)s * k + c];
                if (t >= 0 && dist[t] != INT32_MAX && dist[t] + 1 < dist[s]) {
                    dist[s] = dist[t] + 1;
                    changed = 1;
                }
            }
    }
    return dist;
}

/* Writes a random accepted string into buf (NUL-terminated) and returns its
 * length, or (size_t)-1 when the language is empty or cap is too small.
 * Past soft_len bytes, only steps that get closer to acceptance are taken.
 * Half the steps prefer ASCII bytes so text stays readable. */
static inline size_t dfa_random_accepted(const SglDfa *d, const int32_t *dist, uint64_t *rng,
                                         char *buf, size_t cap, size_t soft_len)
{
    int32_t s = d->start;
    size_t len = 0;
    if (dist[s] == INT32_MAX)
        return (size_t)-1;
    for (;;) {
        if (d->accept[s] && (len >= soft_len || rng_below(rng, 5) == 0))
            break;
        int cand[256], nc = 0, ascii[128], na = 0;
        for (int b = 0; b < 256; b++) {
            int32_t t = sgl_dfa_step(d, s, (uint8_t)b);
            if (t < 0 || dist[t] == INT32_MAX)
                continue;
            if (len >= soft_len && dist[t] >= dist[s])
                continue;
            cand[nc++] = b;
            if (b < 128)
                ascii[na++] = b;
        }
        if (nc == 0)
            break; /* accepting with no way on */
        int b = (na && rng_below(rng, 2)) ? ascii[rng_below(rng, (uint32_t)na)]
                                          : cand[rng_below(rng, (uint32_t)nc)];
        if (len + 1 >= cap)
            return (size_t)-1;
        buf[len++] = (char)b;
        s = sgl_dfa_step(d, s, (uint8_t)b);
    }
    buf[len] = '\0';
    return d->accept[s] ? len : (size_t)-1;
}

#endif
