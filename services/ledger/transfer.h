/* Transfers between accounts, TigerBeetle's way: a transfer is immutable and
 * its client-chosen id is its idempotency key; a two-phase transfer reserves
 * (pending) and is resolved once by a post or a void that names it; an
 * account with flag 1 never has debits (posted + pending) above its posted
 * credits. Every check runs in the same transaction that moves the money. */
#ifndef LED_TRANSFER_H
#define LED_TRANSFER_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#define LED_ID_MAX 127 /* transfer and account ids */

typedef enum { LED_SINGLE, LED_PENDING, LED_POST, LED_VOID } led_phase_t;

typedef struct {
    const char *id;         /* the idempotency key; ids are at most LED_ID_MAX bytes */
    const char *debit;      /* account ids; for post/void taken from the pending one */
    const char *credit;
    const char *kind;       /* opening / payout / donation / allocation / correction */
    const char *pending_id; /* post and void: the pending transfer */
    const char *note;       /* may be NULL */
    int64_t amount_fen;     /* > 0; post and void: 0 means the pending amount */
    led_phase_t phase;
    int64_t expires_ms;     /* pending: when the reservation lapses; 0 never */
    int64_t now_ms;
} led_transfer_t;

/* Applies t inside the caller's open transaction (under a savepoint, so a
 * refusal leaves the transaction usable). Returns 0 when applied; LV_EDUP
 * when this id was applied before with the same content (no effect);
 * LV_EINVAL when the id was used with other content or t is malformed;
 * LV_ESTATE when refused (not enough money, no such account, the pending
 * transfer already resolved or expired); LV_ETRANSIENT to retry. err says
 * why in words. */
int led_transfer_apply(PGconn *pg, const led_transfer_t *t, char *err, size_t errlen);

/* The pending transfers whose reservation lapsed by now_ms, oldest first, at
 * most limit: their ids go into ids (caller PQclear's *res, column 0). */
int led_expired(PGconn *pg, int64_t now_ms, int limit, PGresult **res);

/* The result of one transfer of a batch. */
typedef struct {
    int code;      /* as led_transfer_apply: 0, LV_EDUP, LV_EINVAL, LV_ESTATE */
    char why[128]; /* for a refusal */
} led_result_t;

/* Applies n transfers inside the caller's open transaction with a fixed
 * number of statements, whatever n: the involved accounts are locked (in id
 * order) and read, every transfer is decided in order against running
 * balances (so exactly the affordable ones pass, as if applied one by one),
 * then the accepted ones are inserted and the accounts updated in one
 * statement each. results[i] tells each transfer's fate. Returns 0, or an
 * error for the whole batch (nothing applied; LV_ETRANSIENT to retry). */
int led_transfer_batch(PGconn *pg, const led_transfer_t *t, size_t n, led_result_t *results);

#endif
