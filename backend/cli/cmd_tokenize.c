/* cmd_tokenize.c -- `sglc tokenize`: token ids of a text, as Hugging Face gives them.
 *
 *   sglc tokenize --model DIR|FILE [--add-special-tokens] [--json] (TEXT | -)
 *
 * TEXT is taken byte for byte; `-` reads stdin to EOF (byte-exact, NULs
 * included). Prints the ids space-separated on one line, or with --json one
 * object {"ids": [...], "decoded": "..."} where decoded is the full decode of
 * those ids (special tokens kept). Exit 0 ok, 1 load/encode failure, 2 usage.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cli/cli.h"
#include "runtime/tokenizer.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: sglc tokenize --model DIR [--add-special-tokens] [--json] (TEXT | -)\n\n"
            "Prints the token ids of TEXT (or of standard input, byte-exact, with '-').\n\n"
            "  --model DIR            model directory with tokenizer.json or tokenizer.model\n"
            "                         (and tokenizer_config.json), or one tokenizer file\n"
            "  --add-special-tokens   add BOS/EOS as the tokenizer config says (HF's\n"
            "                         add_special_tokens=True); default off\n"
            "  --json                 print {\"ids\": [...], \"decoded\": \"...\"}\n");
}

int cmd_tokenize(int argc, char **argv)
{
    if (args_wants_help(argc, argv)) {
        help(stdout);
        return 0;
    }
    SglArgs a;
    const char *model = NULL, *text = NULL;
    bool add_special = false, json = false;
    args_init(&a, argc, argv);
    while (args_more(&a)) {
        if (args_flag(&a, "--add-special-tokens"))
            add_special = true;
        else if (args_flag(&a, "--json"))
            json = true;
        else if (args_str(&a, "--model", &model))
            ;
        else if (!text && args_positional(&a, &text))
            ;
        else
            return args_unknown(&a);
    }
    if (a.bad)
        return 2;
    if (!model)
        return args_usage_error(&a, "--model DIR is required");
    if (!text)
        return args_usage_error(&a, "give the TEXT to tokenize, or '-' for standard input");

    int rc = 1;
    char *input = NULL, *decoded = NULL;
    int32_t *ids = NULL, n = 0;
    SglTokenizer *tok = NULL;
    SglErr err = {{0}};
    size_t len = 0;
    if (strcmp(text, "-") == 0) {
        if (!(input = cli_read_stream(stdin, &len))) {
            fprintf(stderr, "sglc tokenize: cannot read standard input\n");
            goto out;
        }
    } else {
        len = strlen(text);
    }
    SglStatus st = sgl_tokenizer_load(model, &tok, &err);
    if (st != SGL_OK) {
        fprintf(stderr, "sglc tokenize: %s\n", err.msg[0] ? err.msg : sgl_status_str(st));
        goto out;
    }
    st = sgl_tokenizer_encode(tok, input ? input : text, len, add_special, &ids, &n);
    if (st != SGL_OK) {
        fprintf(stderr, "sglc tokenize: encoding failed: %s\n", sgl_status_str(st));
        goto out;
    }
    if (json) {
        size_t dlen = 0;
        if (!(decoded = sgl_tokenizer_decode(tok, ids, n, false, &dlen))) {
            fprintf(stderr, "sglc tokenize: out of memory\n");
            goto out;
        }
        json_t *arr = json_array(), *obj = json_object();
        for (int32_t i = 0; arr && i < n; i++)
            json_array_append_new(arr, json_integer(ids[i]));
        if (obj && arr) {
            json_object_set_new(obj, "ids", arr);
            arr = NULL;
            json_object_set_new(obj, "decoded", json_stringn(decoded, dlen));
        }
        char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
        json_decref(arr);
        json_decref(obj);
        if (!s) {
            fprintf(stderr, "sglc tokenize: out of memory\n");
            goto out;
        }
        printf("%s\n", s);
        free(s);
    } else {
        for (int32_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    free(decoded);
    free(ids);
    free(input);
    sgl_tokenizer_free(tok);
    return rc;
}
