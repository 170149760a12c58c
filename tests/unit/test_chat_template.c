/* test_chat_template.c -- built-in chat templates (backend/chat_template.h):
 * lookup, detection from tokenizer_config.json text and from a tokenizer's
 * special tokens, and role rendering (llama-2 folds system into user). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/chat_template.h"

static void test_find(void **st)
{
    (void)st;
    const char *names[] = {"chatml", "llama-3", "llama-2", "mistral", "plain"};
    for (size_t i = 0; i < 5; i++) {
        const ChatTemplate *t = chat_template_find(names[i]);
        assert_non_null(t);
        assert_string_equal(t->name, names[i]);
        assert_non_null(strstr(chat_template_names(), names[i]));
    }
    assert_null(chat_template_find("vicuna"));
}

static void test_from_jinja(void **st)
{
    (void)st;
    struct { const char *jinja, *want; } c[] = {
        {"{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}", "chatml"},
        {"{{ bos_token }}<|start_header_id|>{{ role }}<|end_header_id|>\n\n{{ content }}<|eot_id|>", "llama-3"},
        {"[INST] <<SYS>>\n{{ system }}\n<</SYS>>\n\n{{ user }} [/INST]", "llama-2"},
        {"{{ bos_token }}[INST] {{ user }} [/INST]{{ assistant }}</s>", "mistral"},
    };
    for (size_t i = 0; i < 4; i++) {
        const ChatTemplate *t = chat_template_from_jinja(c[i].jinja);
        assert_non_null(t);
        assert_string_equal(t->name, c[i].want);
    }
    assert_null(chat_template_from_jinja("{{ messages }}"));
    assert_null(chat_template_from_jinja(NULL));
}

static void test_detect(void **st)
{
    (void)st;
    char dir[] = "/tmp/sglc-tmpl-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"chat_template\": \"{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>{% endfor %}\"}", f);
    fclose(f);
    assert_string_equal(chat_template_detect(dir, NULL)->name, "llama-3");
    f = fopen(path, "w");
    fputs("{\"chat_template\": [{\"name\": \"default\", \"template\": \"<|im_start|>\"}]}", f);
    fclose(f);
    assert_string_equal(chat_template_detect(dir, NULL)->name, "chatml");
    f = fopen(path, "w");
    fputs("not json", f);
    fclose(f);
    assert_string_equal(chat_template_detect(dir, NULL)->name, "plain");
    unlink(path);
    rmdir(dir);
    assert_string_equal(chat_template_detect("/nonexistent/dir", NULL)->name, "plain");

    /* from the tokenizer's special tokens: SmolLM2 has <|im_start|>; stories260K has none */
    const char *shared = getenv("SGL_SHARED_DIR");
    char tdir[1024];
    snprintf(tdir, sizeof tdir, "%s/models/smollm2-135m-tokenizer", shared ? shared : "");
    SglTokenizer *tok = NULL;
    SglErr err;
    if (!shared || sgl_tokenizer_load(tdir, &tok, &err) != SGL_OK) {
        printf("skipped: tokenizer detection (no ../shared/models/smollm2-135m-tokenizer)\n");
        return;
    }
    assert_string_equal(chat_template_detect(NULL, tok)->name, "chatml");
    sgl_tokenizer_free(tok);
    snprintf(tdir, sizeof tdir, "%s/models/stories260K-hf", shared);
    assert_int_equal(sgl_tokenizer_load(tdir, &tok, &err), SGL_OK);
    assert_string_equal(chat_template_detect(tdir, tok)->name, "plain");
    sgl_tokenizer_free(tok);
}

/* Renders a conversation the way the interpreter does (begin, text, end). */
static void render(const ChatTemplate *t, const ChatRole *roles, const char *const *texts, int n,
                   char *out, size_t cap)
{
    out[0] = '\0';
    bool after_sys = false;
    for (int i = 0; i < n; i++) {
        strncat(out, chat_template_begin(t, roles[i], after_sys), cap - strlen(out) - 1);
        strncat(out, texts[i], cap - strlen(out) - 1);
        strncat(out, chat_template_end(t, roles[i]), cap - strlen(out) - 1);
        after_sys = roles[i] == CHAT_SYSTEM;
    }
}

static void test_render(void **st)
{
    (void)st;
    ChatRole roles[] = {CHAT_SYSTEM, CHAT_USER, CHAT_ASSISTANT, CHAT_USER};
    const char *texts[] = {"Be brief.", "Hi", "Hello!", "Bye"};
    char buf[1024];
    render(chat_template_find("chatml"), roles, texts, 4, buf, sizeof buf);
    assert_string_equal(buf, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                             "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n");
    render(chat_template_find("llama-3"), roles, texts, 2, buf, sizeof buf);
    assert_string_equal(buf, "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                             "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
    render(chat_template_find("llama-2"), roles, texts, 4, buf, sizeof buf);
    assert_string_equal(buf, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]");
    render(chat_template_find("plain"), roles + 1, texts + 1, 2, buf, sizeof buf);
    assert_string_equal(buf, "User: Hi\nAssistant: Hello!\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_from_jinja),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
