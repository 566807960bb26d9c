#define _POSIX_C_SOURCE 200809L
#include "ntf_config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntf_template.h"

#define MAX_KEY 64
#define CHECK_OUT 8192 /* render buffer when checking templates */

struct ntf_config {
    json_t *root; /* owned; templates and names are read from it */
    ntf_delivery_cfg_t delivery;
};

static const char *const s_roles[NTF_NROLES] = {"town",         "village", "county",
                                                "investigator", "school",  "household"};

static const char *const s_channels[] = {"inbox", "webhook", "email", NULL};
/* The parts of each channel's template, by the index in s_channels. */
static const char *const s_parts[][3] = {{"title", "body", NULL}, {"text", NULL, NULL},
                                         {"subject", "body", NULL}};

const char *const ntf_template_vars[] = {
    "title", "body", "household_id", "case_id", "region_code", "assignee", "grade",
    "kind",  "recipient", "recipient_name", "time", NULL,
};

const char *ntf_role_name(ntf_role_t role)
{
    return role >= 0 && role < NTF_NROLES ? s_roles[role] : "?";
}

static int role_of(const char *s)
{
    for (int i = 0; i < NTF_NROLES; i++)
        if (!strcmp(s, s_roles[i]))
            return i;
    return -1;
}

static int channel_of(const char *s, size_t n)
{
    for (int i = 0; s_channels[i]; i++)
        if (strlen(s_channels[i]) == n && !strncmp(s, s_channels[i], n))
            return i;
    return -1;
}

typedef struct {
    char *err;
    size_t errlen;
    bool failed;
} ctx_t;

static void fail(ctx_t *c, const char *path, const char *what)
{
    if (!c->failed)
        snprintf(c->err, c->errlen, "通知配置错误 (notify config error) at %s: %s", path, what);
    c->failed = true;
}

static int64_t get_int(ctx_t *c, json_t *obj, const char *key, int64_t lo, int64_t hi)
{
    char path[96];
    snprintf(path, sizeof path, "delivery.%s", key);
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) {
        fail(c, path, v ? "must be an integer" : "missing");
        return lo;
    }
    int64_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        char msg[96];
        snprintf(msg, sizeof msg, "%lld is out of range %lld..%lld", (long long)x, (long long)lo,
                 (long long)hi);
        fail(c, path, msg);
        return lo;
    }
    return x;
}

static void load_delivery(ctx_t *c, json_t *o, ntf_delivery_cfg_t *d)
{
    if (!json_is_object(o)) {
        fail(c, "delivery", "missing or not an object");
        return;
    }
    d->max_attempts = (int)get_int(c, o, "max_attempts", 1, 100);
    d->backoff_base_ms = get_int(c, o, "backoff_base_ms", 10, 3600000);
    d->backoff_max_ms = get_int(c, o, "backoff_max_ms", 10, 7LL * 86400000);
    d->batch = (int)get_int(c, o, "batch", 1, 1000);
    d->max_inflight = (int)get_int(c, o, "max_inflight", 1, 256);
    d->connect_timeout_ms = (int)get_int(c, o, "connect_timeout_ms", 100, 60000);
    d->timeout_ms = (int)get_int(c, o, "timeout_ms", 100, 300000);
    d->rate_per_s = (int)get_int(c, o, "rate_per_s", 1, 1000);
    if (!c->failed && d->backoff_max_ms < d->backoff_base_ms)
        fail(c, "delivery.backoff_max_ms", "must not be below backoff_base_ms");
    if (!c->failed && d->timeout_ms < d->connect_timeout_ms)
        fail(c, "delivery.timeout_ms", "must not be below connect_timeout_ms");
}

/* Renders a template against every known placeholder, so an unknown one or a
 * stray brace is found at load rather than when a message is due. */
static void check_template(ctx_t *c, const char *path, json_t *v, const char *const *names)
{
    if (!json_is_string(v)) {
        fail(c, path, "must be a string");
        return;
    }
    ntf_var_t vars[16];
    size_t n = 0;
    for (; names[n] && n < 16; n++) {
        vars[n].name = names[n];
        vars[n].value = "x";
    }
    char out[CHECK_OUT];
    const char *why = NULL;
    if (ntf_render(json_string_value(v), vars, n, out, sizeof out, &why))
        fail(c, path, why);
}

static void load_routes(ctx_t *c, json_t *routes)
{
    if (!json_is_object(routes)) {
        fail(c, "routes", "missing or not an object");
        return;
    }
    const char *kind;
    json_t *list;
    json_object_foreach(routes, kind, list)
    {
        char path[MAX_KEY + 16];
        snprintf(path, sizeof path, "routes.%.*s", MAX_KEY, kind);
        if (!*kind || strlen(kind) > MAX_KEY) {
            fail(c, path, "an event kind must be 1..64 bytes");
            return;
        }
        if (!json_is_array(list) || json_array_size(list) == 0 ||
            json_array_size(list) > NTF_NROLES) {
            fail(c, path, "must be a list of 1..6 roles");
            return;
        }
        size_t i;
        json_t *r;
        unsigned seen = 0;
        json_array_foreach(list, i, r)
        {
            int role = json_is_string(r) ? role_of(json_string_value(r)) : -1;
            if (role < 0) {
                fail(c, path, "roles are town, village, county, investigator, school, household");
                return;
            }
            if (seen & (1u << role)) {
                fail(c, path, "a role is listed twice");
                return;
            }
            seen |= 1u << role;
        }
    }
}

static void load_templates(ctx_t *c, json_t *t)
{
    if (!json_is_object(t)) {
        fail(c, "templates", "missing or not an object");
        return;
    }
    const char *kind;
    json_t *chans;
    json_object_foreach(t, kind, chans)
    {
        char path[3 * MAX_KEY];
        snprintf(path, sizeof path, "templates.%.*s", MAX_KEY, kind);
        if (!json_is_object(chans)) {
            fail(c, path, "must be an object of channels");
            return;
        }
        const char *key;
        json_t *parts;
        json_object_foreach(chans, key, parts)
        {
            snprintf(path, sizeof path, "templates.%.*s.%.*s", MAX_KEY, kind, MAX_KEY, key);
            const char *at = strchr(key, '@');
            int ch = channel_of(key, at ? (size_t)(at - key) : strlen(key));
            if (ch < 0 || (at && role_of(at + 1) < 0)) {
                fail(c, path, "a key is inbox, webhook or email, optionally @role (webhook@household)");
                return;
            }
            if (!json_is_object(parts)) {
                fail(c, path, "must be an object of parts");
                return;
            }
            const char *part;
            json_t *v;
            json_object_foreach(parts, part, v)
            {
                bool known = false;
                for (int i = 0; s_parts[ch][i]; i++)
                    known = known || !strcmp(part, s_parts[ch][i]);
                char pp[5 * MAX_KEY];
                snprintf(pp, sizeof pp, "%s.%.*s", path, MAX_KEY, part);
                if (!known) {
                    fail(c, pp, "unknown part (inbox: title, body; webhook: text; email: subject, body)");
                    return;
                }
                check_template(c, pp, v, ntf_template_vars);
            }
        }
    }
}

static void load_names(ctx_t *c, json_t *root)
{
    json_t *names = json_object_get(root, "recipients");
    static const char *const code_var[] = {"code", NULL};
    for (int r = 0; r < NTF_NROLES; r++) {
        char path[64];
        snprintf(path, sizeof path, "recipients.%s", s_roles[r]);
        json_t *v = json_object_get(names, s_roles[r]);
        if (!v)
            fail(c, path, "missing");
        else
            check_template(c, path, v, code_var);
    }
    json_t *grades = json_object_get(root, "grades");
    const char *g;
    json_t *v;
    if (grades && !json_is_object(grades))
        fail(c, "grades", "must be an object");
    json_object_foreach(grades, g, v)
    {
        if (!json_is_string(v))
            fail(c, "grades", "names must be strings");
    }
}

/* Every routed kind must find every part of every channel for each of its
 * roles, so a message is never left without wording at run time. */
static void check_coverage(ctx_t *c, const ntf_config_t *self)
{
    const char *kind;
    json_t *list;
    json_object_foreach(json_object_get(self->root, "routes"), kind, list)
    {
        ntf_role_t roles[NTF_NROLES];
        int n = ntf_config_route(self, kind, roles);
        for (int i = 0; i < n; i++)
            for (int ch = 0; s_channels[ch]; ch++)
                for (int p = 0; s_parts[ch][p]; p++)
                    if (!ntf_config_template(self, kind, s_channels[ch], roles[i], s_parts[ch][p])) {
                        char path[3 * MAX_KEY];
                        snprintf(path, sizeof path, "templates.%.*s.%s@%s.%s", MAX_KEY, kind,
                                 s_channels[ch], s_roles[roles[i]], s_parts[ch][p]);
                        fail(c, path, "no template (not even under \"*\")");
                        return;
                    }
    }
}

static ntf_config_t *from_json(json_t *root, char *err, size_t errlen)
{
    ctx_t c = {err, errlen, false};
    ntf_config_t *self = calloc(1, sizeof *self);
    if (!self) {
        json_decref(root);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->root = root;
    if (!json_is_object(root))
        fail(&c, "(top)", "must be an object");
    if (!c.failed)
        load_delivery(&c, json_object_get(root, "delivery"), &self->delivery);
    if (!c.failed)
        load_routes(&c, json_object_get(root, "routes"));
    if (!c.failed)
        load_templates(&c, json_object_get(root, "templates"));
    if (!c.failed)
        load_names(&c, root);
    if (!c.failed)
        check_coverage(&c, self);
    if (c.failed)
        ntf_config_destroy(&self);
    return self;
}

ntf_config_t *ntf_config_load(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "通知配置错误 (notify config error) %s line %d: %s", path, je.line,
                 je.text);
        return NULL;
    }
    return from_json(root, err, errlen);
}

ntf_config_t *ntf_config_parse(const char *text, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "通知配置错误 (notify config error) line %d: %s", je.line, je.text);
        return NULL;
    }
    return from_json(root, err, errlen);
}

void ntf_config_destroy(ntf_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    json_decref((*self_p)->root);
    free(*self_p);
    *self_p = NULL;
}

const ntf_delivery_cfg_t *ntf_config_delivery(const ntf_config_t *self)
{
    return &self->delivery;
}

int ntf_config_route(const ntf_config_t *self, const char *kind, ntf_role_t roles[NTF_NROLES])
{
    json_t *routes = json_object_get(self->root, "routes");
    json_t *list = json_object_get(routes, kind);
    if (!list)
        list = json_object_get(routes, "*");
    if (!list)
        return -1;
    int n = 0;
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
    {
        if (n < NTF_NROLES)
            roles[n++] = (ntf_role_t)role_of(json_string_value(r));
    }
    return n;
}

static const char *part_of(json_t *kindobj, const char *channel, const char *role,
                           const char *part)
{
    char key[MAX_KEY];
    if (role) {
        snprintf(key, sizeof key, "%s@%s", channel, role);
        const char *s = json_string_value(json_object_get(json_object_get(kindobj, key), part));
        if (s)
            return s;
    }
    return json_string_value(json_object_get(json_object_get(kindobj, channel), part));
}

const char *ntf_config_template(const ntf_config_t *self, const char *kind, const char *channel,
                                ntf_role_t role, const char *part)
{
    json_t *t = json_object_get(self->root, "templates");
    const char *rn = ntf_role_name(role);
    const char *s = part_of(json_object_get(t, kind), channel, rn, part);
    return s ? s : part_of(json_object_get(t, "*"), channel, rn, part);
}

const char *ntf_config_recipient_name(const ntf_config_t *self, ntf_role_t role)
{
    const char *s = json_string_value(
        json_object_get(json_object_get(self->root, "recipients"), ntf_role_name(role)));
    return s ? s : "{code}";
}

const char *ntf_config_grade(const ntf_config_t *self, const char *grade)
{
    const char *s = grade && *grade ? json_string_value(json_object_get(
                                          json_object_get(self->root, "grades"), grade))
                                    : NULL;
    return s ? s : grade ? grade : "";
}

int64_t ntf_backoff_ms(const ntf_delivery_cfg_t *d, int attempts)
{
    int64_t wait = d->backoff_base_ms;
    for (int i = 1; i < attempts && wait < d->backoff_max_ms; i++)
        wait *= 2;
    return wait < d->backoff_max_ms ? wait : d->backoff_max_ms;
}
