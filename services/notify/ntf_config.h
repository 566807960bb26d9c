/* The notify config (config/notify.json by default): routes from event kind
 * to recipient roles, the Chinese wording per event kind, channel and role,
 * recipients' display names, and the delivery policy (attempts, backoff,
 * batch, timeouts, rate). Validated as a whole at load, so a bad edit is
 * refused with the key path and the running config stays. */
#ifndef NTF_CONFIG_H
#define NTF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    NTF_TOWN = 0,     /* the town's 民政办: town:<9 digits> */
    NTF_VILLAGE,      /* the village cadre: village:<12 digits> */
    NTF_COUNTY,       /* the county office: county:<6 digits> */
    NTF_INVESTIGATOR, /* the event's assignee: investigator:<id> */
    NTF_SCHOOL,       /* a student's school: school:<name> */
    NTF_HOUSEHOLD,    /* the household (its head): household:<id> */
    NTF_NROLES
} ntf_role_t;

/* "town", "village", ... */
const char *ntf_role_name(ntf_role_t role);

typedef struct {
    int max_attempts;        /* a delivery is dead-lettered after this many failed attempts */
    int64_t backoff_base_ms; /* wait after the first failure, doubled after each next one */
    int64_t backoff_max_ms;  /* ... up to this */
    int batch;               /* deliveries claimed per scan */
    int max_inflight;        /* requests open at once */
    int connect_timeout_ms;
    int timeout_ms;          /* a whole request, so a dead peer never holds a slot for long */
    int rate_per_s;          /* per channel, unless the channel sets its own */
} ntf_delivery_cfg_t;

typedef struct ntf_config ntf_config_t;

/* Loads and validates a file; NULL with a message naming the line or the key
 * path on error. */
ntf_config_t *ntf_config_load(const char *path, char *err, size_t errlen);
/* The same from text (tests). */
ntf_config_t *ntf_config_parse(const char *text, char *err, size_t errlen);
void ntf_config_destroy(ntf_config_t **self_p);

const ntf_delivery_cfg_t *ntf_config_delivery(const ntf_config_t *self);

/* The roles an event kind goes to, in the file's order, into roles; returns
 * how many, or -1 when neither the kind nor "*" has a route. */
int ntf_config_route(const ntf_config_t *self, const char *kind, ntf_role_t roles[NTF_NROLES]);

/* One part ("title"/"body" for inbox, "text" for webhook, "subject"/"body"
 * for email) of the template for kind, channel and role: the kind's
 * "channel@role", the kind's "channel", then the same under "*". Never NULL
 * for a routed kind (checked at load). */
const char *ntf_config_template(const ntf_config_t *self, const char *kind, const char *channel,
                                ntf_role_t role, const char *part);

/* The display-name template of a role ({code} is the part after "role:"). */
const char *ntf_config_recipient_name(const ntf_config_t *self, ntf_role_t role);

/* The Chinese name of a grade ("red" -> 红色报警); an unknown grade as it is. */
const char *ntf_config_grade(const ntf_config_t *self, const char *grade);

/* The wait before the next attempt after `attempts` failed ones (>= 1):
 * base x 2^(attempts-1), at most the maximum. */
int64_t ntf_backoff_ms(const ntf_delivery_cfg_t *d, int attempts);

/* The placeholders a message template may use. */
extern const char *const ntf_template_vars[];

#endif
