/* Message templates: text with {name} placeholders filled from a small set of
 * variables. Templates are data (the notify config), never C strings, so
 * wording changes need no rebuild. */
#ifndef NTF_TEMPLATE_H
#define NTF_TEMPLATE_H

#include <stddef.h>

typedef struct {
    const char *name;
    const char *value;
} ntf_var_t;

/* Renders tpl into out (outlen bytes, always NUL-terminated): {name} is
 * replaced by the variable's value, "{{" and "}}" stand for literal braces.
 * Output longer than outlen - 1 is cut on a UTF-8 character boundary.
 * Returns 0, or LV_EINVAL with *why a static message when a placeholder is
 * unknown or a brace is unbalanced (out then holds what was rendered). */
int ntf_render(const char *tpl, const ntf_var_t *vars, size_t nvars, char *out, size_t outlen,
               const char **why);

/* Cuts s (in place) to at most max bytes without splitting a UTF-8
 * character. */
void ntf_utf8_cut(char *s, size_t max);

#endif
