#define _POSIX_C_SOURCE 200809L
#include "lv_redis.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"
#include "lv_log.h"
#include "lv_time.h"

struct lv_redis {
    char host[64];
    int port;
    redisContext *ctx;
    int64_t retry_after_ms; /* back off reconnects while Redis is down */
};

lv_redis_t *lv_redis_new(const char *host, int port)
{
    lv_redis_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->host, sizeof self->host, "%s", host);
    self->port = port;
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
        lv_warn("redis %s:%d unavailable (%s); postgres answers instead", self->host,
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
