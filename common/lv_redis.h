/* Redis as a fast path only: a dedup pre-filter, and rate windows shared by
 * several processes. Postgres stays the truth, so a Redis that is down or
 * wiped costs speed, never correctness. */
#ifndef LV_REDIS_H
#define LV_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lv_redis lv_redis_t;

lv_redis_t *lv_redis_new(const char *host, int port);
void lv_redis_destroy(lv_redis_t **self_p);

/* For each key, seen[i] = true when the key exists (it was marked after a
 * commit). One pipelined round trip. When Redis is unavailable every key is
 * reported unseen and LV_ETRANSIENT is returned. */
int lv_redis_seen(lv_redis_t *self, const char *const *keys, size_t n, bool *seen);

/* Marks keys as committed: SET key 1 NX EX ttl, pipelined. Call only after
 * the Postgres commit that made the keys true. */
int lv_redis_mark(lv_redis_t *self, const char *const *keys, size_t n, int ttl_s);

struct redisContext;

/* The connection for commands this header does not wrap (e.g. the task
 * queues of lv_taskq.h), connected on demand; NULL while Redis is
 * unavailable (a reconnect is tried at most every 2 s). After an I/O or
 * protocol error on it, call lv_redis_reset. */
struct redisContext *lv_redis_context(lv_redis_t *self);
/* Drops a broken connection; returns LV_ETRANSIENT for the caller to pass on. */
int lv_redis_reset(lv_redis_t *self);

/* A sliding-window limit shared by every process that uses the same key: at
 * most `limit` units in any `window_ms`, counted in a sorted set by Redis's
 * own clock (so the processes' clocks do not matter). */
typedef struct {
    int granted;      /* units taken */
    int64_t retry_ms; /* the window is full: ms until its oldest unit leaves; else 0 */
    uint64_t first;   /* the take's first unit, for lv_redis_window_give_back */
} lv_redis_take_t;

/* Takes up to want units in one round trip. LV_ETRANSIENT when Redis is
 * unavailable: nothing is granted, so a caller that must keep the limit
 * waits rather than guess. */
int lv_redis_window_take(lv_redis_t *self, const char *key, int limit, int window_ms, int want,
                         lv_redis_take_t *take);
/* Gives back the last `unused` units of a take (work that did not start),
 * so that other processes may use them at once. */
int lv_redis_window_give_back(lv_redis_t *self, const char *key, const lv_redis_take_t *take,
                              int unused);

#endif
