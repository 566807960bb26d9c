#define _POSIX_C_SOURCE 200809L
#include "ntf_template.h"

#include <stdbool.h>
#include <string.h>

#include "lv_err.h"

#define MAX_NAME 32

void ntf_utf8_cut(char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return;
    /* Step back over continuation bytes (10xxxxxx) to a character start. */
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    s[max] = '\0';
}

static const char *lookup(const ntf_var_t *vars, size_t nvars, const char *name, size_t len)
{
    for (size_t i = 0; i < nvars; i++)
        if (strlen(vars[i].name) == len && !memcmp(vars[i].name, name, len))
            return vars[i].value ? vars[i].value : "";
    return NULL;
}

typedef struct {
    char *out;
    size_t cap, len;
    bool cut;
} sink_t;

static void put(sink_t *s, const char *p, size_t n)
{
    if (s->cut)
        return;
    if (s->len + n >= s->cap) {
        n = s->cap - 1 - s->len;
        /* Never end in the middle of a UTF-8 character. */
        while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
            n--;
        s->cut = true;
    }
    memcpy(s->out + s->len, p, n);
    s->len += n;
}

int ntf_render(const char *tpl, const ntf_var_t *vars, size_t nvars, char *out, size_t outlen,
               const char **why)
{
    sink_t s = {out, outlen, 0, false};
    int rc = 0;
    const char *p = tpl;
    while (*p) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            put(&s, p, 1);
            p += 2;
            continue;
        }
        if (*p == '}') {
            *why = "模板中有多余的 } (unbalanced '}'; write '}}' for a brace)";
            rc = LV_EINVAL;
            break;
        }
        if (*p != '{') {
            size_t n = strcspn(p, "{}");
            put(&s, p, n);
            p += n;
            continue;
        }
        const char *end = strchr(p + 1, '}');
        size_t len = end ? (size_t)(end - p - 1) : 0;
        const char *v = end && len <= MAX_NAME ? lookup(vars, nvars, p + 1, len) : NULL;
        if (!v) {
            *why = end ? "模板中有未知的占位符 (unknown placeholder)"
                       : "模板中有未闭合的 { (unclosed '{'; write '{{' for a brace)";
            rc = LV_EINVAL;
            break;
        }
        put(&s, v, strlen(v));
        p = end + 1;
    }
    out[s.len] = '\0';
    return rc;
}
