/* chat_template.c -- built-in chat templates and their detection. */
#include "backend/chat_template.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* ORDER: chat_template_names() lists these in this order. */
static const ChatTemplate templates[] = {
    {"chatml",
     {"<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"},
     {"<|im_end|>\n", "<|im_end|>\n", "<|im_end|>\n"},
     NULL},
    {"llama-3",
     {"<|start_header_id|>system<|end_header_id|>\n\n", "<|start_header_id|>user<|end_header_id|>\n\n",
      "<|start_header_id|>assistant<|end_header_id|>\n\n"},
     {"<|eot_id|>", "<|eot_id|>", "<|eot_id|>"},
     NULL},
    {"llama-2",
     {"[INST] <<SYS>>\n", "[INST] ", " "},
     {"\n<</SYS>>\n\n", " [/INST]", " </s><s>"},
     ""},
    {"mistral",
     {"[INST] ", "[INST] ", " "},
     {"\n\n", " [/INST]", "</s>"},
     ""},
    {"plain",
     {"System: ", "User: ", "Assistant: "},
     {"\n", "\n", "\n"},
     NULL},
};
#define N_TEMPLATES (sizeof templates / sizeof templates[0])
_Static_assert(N_TEMPLATES == 5, "chat_template_names lists five templates");

const ChatTemplate *chat_template_find(const char *name)
{
    for (size_t i = 0; i < N_TEMPLATES; i++)
        if (strcmp(templates[i].name, name) == 0)
            return &templates[i];
    return NULL;
}

const char *chat_template_names(void) { return "chatml, llama-3, llama-2, mistral, plain"; }

const ChatTemplate *chat_template_from_jinja(const char *text)
{
    if (!text)
        return NULL;
    if (strstr(text, "<|im_start|>"))
        return chat_template_find("chatml");
    if (strstr(text, "<|start_header_id|>"))
        return chat_template_find("llama-3");
    if (strstr(text, "<<SYS>>"))
        return chat_template_find("llama-2");
    if (strstr(text, "[INST]"))
        return chat_template_find("mistral");
    return NULL;
}

const ChatTemplate *chat_template_detect(const char *model_dir, const SglTokenizer *tok)
{
    const ChatTemplate *t = NULL;
    if (model_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
        json_t *cfg = json_load_file(path, 0, NULL);
        const json_t *ct = cfg ? json_object_get(cfg, "chat_template") : NULL;
        if (json_is_string(ct)) {
            t = chat_template_from_jinja(json_string_value(ct));
        } else if (json_is_array(ct)) {  /* [{"name": "default", "template": "..."}] */
            size_t i;
            json_t *e;
            json_array_foreach(ct, i, e) {
                const json_t *s = json_object_get(e, "template");
                if (!t && json_is_string(s))
                    t = chat_template_from_jinja(json_string_value(s));
            }
        }
        json_decref(cfg);
    }
    if (!t && tok) {
        if (sgl_tokenizer_token_id(tok, "<|im_start|>") >= 0)
            t = chat_template_find("chatml");
        else if (sgl_tokenizer_token_id(tok, "<|start_header_id|>") >= 0)
            t = chat_template_find("llama-3");
        else if (sgl_tokenizer_token_id(tok, "[INST]") >= 0)
            t = chat_template_find("mistral");
    }
    return t ? t : chat_template_find("plain");
}

const char *chat_template_begin(const ChatTemplate *t, ChatRole r, bool prev_was_system_end)
{
    if (r == CHAT_USER && prev_was_system_end && t->user_after_system)
        return t->user_after_system;
    return t->prefix[r];
}

const char *chat_template_end(const ChatTemplate *t, ChatRole r) { return t->suffix[r]; }
