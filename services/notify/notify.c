/* Who must know: the town's civil-affairs office (民政办, the 9-digit town
 * code) and the village cadre (the 12-digit village code) learn of every
 * case opened, approved or paid; a rejection goes to the village. One inbox
 * row per event and recipient, so a redelivered event changes nothing. */
#define _POSIX_C_SOURCE 200809L
#include "notify.h"

#include <stdio.h>
#include <string.h>

#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_pg.h"
#include "lv_region.h"
#include "lv_time.h"

#define MAX_TEXT 2000

static int deliver(PGconn *pg, const Levee__Event *ev, const char *recipient, const char *name,
                   const char *title, const char *body)
{
    char county[7], now[24];
    snprintf(county, sizeof county, "%.6s", ev->region_code);
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *p[8] = {ev->event_id, recipient, name, county, ev->kind, title, body, now};
    return lv_pg_cmd(pg,
                     "INSERT INTO inbox (event_id, recipient, recipient_name, county, kind, title, "
                     "body, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                     "ON CONFLICT DO NOTHING",
                     8, p);
}

int ntf_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    ntf_t *n = ctx;
    lv_arena_reset(n->arena);
    if (strcmp(msg->type, "event") != 0) {
        snprintf(reply->error, sizeof reply->error, "unknown message type %s", msg->type);
        return LV_EINVAL;
    }
    Levee__Event *ev = levee__event__unpack(lv_arena_allocator(n->arena), msg->len, msg->body);
    if (!ev) {
        snprintf(reply->error, sizeof reply->error, "not an Event (bad protobuf)");
        return LV_EINVAL;
    }
    const char *why = NULL;
    char region[13];
    if (!*ev->event_id || !*ev->kind || !*ev->title)
        why = "event without id, kind or title";
    else if (lv_region_parse(ev->region_code, strlen(ev->region_code), region, &why) != 0)
        ;
    else if (strlen(ev->title) > MAX_TEXT || strlen(ev->body) > MAX_TEXT)
        why = "event text too long";
    if (why) {
        snprintf(reply->error, sizeof reply->error, "%s", why);
        return LV_EINVAL;
    }
    /* Masked before anything is stored: the inbox is read by many people. */
    char title[MAX_TEXT + 1], body[MAX_TEXT + 1];
    snprintf(title, sizeof title, "%s", ev->title);
    snprintf(body, sizeof body, "%s", ev->body);
    lv_mask_text(title);
    lv_mask_text(body);

    char town[24], village[24], town_name[64], village_name[64];
    snprintf(town, sizeof town, "town:%.9s", ev->region_code);
    snprintf(village, sizeof village, "village:%.12s", ev->region_code);
    snprintf(town_name, sizeof town_name, "%.9s 乡镇民政办", ev->region_code);
    snprintf(village_name, sizeof village_name, "%.12s 村委会 (村干部)", ev->region_code);
    int e = 0;
    if (strcmp(ev->kind, "case_rejected") != 0)
        e = deliver(pg, ev, town, town_name, title, body);
    if (!e)
        e = deliver(pg, ev, village, village_name, title, body);
    if (!e)
        snprintf(reply->detail, sizeof reply->detail, "delivered %s", ev->event_id);
    return e;
}
