/* cmd_repl.c -- `sglc repl`: interactive prompting (the session is backend/repl.h).
 *
 *   sglc repl [--model DIR] [--temperature T] [--max-tokens N] [--seed S]
 *             [--chat-template NAME] [--no-stream] [--load-format auto|dummy]
 *             [--threads N] [--history FILE]
 *
 * On a terminal, lines are read with libedit (editing, history kept in
 * --history, default ~/.sglc_history); otherwise plain lines from stdin.
 * The prompt is "sgl> ", and "...> " while an input continues. This file
 * supplies the frontend to the session (compile in partial mode, lower,
 * passes). Exit: 0 at end of input or :quit, 1 when the model cannot be
 * opened, 2 usage.
 */
#include <editline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cli/cli.h"
#include "backend/repl.h"
#include "frontend/compile.h"
#include "frontend/lower.h"
#include "ir/pass.h"

static void help(FILE *f)
{
    fprintf(f, "usage: sglc repl [--model DIR] [options]\n\n"
               "Interactive prompting: statements run as they are entered and append to one\n"
               "prompt state; each turn reuses the KV cache of the previous ones. Type :help\n"
               "inside for the commands (:state :vars :ir :stats :reset :load :save :quit).\n\n"
               "  --model DIR             model directory (default: $SGL_MODEL, else the built-in\n"
               "                          random-weight demo model)\n"
               "  --temperature T  --max-tokens N  --seed S   gen defaults / sampling seed\n"
               "  --chat-template NAME    %s (default: from the model)\n"
               "  --no-stream             print a turn's text when it is done\n"
               "  --load-format F         auto or dummy (random weights)\n"
               "  --threads N             CPU threads for the forward pass\n"
               "  --history FILE          libedit history file (default ~/.sglc_history)\n",
            chat_template_names());
}

static SglReplCompileRc repl_compile(void *user, const char *name, const char *src, size_t len,
                                     FILE *diag, IrProgram **out, size_t *err_off)
{
    (void)user;
    SglCompile c;
    sgl_compile_init(&c);
    c.partial = true;
    *out = NULL;
    *err_off = 0;
    SglReplCompileRc rc = SGL_RC_ERROR;
    IrProgram *p = NULL;
    bool ok = sgl_compile_buffer(&c, name, src, len);
    if (c.incomplete && c.diags.n_errors == 0) {
        rc = SGL_RC_INCOMPLETE;
        goto out;
    }
    if (ok && !c.incomplete && (p = sgl_lower(c.program, &c.diags))) {
        IrPassOptions po = {.verify = true, .err = diag};
        if (ir_passes_run(p, &po)) {
            *out = p;
            p = NULL;
            rc = SGL_RC_OK;
            goto out;
        }
    }
    /* the first error's offset in the main source decides "unfinished" */
    *err_off = len;
    for (uint32_t i = 0; i < c.diags.n; i++) {
        const SglDiag *d = &c.diags.items[i];
        if (d->sev == SGL_SEV_ERROR && d->loc.src && c.n_sources && d->loc.src == c.sources[0] &&
            d->loc.off < *err_off)
            *err_off = d->loc.off;
    }
    if (c.diags.n_errors == 0)
        *err_off = 0;   /* a failure without a diagnostic (a pass) is no "unfinished input" */
    sgl_diags_render(&c.diags, diag);
out:
    ir_program_free(p);
    sgl_compile_deinit(&c);
    return rc;
}

/* One line from the terminal (libedit) or stdin; NULL at end of input.
 * The result is malloc'd. */
static char *read_line(bool tty, const char *prompt)
{
    if (tty)
        return readline(prompt);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

int cmd_repl(int argc, char **argv)
{
    if (args_wants_help(argc, argv)) {
        help(stdout);
        return 0;
    }
    SglArgs a;
    const char *model = NULL, *tmpl_name = NULL, *fmt = NULL, *hist = NULL;
    long threads = 0, lv;
    bool no_stream = false;
    SglExecOpts xo;
    sgl_exec_opts_default(&xo);
    args_init(&a, argc, argv);
    while (args_more(&a)) {
        if (args_flag(&a, "--no-stream"))
            no_stream = true;
        else if (args_str(&a, "--model", &model) || args_str(&a, "--chat-template", &tmpl_name) ||
                 args_str(&a, "--load-format", &fmt) || args_str(&a, "--history", &hist))
            ;
        else if (args_double(&a, "--temperature", 0.0, 1e6, &xo.temperature))
            ;
        else if (args_long(&a, "--max-tokens", 0, 1 << 24, &lv))
            xo.max_tokens = (int32_t)lv;
        else if (args_long(&a, "--seed", 0, 0x7fffffffffffffffL, &lv))
            xo.seed = lv;
        else if (args_long(&a, "--threads", 0, 1024, &threads))
            ;
        else
            return args_unknown(&a);
    }
    if (a.bad)
        return 2;
    const ChatTemplate *tmpl = NULL;
    if (tmpl_name && !(tmpl = chat_template_find(tmpl_name)))
        return args_usage_error(&a, "--chat-template: unknown template '%s' (one of %s)", tmpl_name,
                                chat_template_names());
    SglLoadFormat lf = SGL_LOAD_AUTO;
    if (fmt && strcmp(fmt, "dummy") == 0)
        lf = SGL_LOAD_DUMMY;
    else if (fmt && strcmp(fmt, "auto") != 0)
        return args_usage_error(&a, "--load-format must be auto or dummy, got '%s'", fmt);
    int rc = 1;
    char demo_dir[64] = "", hist_path[4200] = "";
    SglEngine *e = NULL;
    SglRepl *r = NULL;
    bool tty = isatty(0) && isatty(1);
    if (!model)
        model = getenv("SGL_MODEL");
    if (!model || !*model) {
        snprintf(demo_dir, sizeof demo_dir, "/tmp/sglc-demo-XXXXXX");
        if (!mkdtemp(demo_dir) || !sgl_demo_model_write(demo_dir)) {
            fprintf(stderr, "sglc repl: cannot write the demo model to %s\n", demo_dir);
            demo_dir[0] = '\0';
            goto out;
        }
        fprintf(stderr, "sglc repl: no --model and no $SGL_MODEL: using the built-in demo model "
                        "(random weights: its text is meaningless)\n");
        model = demo_dir;
        lf = SGL_LOAD_DUMMY;
    }
    SglEngineOpts eo;
    sgl_engine_opts_default(&eo);
    eo.model_dir = model;
    eo.load_format = lf;
    eo.n_threads = (int)threads;
    if (xo.seed >= 0)
        eo.sched.seed = (uint64_t)xo.seed;
    SglErr err = {{0}};
    if (sgl_engine_open(&eo, &e, &err) != SGL_OK) {
        fprintf(stderr, "sglc repl: %s\n", err.msg);
        goto out;
    }
    if (!tmpl)
        tmpl = chat_template_detect(demo_dir[0] ? NULL : model, sgl_engine_tokenizer(e));
    SglReplOpts ro = {.engine = e, .tmpl = tmpl, .xo = xo, .stream = !no_stream, .out = stdout,
                      .err = stderr, .cc = {repl_compile, NULL}};
    if (!(r = sgl_repl_new(&ro))) {
        fprintf(stderr, "sglc repl: out of memory\n");
        goto out;
    }
    if (tty) {
        const char *home = getenv("HOME");
        if (hist)
            snprintf(hist_path, sizeof hist_path, "%s", hist);
        else if (home)
            snprintf(hist_path, sizeof hist_path, "%s/.sglc_history", home);
        using_history();
        if (hist_path[0])
            read_history(hist_path);
        printf("sglc repl -- model %s. :help for commands, Ctrl-D to leave.\n", model);
    }
    SglReplStatus st = SGL_REPL_DONE;
    for (;;) {
        char *line = read_line(tty, st == SGL_REPL_MORE ? "...> " : "sgl> ");
        if (!line)
            break;
        if (tty && line[0])
            add_history(line);
        st = sgl_repl_feed(r, line);
        free(line);
        if (st == SGL_REPL_QUIT)
            break;
    }
    if (tty) {
        if (hist_path[0])
            write_history(hist_path);
        if (st != SGL_REPL_QUIT)
            fputc('\n', stdout);
    }
    rc = 0;
out:
    sgl_engine_close(e);   /* first: the session owns its turns' constraint tables */
    sgl_repl_free(r);
    if (demo_dir[0])
        sgl_demo_model_remove(demo_dir);
    return rc;
}
