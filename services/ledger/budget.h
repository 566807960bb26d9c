/* County sub-allocations of a fund (the policy's "budgets"): one account per
 * fund and county, funded from the fund by allocation transfers and carrying
 * the fund's no-overdraw flag, so a county's payouts can never take more
 * than its budget, whatever runs at the same time. */
#ifndef LED_BUDGET_H
#define LED_BUDGET_H

#include <libpq-fe.h>
#include <stddef.h>

#include "lv_policy.h"

/* Brings every county account of v's funds to its budget, inside the
 * caller's open transaction: creates the missing accounts, allocates what a
 * budget gained and returns what a county lost (as far as it has not
 * reserved it; a county no longer in the budgets goes to 0). Each transfer
 * is new (alloc:<fund>:<county>:<n>), so the books show every change. A
 * fund that cannot cover an allocation is logged and left as it is; the
 * reconciliation reports it. Returns 0 or an lv_err code. */
int led_budget_sync(PGconn *pg, const lv_policy_version_t *v);

/* The account a payout of fund f for a household of county pays from: the
 * county's account when f has a budget for it, else the fund's. */
void led_budget_account(const lv_fund_def_t *f, const char *county, char *acc, size_t n);

/* A short key of v's budgets (version and a hash of every budget): when it
 * changes, the accounts must be synced again. */
void led_budget_key(const lv_policy_version_t *v, char *key, size_t n);

#endif
