#define _POSIX_C_SOURCE 200809L
#include "lv_redis.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lv_err.h"
#include "lv_log.h"
#include "lv_time.h"

struct lv_redis {
    char host[64];
    int port;
    redisContext *ctx;
    int64_t retry_after_ms; /* back off reconnects while Redis is down */
    char owner[48];         /* names this process's units in a rate window */
    uint64_t next_unit;
};

lv_redis_t *lv_redis_new(const char *host, int port)
{
    lv_redis_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->host, sizeof self->host, "%s", host);
    self->port = port;
    /* Unique among the processes sharing a Redis: pid and start time. */
    snprintf(self->owner, sizeof self->owner, "%ld.%lld", (long)getpid(), (long long)lv_now_ms());
    return self;
}

void lv_redis_destroy(lv_redis_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lv_redis_t *self = *self_p;
    if (self->ctx)
        redisFree(self->ctx);
    free(self);
    *self_p = NULL;
}

static int ensure(lv_redis_t *self)
{
    if (self->ctx && !self->ctx->err)
        return 0;
    if (lv_mono_ms() < self->retry_after_ms)
        return LV_ETRANSIENT;
    if (self->ctx) {
        redisFree(self->ctx);
        self->ctx = NULL;
    }
    struct timeval tv = {1, 0};
    self->ctx = redisConnectWithTimeout(self->host, self->port, tv);
    if (!self->ctx || self->ctx->err) {
        lv_warn("redis %s:%d unavailable (%s); postgres answers instead, rate windows wait",
                self->host,
                self->port, self->ctx ? self->ctx->errstr : "alloc");
        self->retry_after_ms = lv_mono_ms() + 2000;
        return LV_ETRANSIENT;
    }
    redisSetTimeout(self->ctx, tv);
    return 0;
}

static int drop(lv_redis_t *self)
{
    lv_warn("redis error: %s", self->ctx ? self->ctx->errstr : "?");
    if (self->ctx) {
        redisFree(self->ctx);
        self->ctx = NULL;
    }
    self->retry_after_ms = lv_mono_ms() + 2000;
    return LV_ETRANSIENT;
}

int lv_redis_seen(lv_redis_t *self, const char *const *keys, size_t n, bool *seen)
{
    for (size_t i = 0; i < n; i++)
        seen[i] = false;
    if (ensure(self))
        return LV_ETRANSIENT;
    for (size_t i = 0; i < n; i++)
        if (redisAppendCommand(self->ctx, "EXISTS %s", keys[i]) != REDIS_OK)
            return drop(self);
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(self->ctx, (void **)&r) != REDIS_OK || !r)
            return drop(self);
        seen[i] = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
    }
    return 0;
}

int lv_redis_mark(lv_redis_t *self, const char *const *keys, size_t n, int ttl_s)
{
    if (ensure(self))
        return LV_ETRANSIENT;
    for (size_t i = 0; i < n; i++)
        if (redisAppendCommand(self->ctx, "SET %s 1 NX EX %d", keys[i], ttl_s) != REDIS_OK)
            return drop(self);
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(self->ctx, (void **)&r) != REDIS_OK || !r)
            return drop(self);
        freeReplyObject(r);
    }
    return 0;
}

struct redisContext *lv_redis_context(lv_redis_t *self)
{
    return ensure(self) ? NULL : self->ctx;
}

int lv_redis_reset(lv_redis_t *self)
{
    return drop(self);
}

/* ---- shared rate windows --------------------------------------------------- */

/* KEYS[1] the window; ARGV limit, window ms, want, owner, first unit.
 * Returns {granted, ms until the oldest unit leaves a full window}. */
static const char WINDOW_TAKE[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local limit, win = tonumber(ARGV[1]), tonumber(ARGV[2]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win) "
    "local take = math.min(limit - redis.call('ZCARD', KEYS[1]), tonumber(ARGV[3])) "
    "if take < 0 then take = 0 end "
    "for i = 0, take - 1 do "
    "  redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. (tonumber(ARGV[5]) + i)) "
    "end "
    "redis.call('PEXPIRE', KEYS[1], win * 2) "
    "local wait = 0 "
    "if redis.call('ZCARD', KEYS[1]) >= limit then "
    "  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES') "
    "  if oldest[2] then wait = tonumber(oldest[2]) + win - now + 1 end "
    "end "
    "return {take, wait}";

int lv_redis_window_take(lv_redis_t *self, const char *key, int limit, int window_ms, int want,
                         lv_redis_take_t *take)
{
    memset(take, 0, sizeof *take);
    if (want <= 0 || limit <= 0)
        return 0;
    if (ensure(self))
        return LV_ETRANSIENT;
    take->first = self->next_unit;
    char slimit[16], swin[16], swant[16], sfirst[24];
    snprintf(slimit, sizeof slimit, "%d", limit);
    snprintf(swin, sizeof swin, "%d", window_ms);
    snprintf(swant, sizeof swant, "%d", want);
    snprintf(sfirst, sizeof sfirst, "%" PRIu64, take->first);
    const char *argv[] = {"EVAL", WINDOW_TAKE, "1", key, slimit, swin, swant, self->owner, sfirst};
    redisReply *r = redisCommandArgv(self->ctx, 9, argv, NULL);
    if (!r)
        return drop(self);
    int e = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER) {
        take->granted = (int)r->element[0]->integer;
        take->retry_ms = r->element[1]->integer;
        self->next_unit += (uint64_t)take->granted;
    } else {
        lv_warn("redis rate window %s: %s", key, r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        e = LV_ETRANSIENT;
    }
    freeReplyObject(r);
    return e;
}

int lv_redis_window_give_back(lv_redis_t *self, const char *key, const lv_redis_take_t *take,
                              int unused)
{
    if (unused > take->granted)
        unused = take->granted;
    if (unused <= 0)
        return 0;
    if (ensure(self))
        return LV_ETRANSIENT;
    /* One ZREM of every unit given back, each "owner:unit". */
    size_t n = 2 + (size_t)unused;
    const char **argv = calloc(n, sizeof *argv);
    char *names = calloc((size_t)unused, 72);
    int e = 0;
    if (!argv || !names) {
        e = LV_ENOMEM;
        goto out;
    }
    argv[0] = "ZREM";
    argv[1] = key;
    for (int i = 0; i < unused; i++) {
        char *name = names + (size_t)i * 72;
        snprintf(name, 72, "%s:%" PRIu64, self->owner,
                 take->first + (uint64_t)(take->granted - unused + i));
        argv[2 + i] = name;
    }
    redisReply *r = redisCommandArgv(self->ctx, (int)n, argv, NULL);
    if (!r) {
        e = drop(self);
        goto out;
    }
    freeReplyObject(r);
out:
    free(argv);
    free(names);
    return e;
}
