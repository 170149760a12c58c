/* chat_template.h -- role blocks (system/user/assistant) rendered as text.
 *
 * .sgl role blocks wrap their text in the model's chat markers. We keep a
 * small table of built-in templates (chatml, llama-3, llama-2, mistral,
 * plain) instead of running Jinja: each role has a prefix and a suffix, and
 * llama-2/mistral fold the system block into the first user turn (so the
 * user prefix depends on whether a system block just ended). The template is
 * chosen from the model directory (tokenizer_config.json's chat_template
 * text, else the special tokens the tokenizer knows), or named with
 * --chat-template. Templates are static constant data; nothing to free.
 */
#ifndef SGL_CHAT_TEMPLATE_H
#define SGL_CHAT_TEMPLATE_H

#include <stdbool.h>

#include "runtime/tokenizer.h"

typedef enum { CHAT_SYSTEM, CHAT_USER, CHAT_ASSISTANT } ChatRole;

typedef struct {
    const char *name;                  /* "chatml" */
    const char *prefix[3], *suffix[3]; /* by ChatRole */
    /* user prefix right after a system block (llama-2/mistral merge them) */
    const char *user_after_system;
} ChatTemplate;

/* The built-in template called name, or NULL. */
const ChatTemplate *chat_template_find(const char *name);
/* Comma-separated names of the built-ins (for --help and errors). */
const char *chat_template_names(void);
/* Picks a template for a model: dir/tokenizer_config.json "chat_template"
 * (may be NULL or missing), then the tokenizer's special tokens (may be
 * NULL), else "plain". Never NULL. */
const ChatTemplate *chat_template_detect(const char *model_dir, const SglTokenizer *tok);
/* The same decision from a chat_template text alone; NULL when it names none. */
const ChatTemplate *chat_template_from_jinja(const char *text);

/* Marker text of a role boundary. prev_was_system_end: the state's last
 * append was the end of a system block (only llama-2/mistral care). */
const char *chat_template_begin(const ChatTemplate *t, ChatRole r, bool prev_was_system_end);
const char *chat_template_end(const ChatTemplate *t, ChatRole r);

#endif
