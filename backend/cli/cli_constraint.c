/* cli_constraint.c -- --regex / --json-schema -> DFA for the driver (see
 * cli_constraint.h). */
#include "backend/cli/cli_constraint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cli/cli.h"
#include "ir/fsm/jsonschema.h"
#include "ir/fsm/regex.h"

SglDfa *cli_compile_output_constraint(const char *cmd, const char *regex, const char *schema)
{
    FsmErr fe = {0};
    SglDfa *d = NULL;
    char *re = NULL, *file = NULL;
    SglStatus st;
    if (regex) {
        st = regex_compile(regex, strlen(regex), NULL, &d, NULL, &fe);
    } else {
        const char *text = schema;
        size_t len = strlen(schema);
        if (schema[0] != '{' && !(text = file = cli_read_file(schema, &len))) {
            fprintf(stderr, "sglc %s: --json-schema: %s: cannot read the file\n", cmd, schema);
            return NULL;
        }
        st = jsonschema_text_to_regex(text, len, NULL, &re, &fe);
        if (st == SGL_OK)
            st = regex_compile(re, strlen(re), NULL, &d, NULL, &fe);
    }
    if (st == SGL_OK && sgl_dfa_is_empty(d)) {
        snprintf(fe.msg, sizeof fe.msg, "no output can satisfy it");
        sgl_dfa_free(d);
        d = NULL;
        st = SGL_E_INVAL;
    }
    if (st != SGL_OK)
        fprintf(stderr, "sglc %s: %s: %s\n", cmd, regex ? "--regex" : "--json-schema",
                fe.msg[0] ? fe.msg : sgl_status_str(st));
    free(re);
    free(file);
    return d;
}
