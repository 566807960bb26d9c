/* The fund ledger: double-entry accounts, immutable transfers, payouts from
 * the policy's formulas, never negative, never twice. */
#ifndef LED_LEDGER_H
#define LED_LEDGER_H

#include <libpq-fe.h>

#include "lv_arena.h"
#include "lv_bus.h"
#include "lv_service.h"

typedef struct {
    lv_service_t *svc;
    lv_arena_t *arena;
    char budgets_key[96]; /* led_budget_key of the budgets last synced */
} led_t;

/* Creates the policy's fund accounts and posts their opening allocations,
 * once (the opening transfer's id is the fund's), then the county accounts
 * of the funds' budgets (budget.h). */
int led_seed_funds(led_t *l, PGconn *pg, const lv_policy_version_t *v);

/* The consumer handler: "payout" requests from dispatch, "cmd" from people
 * (pay, void, donate, relief). */
int led_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply);

/* Voids reservations that timed out. Returns how many ms the loop may sleep. */
int led_tick(void *ctx, lv_service_t *svc);

#endif
