/* Reconciliation: the checks that prove the fund ledger (SPEC: Σ debits =
 * Σ credits, each account equals its transfers, no fund below zero, every
 * payout matches its transfers and its case, no household over its cap). */
#ifndef LV_RECONCILE_H
#define LV_RECONCILE_H

#include <jansson.h>
#include <libpq-fe.h>

#include "lv_policy.h"

/* Runs every check in one read-only snapshot. On success *out is a new JSON
 * array of {"check", "ok", "findings": [text...]} and *failed the number of
 * checks with findings. Returns 0 or an lv_err code (nothing allocated). */
int lv_reconcile(PGconn *pg, const lv_policy_version_t *v, json_t **out, int *failed);

#endif
