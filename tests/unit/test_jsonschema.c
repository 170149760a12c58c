/* test_jsonschema.c -- JSON Schema -> regex -> DFA, checked from both sides.
 *
 * Soundness: random strings accepted by each schema's DFA (random walks to
 * accepting states, under every whitespace policy) must parse with jansson
 * and validate under the small independent validator below (written from
 * the JSON Schema spec, with PCRE2 for 'pattern'). Completeness: hand-written
 * valid instances, dumped by jansson in each policy's layout, are accepted;
 * hand-written invalid ones are rejected. Unsupported keywords, bad $ref,
 * recursion and bad JSON give diagnostics naming the keyword and location.
 * Typed output and choices go through the same checks.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "fsm_walk.h"
#include "ir/fsm/jsonschema.h"
#include "ir/fsm/typed.h"

/* ---- independent validator --------------------------------------------- */

static bool all_digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static bool valid_date(const char *s, size_t n)
{
    if (n != 10 || s[4] != '-' || s[7] != '-' || !all_digits(s, 4) || !all_digits(s + 5, 2) ||
        !all_digits(s + 8, 2))
        return false;
    int m = atoi(s + 5), d = atoi(s + 8);
    return m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

static bool valid_time(const char *s, size_t n)
{
    if (n < 9 || s[2] != ':' || s[5] != ':' || !all_digits(s, 2) || !all_digits(s + 3, 2) ||
        !all_digits(s + 6, 2) || atoi(s) > 23 || atoi(s + 3) > 59 || atoi(s + 6) > 59)
        return false;
    size_t i = 8;
    if (s[i] == '.') {
        size_t j = ++i;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        if (i == j)
            return false;
    }
    if (i + 1 == n && s[i] == 'Z')
        return true;
    return i + 6 == n && (s[i] == '+' || s[i] == '-') && all_digits(s + i + 1, 2) &&
           s[i + 3] == ':' && all_digits(s + i + 4, 2) && atoi(s + i + 1) <= 23 &&
           atoi(s + i + 4) <= 59;
}

static bool valid_email(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (!at || at == s || memchr(at + 1, '@', n - (size_t)(at - s) - 1))
        return false;
    for (const char *p = s; p < at; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._%+-", *p))
            return false;
    const char *dom = at + 1, *end = s + n, *dot = NULL;
    for (const char *p = dom; p < end; p++) {
        if (*p == '.') {
            if (p == dom || p[-1] == '.')
                return false;
            dot = p;
        } else if (!isalnum((unsigned char)*p) && *p != '-') {
            return false;
        }
    }
    if (!dot || end - dot - 1 < 2)
        return false;
    for (const char *p = dot + 1; p < end; p++)
        if (!isalpha((unsigned char)*p))
            return false;
    return true;
}

static bool valid_uuid(const char *s, size_t n)
{
    static const int groups[5] = {8, 4, 4, 4, 12};
    size_t i = 0;
    for (int g = 0; g < 5; g++) {
        for (int k = 0; k < groups[g]; k++, i++)
            if (i >= n || !isxdigit((unsigned char)s[i]))
                return false;
        if (g < 4 && (i >= n || s[i++] != '-'))
            return false;
    }
    return i == n;
}

static bool pattern_search(const char *pat, const char *s, size_t n)
{
    int errc;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &errc,
                                     &off, NULL);
    assert_non_null(code);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
    int rc = pcre2_match(code, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    return rc >= 0;
}

static size_t n_code_points(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static bool validate(const json_t *root, const json_t *schema, const json_t *v);

static bool validate_type(const json_t *root, const json_t *schema, const char *t, const json_t *v)
{
    if (strcmp(t, "null") == 0)
        return json_is_null(v);
    if (strcmp(t, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(t, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(t, "number") == 0)
        return json_is_number(v);
    if (strcmp(t, "string") == 0) {
        if (!json_is_string(v))
            return false;
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), cps = n_code_points(s, n);
        const json_t *mn = json_object_get(schema, "minLength"), *mx = json_object_get(schema, "maxLength"),
                     *pat = json_object_get(schema, "pattern"), *fmt = json_object_get(schema, "format");
        if ((mn && cps < (size_t)json_integer_value(mn)) || (mx && cps > (size_t)json_integer_value(mx)))
            return false;
        if (pat && !pattern_search(json_string_value(pat), s, n))
            return false;
        if (fmt) {
            const char *f = json_string_value(fmt);
            if (strcmp(f, "date") == 0)
                return valid_date(s, n);
            if (strcmp(f, "time") == 0)
                return valid_time(s, n);
            if (strcmp(f, "date-time") == 0)
                return n > 11 && s[10] == 'T' && valid_date(s, 10) && valid_time(s + 11, n - 11);
            if (strcmp(f, "email") == 0)
                return valid_email(s, n);
            if (strcmp(f, "uuid") == 0)
                return valid_uuid(s, n);
            return false;
        }
        return true;
    }
    if (strcmp(t, "array") == 0) {
        if (!json_is_array(v))
            return false;
        const json_t *mn = json_object_get(schema, "minItems"), *mx = json_object_get(schema, "maxItems"),
                     *items = json_object_get(schema, "items");
        size_t n = json_array_size(v), i;
        if ((mn && n < (size_t)json_integer_value(mn)) || (mx && n > (size_t)json_integer_value(mx)))
            return false;
        json_t *e;
        json_array_foreach((json_t *)v, i, e) if (items && !validate(root, items, e)) return false;
        return true;
    }
    if (strcmp(t, "object") == 0) {
        if (!json_is_object(v))
            return false;
        const json_t *props = json_object_get(schema, "properties"),
                     *req = json_object_get(schema, "required");
        const char *k;
        json_t *e;
        size_t i;
        json_object_foreach((json_t *)v, k, e) {
            const json_t *sub = json_object_get(props, k);
            if (!sub || !validate(root, sub, e))
                return false; /* additionalProperties: false */
        }
        json_array_foreach((json_t *)req, i, e) if (!json_object_get(v, json_string_value(e))) return false;
        return true;
    }
    return false;
}

static bool validate(const json_t *root, const json_t *schema, const json_t *v)
{
    const json_t *x;
    size_t i;
    json_t *e;
    if ((x = json_object_get(schema, "$ref"))) {
        const char *r = json_string_value(x);
        const char *name = strrchr(r, '/') + 1;
        const char *sec = strncmp(r, "#/$defs/", 8) == 0 ? "$defs" : "definitions";
        return validate(root, json_object_get(json_object_get(root, sec), name), v);
    }
    if ((x = json_object_get(schema, "const")))
        return json_equal(x, (json_t *)v);
    if ((x = json_object_get(schema, "enum"))) {
        json_array_foreach((json_t *)x, i, e) if (json_equal(e, (json_t *)v)) return true;
        return false;
    }
    if ((x = json_object_get(schema, "anyOf"))) {
        json_array_foreach((json_t *)x, i, e) if (validate(root, e, v)) return true;
        return false;
    }
    x = json_object_get(schema, "type");
    if (json_is_string(x))
        return validate_type(root, schema, json_string_value(x), v);
    if (json_is_array(x)) {
        json_array_foreach((json_t *)x, i, e) if (validate_type(root, schema, json_string_value(e), v)) return true;
        return false;
    }
    if (json_object_get(schema, "properties"))
        return validate_type(root, schema, "object", v);
    return validate_type(root, schema, "array", v);
}

/* ---- cases -------------------------------------------------------------- */

typedef struct {
    const char *schema;
    const char *valid[4];     /* JSON texts (keys in schema order) */
    const char *invalid[6];   /* exact texts in the SPACE layout, all must be rejected */
} Case;

static const Case CASES[] = {
    {"{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
     "\"age\":{\"type\":\"integer\"},\"email\":{\"type\":\"string\",\"format\":\"email\"}},"
     "\"required\":[\"name\",\"age\"]}",
     {"{\"name\":\"Ann\",\"age\":31}", "{\"name\":\"B\\\"ob\\n\",\"age\":-4,\"email\":\"b.c@x.org\"}",
      "{\"name\":\"\",\"age\":0}"},
     {"{\"name\": \"Ann\"}", "{\"age\": 31, \"name\": \"Ann\"}", "{\"name\": \"Ann\", \"age\": 3.5}",
      "{\"name\": \"Ann\", \"age\": 01}", "{\"name\": \"abcdefghijklm\", \"age\": 1}",
      "{\"name\": \"Ann\", \"age\": 1, \"email\": \"nope\"}"}},
    {"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\","
     "\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":5},\"minItems\":1,\"maxItems\":3},"
     "\"owner\":{\"type\":\"object\",\"properties\":{\"first\":{\"type\":\"string\"},\"last\":"
     "{\"type\":\"string\"}},\"required\":[\"first\"]}},\"required\":[\"id\",\"tags\",\"owner\"]}",
     {"{\"id\":1,\"tags\":[\"a\"],\"owner\":{\"first\":\"x\"}}",
      "{\"id\":22,\"tags\":[\"ab\",\"cd\",\"é€\"],\"owner\":{\"first\":\"x\",\"last\":\"y\"}}"},
     {"{\"id\": 1, \"tags\": [], \"owner\": {\"first\": \"x\"}}",
      "{\"id\": 1, \"tags\": [\"a\", \"b\", \"c\", \"d\"], \"owner\": {\"first\": \"x\"}}",
      "{\"id\": 1, \"tags\": [\"\"], \"owner\": {\"first\": \"x\"}}",
      "{\"id\": 1, \"tags\": [\"a\"], \"owner\": {\"last\": \"x\"}}"}},
    {"{\"type\":\"object\",\"properties\":{\"color\":{\"enum\":[\"red\",\"green\",\"blue\"]},"
     "\"size\":{\"enum\":[1,2,3.5,null,true]},\"mode\":{\"const\":\"fast\"}},"
     "\"required\":[\"color\",\"size\",\"mode\"]}",
     {"{\"color\":\"red\",\"size\":3.5,\"mode\":\"fast\"}", "{\"color\":\"blue\",\"size\":null,\"mode\":\"fast\"}"},
     {"{\"color\": \"pink\", \"size\": 1, \"mode\": \"fast\"}",
      "{\"color\": \"red\", \"size\": 4, \"mode\": \"fast\"}",
      "{\"color\": \"red\", \"size\": 1, \"mode\": \"slow\"}"}},
    {"{\"type\":\"object\",\"properties\":{\"v\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\","
     "\"maxLength\":3},{\"type\":\"null\"}]},\"w\":{\"type\":[\"number\",\"boolean\"]}},\"required\":[\"v\"]}",
     {"{\"v\":5}", "{\"v\":\"abc\",\"w\":false}", "{\"v\":null,\"w\":-1.5e3}"},
     {"{\"v\": \"abcd\"}", "{\"v\": true}", "{\"w\": 1}", "{\"v\": 1, \"w\": \"x\"}"}},
    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"},\"b\":{\"type\":\"null\"},"
     "\"c\":{\"type\":\"number\"}}}",
     {"{}", "{\"b\":null}", "{\"a\":true,\"c\":2}", "{\"a\":false,\"b\":null,\"c\":0.5}"},
     {"{\"b\": null, \"a\": true}", "{, \"a\": true}", "{\"a\": true,}", "{\"d\": 1}"}},
    {"{\"$defs\":{\"point\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"},"
     "\"y\":{\"type\":\"number\"}},\"required\":[\"x\",\"y\"]}},\"type\":\"object\",\"properties\":"
     "{\"start\":{\"$ref\":\"#/$defs/point\"},\"end\":{\"$ref\":\"#/$defs/point\"}},"
     "\"required\":[\"start\",\"end\"]}",
     {"{\"start\":{\"x\":1,\"y\":2},\"end\":{\"x\":-0.5,\"y\":1e2}}"},
     {"{\"start\": {\"x\": 1}, \"end\": {\"x\": 1, \"y\": 2}}"}},
    {"{\"type\":\"object\",\"properties\":{\"d\":{\"type\":\"string\",\"format\":\"date\"},\"t\":"
     "{\"type\":\"string\",\"format\":\"time\"},\"dt\":{\"type\":\"string\",\"format\":\"date-time\"},"
     "\"u\":{\"type\":\"string\",\"format\":\"uuid\"}},\"required\":[\"d\",\"t\",\"dt\",\"u\"]}",
     {"{\"d\":\"2024-02-29\",\"t\":\"23:59:59Z\",\"dt\":\"2024-01-01T00:00:00.5+05:30\","
      "\"u\":\"123e4567-e89b-12d3-a456-426614174000\"}"},
     {"{\"d\": \"2024-13-01\", \"t\": \"23:59:59Z\", \"dt\": \"2024-01-01T00:00:00Z\", "
      "\"u\": \"123e4567-e89b-12d3-a456-426614174000\"}",
      "{\"d\": \"2024-12-01\", \"t\": \"24:00:00Z\", \"dt\": \"2024-01-01T00:00:00Z\", "
      "\"u\": \"123e4567-e89b-12d3-a456-426614174000\"}"}},
    {"{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"pattern\":"
     "\"^[A-Z]{3}-\\\\d{3}$\"},\"word\":{\"type\":\"string\",\"pattern\":\"ab+\"}},"
     "\"required\":[\"code\",\"word\"]}",
     {"{\"code\":\"ABC-123\",\"word\":\"ab\"}", "{\"code\":\"XYZ-000\",\"word\":\"xxabbby\\n\"}"},
     {"{\"code\": \"ABC-12\", \"word\": \"ab\"}", "{\"code\": \"ABC-123\", \"word\": \"a\"}"}},
    {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":4}",
     {"[]", "[1]", "[1,2,3,4]"},
     {"[1, 2, 3, 4, 5]", "[1,]", "[,1]", "[1 , 2]"}},
    {"{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\","
     "\"enum\":[\"x\",\"y\"]},\"n\":{\"type\":\"integer\"}},\"required\":[\"k\"]},\"minItems\":0,"
     "\"maxItems\":2}",
     {"[]", "[{\"k\":\"x\"},{\"k\":\"y\",\"n\":3}]"},
     {"[{\"n\": 1}]", "[{\"k\": \"z\"}]"}},
    {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":6}",
     {"\"ab\"", "\"\\u00e9\\\"x\"", "\"\\t\\\\\\/\""},
     {"\"a\"", "\"abcdefg\"", "\"\\x\"", "\"\\ud800ab\"", "\"\\u0000a\""}},
    {"{\"type\":\"object\",\"properties\":{\"o1\":{\"type\":\"integer\"},\"r1\":{\"type\":\"string\","
     "\"maxLength\":2},\"o2\":{\"type\":\"boolean\"},\"r2\":{\"type\":\"null\"},\"o3\":{\"type\":"
     "\"integer\"}},\"required\":[\"r1\",\"r2\"]}",
     {"{\"r1\":\"a\",\"r2\":null}", "{\"o1\":1,\"r1\":\"\",\"o2\":true,\"r2\":null,\"o3\":2}",
      "{\"r1\":\"ab\",\"o2\":false,\"r2\":null}"},
     {"{\"r2\": null}", "{\"o1\": 1, \"r2\": null, \"r1\": \"a\"}", "{\"r1\": \"a\", \"r2\": null, \"o2\": true}"}},
};

static const char *dump_layout(const json_t *v, JsonWs ws)
{
    static char buf[4096];
    char *s = json_dumps(v, JSON_ENCODE_ANY | (ws == JSON_WS_SPACE ? 0 : JSON_COMPACT));
    assert_non_null(s);
    snprintf(buf, sizeof buf, "%s", s);
    free(s);
    return buf;
}

static void check_case(const Case *cs, JsonWs ws, uint64_t seed, int *n_walks)
{
    json_error_t jerr;
    json_t *schema = json_loads(cs->schema, 0, &jerr);
    if (!schema)
        fprintf(stderr, "bad test schema: %s\n", jerr.text);
    assert_non_null(schema);
    JsonSchemaOpts opts = {ws, 0};
    SglDfa *d = NULL;
    FsmErr err;
    SglStatus st = jsonschema_compile(schema, &opts, NULL, &d, &err);
    if (st != SGL_OK)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, SGL_OK);
    char why[200];
    assert_true(sgl_dfa_check(d, why, sizeof why));

    for (int i = 0; i < 4 && cs->valid[i]; i++) {
        json_t *v = json_loads(cs->valid[i], JSON_DECODE_ANY, &jerr);
        assert_non_null(v);
        assert_true(validate(schema, schema, v)); /* the validator agrees it is valid */
        const char *text = dump_layout(v, ws);
        if (!sgl_dfa_accepts(d, text, strlen(text)))
            fprintf(stderr, "rejected valid instance (ws %d): %s\n", ws, text);
        assert_true(sgl_dfa_accepts(d, text, strlen(text)));
        json_decref(v);
    }
    if (ws == JSON_WS_SPACE)
        for (int i = 0; i < 6 && cs->invalid[i]; i++) {
            if (sgl_dfa_accepts(d, cs->invalid[i], strlen(cs->invalid[i])))
                fprintf(stderr, "accepted invalid instance: %s\n", cs->invalid[i]);
            assert_false(sgl_dfa_accepts(d, cs->invalid[i], strlen(cs->invalid[i])));
        }

    int32_t *dist = dfa_dist_to_accept(d);
    assert_non_null(dist);
    uint64_t rng = seed;
    for (int i = 0; i < 150; i++) {
        char s[4096];
        size_t len = dfa_random_accepted(d, dist, &rng, s, sizeof s, rng_below(&rng, 80));
        assert_true(len != (size_t)-1);
        json_t *v = json_loadb(s, len, JSON_DECODE_ANY, &jerr);
        if (!v)
            fprintf(stderr, "not JSON (%s): %s\n", jerr.text, s);
        assert_non_null(v);
        if (!validate(schema, schema, v))
            fprintf(stderr, "does not validate: %s\n", s);
        assert_true(validate(schema, schema, v));
        json_decref(v);
        (*n_walks)++;
    }
    free(dist);
    sgl_dfa_free(d);
    json_decref(schema);
}

static void test_random_accepted_strings_are_valid(void **state)
{
    (void)state;
    int n = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++)
        for (int ws = 0; ws < 3; ws++)
            check_case(&CASES[i], (JsonWs)ws, 77 + i * 3 + (uint64_t)ws, &n);
    printf("%zu schemas x 3 whitespace policies, %d random accepted strings validated\n",
           sizeof CASES / sizeof *CASES, n);
}

static void expect_error(const char *schema_text, const char *what, const char *where)
{
    FsmErr err;
    char *re = (char *)1;
    SglStatus st = jsonschema_text_to_regex(schema_text, strlen(schema_text), NULL, &re, &err);
    if (st != SGL_E_INVAL || !strstr(err.msg, what) || !strstr(err.msg, where))
        fprintf(stderr, "%s -> %d %s\n", schema_text, st, err.msg);
    assert_int_equal(st, SGL_E_INVAL);
    assert_null(re);
    assert_non_null(strstr(err.msg, what));
    assert_non_null(strstr(err.msg, where));
}

static void test_unsupported_and_bad_schemas(void **state)
{
    (void)state;
    expect_error("{\"type\":\"integer\",\"minimum\":0}", "unsupported keyword 'minimum'", "at #");
    expect_error("{\"type\":\"object\",\"properties\":{\"age\":{\"type\":\"integer\",\"maximum\":9}}}",
                 "unsupported keyword 'maximum'", "at #/properties/age");
    expect_error("{\"type\":\"array\",\"items\":{\"type\":\"string\",\"uniqueItems\":true}}",
                 "'uniqueItems'", "#/items");
    expect_error("{\"anyOf\":[{\"type\":\"null\"},{\"oneOf\":[]}]}", "'oneOf'", "#/anyOf/1");
    expect_error("{\"type\":\"object\",\"additionalProperties\":true}", "additionalProperties", "#");
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"null\"}},\"required\":[\"b\"]}",
                 "required property 'b'", "#");
    expect_error("{\"type\":\"string\",\"format\":\"ipv4\"}", "unsupported format 'ipv4'", "#");
    expect_error("{\"type\":\"strin\"}", "unknown type 'strin'", "#");
    expect_error("{}", "allows any value", "#");
    expect_error("{\"type\":\"array\"}", "without 'items'", "#");
    expect_error("{\"type\":\"string\",\"minLength\":3,\"maxLength\":2}", "unsatisfiable", "#");
    expect_error("{\"type\":\"string\",\"maxLength\":5000}", "exceeds the limit 1000", "#");
    expect_error("{\"type\":\"string\",\"pattern\":\"a\\\"b\"}", "'pattern' can match", "#");
    expect_error("{\"type\":\"string\",\"pattern\":\"a(b\"}", "missing ')'", "#");
    expect_error("{\"$ref\":\"#/$defs/nope\"}", "$ref '#/$defs/nope' not found", "#");
    expect_error("{\"$ref\":\"http://x/y\"}", "unsupported $ref", "#");
    expect_error("{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#/$defs/n\"}}}},"
                 "\"$ref\":\"#/$defs/n\"}",
                 "nested deeper than 8", "#/$defs/n");
    expect_error("{\"type\": \"object\",, }", "invalid JSON at line 1, column", "");
    /* nesting depth: reported, not a stack overflow */
    char deep[8192];
    size_t o = 0;
    for (int i = 0; i < 100; i++)
        o += (size_t)snprintf(deep + o, sizeof deep - o, "{\"type\":\"array\",\"items\":");
    o += (size_t)snprintf(deep + o, sizeof deep - o, "{\"type\":\"null\"}");
    for (int i = 0; i < 100; i++)
        deep[o++] = '}';
    deep[o] = '\0';
    expect_error(deep, "nested deeper than 64", "#/items/items");
    /* arrays of arrays double the item regex per level: capped, not exponential */
    o = 0;
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(deep + o, sizeof deep - o, "{\"type\":\"array\",\"items\":");
    o += (size_t)snprintf(deep + o, sizeof deep - o, "{\"type\":\"null\"}");
    for (int i = 0; i < 40; i++)
        deep[o++] = '}';
    deep[o] = '\0';
    expect_error(deep, "larger than 1048576 bytes", "#/items");
}

static void test_forced_keys_in_space_layout(void **state)
{
    (void)state;
    /* With the SPACE policy the text between values is fully determined:
     * after '{' of a required-first object the DFA has a single path. */
    const char *schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
                         "\"n\":{\"type\":\"integer\"}},\"required\":[\"name\",\"n\"]}";
    char *re;
    FsmErr err;
    assert_int_equal(jsonschema_text_to_regex(schema, strlen(schema), NULL, &re, &err), SGL_OK);
    SglDfa *d;
    assert_int_equal(regex_compile(re, strlen(re), NULL, &d, NULL, &err), SGL_OK);
    const char *prefix = "{\"name\": \"";
    int32_t s = d->start;
    for (const char *p = prefix; *p; p++) {
        int live = 0;
        for (int b = 0; b < 256; b++)
            live += sgl_dfa_step(d, s, (uint8_t)b) >= 0;
        assert_int_equal(live, 1); /* forced */
        s = sgl_dfa_step(d, s, (uint8_t)*p);
        assert_true(s >= 0);
    }
    assert_true(sgl_dfa_accepts(d, "{\"name\": \"x\", \"n\": 5}", 21));
    sgl_dfa_free(d);
    free(re);
}

static void test_typed_output_and_choices(void **state)
{
    (void)state;
    TypedType t_int = {TYPED_INT}, t_float = {TYPED_FLOAT}, t_bool = {TYPED_BOOL},
              t_str = {TYPED_STR};
    TypedType t_list = {TYPED_LIST, &t_float};
    const char *names[] = {"name", "age", "score", "ok", "tags"};
    const TypedType *fields[] = {&t_str, &t_int, &t_list, &t_bool, NULL};
    TypedType t_tags = {TYPED_LIST, &t_str};
    fields[4] = &t_tags;
    TypedType rec = {TYPED_RECORD, NULL, 5, names, fields};
    TypedType t_recs = {TYPED_LIST, &rec};
    const TypedType *all[] = {&t_int, &t_float, &t_bool, &t_str, &t_list, &rec, &t_recs};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        json_t *schema;
        FsmErr err;
        char *re;
        assert_int_equal(typed_to_schema(all[i], &schema, &err), SGL_OK);
        assert_int_equal(typed_to_regex(all[i], NULL, &re, &err), SGL_OK);
        SglDfa *d;
        assert_int_equal(regex_compile(re, strlen(re), NULL, &d, NULL, &err), SGL_OK);
        int32_t *dist = dfa_dist_to_accept(d);
        uint64_t rng = 5 + i;
        for (int k = 0; k < 100; k++) {
            char s[4096];
            size_t len = dfa_random_accepted(d, dist, &rng, s, sizeof s, rng_below(&rng, 60));
            assert_true(len != (size_t)-1);
            json_error_t jerr;
            json_t *v = json_loadb(s, len, JSON_DECODE_ANY, &jerr);
            assert_non_null(v);
            assert_true(validate(schema, schema, v));
            json_decref(v);
        }
        free(dist);
        sgl_dfa_free(d);
        free(re);
        json_decref(schema);
    }
    const char *dup_names[] = {"a", "a"};
    const TypedType *dup_fields[] = {&t_int, &t_int};
    TypedType dup = {TYPED_RECORD, NULL, 2, dup_names, dup_fields};
    FsmErr err;
    char *re;
    assert_int_equal(typed_to_regex(&dup, NULL, &re, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "duplicate field a"));

    const char *choices[] = {"yes", "no", "yes, but (maybe)", "n/a"};
    assert_int_equal(typed_choices_regex(choices, 4, &re, &err), SGL_OK);
    SglDfa *d;
    assert_int_equal(regex_compile(re, strlen(re), NULL, &d, NULL, &err), SGL_OK);
    for (int i = 0; i < 4; i++)
        assert_true(sgl_dfa_accepts(d, choices[i], strlen(choices[i])));
    assert_false(sgl_dfa_accepts(d, "ye", 2));
    assert_false(sgl_dfa_accepts(d, "yes, but", 8));
    assert_false(sgl_dfa_accepts(d, "", 0));
    sgl_dfa_free(d);
    free(re);
    assert_int_equal(typed_choices_regex(choices, 0, &re, &err), SGL_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_accepted_strings_are_valid),
        cmocka_unit_test(test_unsupported_and_bad_schemas),
        cmocka_unit_test(test_forced_keys_in_space_layout),
        cmocka_unit_test(test_typed_output_and_choices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
