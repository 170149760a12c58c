/* test_repl.c -- `sglc repl` driven through a pseudo-terminal (forkpty), as
 * a person would: libedit is active (stdin and stdout are a tty), prompts
 * are waited for, lines are typed. stories260K ($SGL_SHARED_DIR; skip 77
 * without it), temperature 0. The session: text, a gen, a multi-line fork
 * typed line by line (continuation prompts), :stats with cached tokens > 0
 * on a later turn, a syntax error that changes nothing (state, variables,
 * and the next turn still hits the cache), :vars, :state, :ir, :save,
 * :reset, :load, :quit.
 */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static char model[4096];

typedef struct {
    int fd;
    pid_t pid;
    char buf[1 << 18];     /* everything read since the last expect */
    size_t len;
} Pty;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads until `want` appears in what was read since the previous expect;
 * returns that text (NUL-terminated, in h->buf) or fails after timeout_s. */
static const char *expect(Pty *h, const char *want, double timeout_s)
{
    double end = now_s() + timeout_s;
    for (;;) {
        h->buf[h->len] = '\0';
        if (strstr(h->buf, want))
            return h->buf;
        double left = end - now_s();
        if (left <= 0 || h->len + 1 >= sizeof h->buf)
            fail_msg("timed out waiting for \"%s\"; got:\n%s", want, h->buf);
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t n = read(h->fd, h->buf + h->len, sizeof h->buf - 1 - h->len);
        if (n <= 0)
            fail_msg("the repl ended while waiting for \"%s\"; got:\n%s", want, h->buf);
        h->len += (size_t)n;
    }
}

/* Types a line; the previous output is dropped. */
static void send_line(Pty *h, const char *line)
{
    h->len = 0;
    h->buf[0] = '\0';
    size_t n = strlen(line);
    assert_int_equal(write(h->fd, line, n), (ssize_t)n);
    assert_int_equal(write(h->fd, "\r", 1), 1);
}

/* Types a line and waits for the next main prompt; the output. */
static const char *turn(Pty *h, const char *line)
{
    send_line(h, line);
    return expect(h, "sgl> ", 120);
}

/* The number after `key` in s (-1 if absent). */
static long long number_after(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static void test_session(void **st)
{
    (void)st;
    const char *sglc = getenv("SGLC");
    assert_non_null(sglc);
    char dir[] = "/tmp/sgl-test-repl-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char hist[256], saved[256];
    snprintf(hist, sizeof hist, "%s/history", dir);
    snprintf(saved, sizeof saved, "%s/session.sgl", dir);
    Pty *h = calloc(1, sizeof *h);
    assert_non_null(h);
    struct winsize ws = {.ws_row = 50, .ws_col = 200};
    h->pid = forkpty(&h->fd, NULL, NULL, &ws);
    assert_true(h->pid >= 0);
    if (h->pid == 0) {
        unsetenv("SGL_MODEL");
        setenv("TERM", "dumb", 1);
        execl(sglc, sglc, "repl", "--model", model, "--temperature", "0", "--history", hist,
              (char *)NULL);
        _exit(127);
    }
    const char *o = expect(h, "sgl> ", 120);
    assert_non_null(strstr(o, "sglc repl -- model"));

    o = turn(h, "\"Once upon a time\"");
    assert_non_null(strstr(o, "Once upon a time"));
    o = turn(h, "gen a(max_tokens: 8)");
    assert_true(number_after(o, "cached; ") >= 1);      /* "[prompt P tokens, C cached; G generated" */

    /* a multi-line fork: every line but the last gets the continuation prompt */
    send_line(h, "fork 2 {");
    expect(h, "...> ", 60);
    send_line(h, "    \" and then\"");
    expect(h, "...> ", 60);
    send_line(h, "    gen b(max_tokens: 4)");
    expect(h, "...> ", 60);
    o = turn(h, "} join concat");
    long long prompt = number_after(o, "[prompt "), cached = number_after(o, "tokens, ");
    assert_true(prompt > 0);
    assert_true(cached > 0);      /* the state of the earlier turns was in the cache */
    o = turn(h, ":stats");
    assert_true(number_after(o, "last turn: prompt tokens ") == prompt);
    assert_true(number_after(o, ", cached tokens ") > 0);
    assert_non_null(strstr(o, "engine: cache hit rate "));

    o = turn(h, ":state");
    char *st1 = strdup(strstr(o, "Once upon a time"));
    assert_non_null(st1);
    *strstr(st1, "sgl> ") = '\0';
    assert_non_null(strstr(st1, " and then"));

    /* a syntax error: reported with a caret, nothing changes */
    o = turn(h, "gen c(max_tokens 3)");
    assert_non_null(strstr(o, "input:1:18: error: expected ':' before integer"));
    assert_non_null(strstr(o, "^"));
    assert_non_null(strstr(o, "state and variables are unchanged"));
    o = turn(h, ":state");
    assert_non_null(strstr(o, st1));
    o = turn(h, ":vars");
    assert_non_null(strstr(o, "a: str = \""));
    assert_non_null(strstr(o, "b: list[str] = [\""));
    assert_null(strstr(o, "c: "));
    /* an unfinished string waits; a runtime error changes nothing either */
    send_line(h, "\"\"\"two");
    expect(h, "...> ", 60);
    o = turn(h, "lines\"\"\"");
    o = turn(h, "let bad = b[5]");
    assert_non_null(strstr(o, "runtime error"));
    o = turn(h, ":vars");
    assert_null(strstr(o, "bad: "));
    /* and the next turn still reuses the cache */
    o = turn(h, "gen d(max_tokens: 3)");
    assert_true(number_after(o, "tokens, ") > 0);
    o = turn(h, ":ir");
    assert_non_null(strstr(o, "GEN"));
    send_line(h, "fn shout(s: str) -> str {");
    expect(h, "...> ", 60);
    o = turn(h, "    return upper(s) }");
    assert_non_null(strstr(o, "[declared]"));
    o = turn(h, "let loud = shout(\"hey\")");
    o = turn(h, ":vars");
    assert_non_null(strstr(o, "loud: str = \"HEY\""));

    char cmd[400];
    snprintf(cmd, sizeof cmd, ":save %s", saved);
    o = turn(h, cmd);
    assert_non_null(strstr(o, "saved to"));
    o = turn(h, ":reset");
    o = turn(h, ":vars");
    assert_non_null(strstr(o, "(no variables)"));
    snprintf(cmd, sizeof cmd, ":load %s", saved);
    o = turn(h, cmd);     /* the saved program: declarations and one main */
    assert_non_null(strstr(o, "[declared]"));
    send_line(h, ":quit");
    int status = 0;
    double end = now_s() + 60;
    pid_t w;
    while ((w = waitpid(h->pid, &status, WNOHANG)) == 0 && now_s() < end) {
        char tmp[4096];
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0 && read(h->fd, tmp, sizeof tmp) <= 0)
            continue;
    }
    if (w == 0) {
        kill(h->pid, SIGKILL);
        waitpid(h->pid, &status, 0);
        fail_msg("the repl did not exit on :quit");
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    FILE *f = fopen(saved, "r");
    assert_non_null(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "fn shout(s: str) -> str {"));
    assert_non_null(strstr(text, "fn main() {\n\"Once upon a time\"\ngen a(max_tokens: 8)\nfork 2 {"));
    assert_null(strstr(text, "max_tokens 3"));   /* the failed input is not part of it */
    f = fopen(hist, "r");
    assert_non_null(f);      /* libedit wrote the history */
    fclose(f);
    free(st1);
    close(h->fd);
    free(h);
    unlink(saved);
    unlink(hist);
    rmdir(dir);
}

int main(void)
{
    const char *shared = getenv("SGL_SHARED_DIR");
    snprintf(model, sizeof model, "%s/models/stories260K-hf", shared ? shared : "/nonexistent");
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/model.safetensors", model);
    if (access(probe, R_OK) != 0) {
        printf("skipped: no stories260K model at %s\n", model);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_session)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
