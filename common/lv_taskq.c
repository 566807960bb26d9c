#define _POSIX_C_SOURCE 200809L
#include "lv_taskq.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"

#define KEY_MAX 160
#define BUILT_KEY "levee:q:built"

static const char *const s_lanes[3] = {"red", "orange", "yellow"};

/* KEYS: ids hash, red, orange, yellow streams. ARGV: task_id, lane, then
 * the entry's fields. An entry already in the right lane is left alone; one
 * in another lane moves (its grade changed). */
static const char *const s_add_lua =
    "local lanes = {red = KEYS[2], orange = KEYS[3], yellow = KEYS[4]}\n"
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if cur then\n"
    "  local sep = string.find(cur, '|', 1, true)\n"
    "  local lane, id = string.sub(cur, 1, sep - 1), string.sub(cur, sep + 1)\n"
    "  if lane == ARGV[2] then return 0 end\n"
    "  redis.call('XACK', lanes[lane], '" LV_TASKQ_GROUP "', id)\n"
    "  redis.call('XDEL', lanes[lane], id)\n"
    "end\n"
    "local key = lanes[ARGV[2]]\n"
    "redis.pcall('XGROUP', 'CREATE', key, '" LV_TASKQ_GROUP "', '0', 'MKSTREAM')\n"
    "local id = redis.call('XADD', key, '*', 'task_id', ARGV[1], 'case_id', ARGV[3],\n"
    "  'household_id', ARGV[4], 'kind', ARGV[5], 'grade', ARGV[6], 'due_ms', ARGV[7])\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. id)\n"
    "return 1\n";

/* KEYS as above. ARGV: task_id. */
static const char *const s_ack_lua =
    "local lanes = {red = KEYS[2], orange = KEYS[3], yellow = KEYS[4]}\n"
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not cur then return 0 end\n"
    "local sep = string.find(cur, '|', 1, true)\n"
    "local lane, id = string.sub(cur, 1, sep - 1), string.sub(cur, sep + 1)\n"
    "redis.call('XACK', lanes[lane], '" LV_TASKQ_GROUP "', id)\n"
    "redis.call('XDEL', lanes[lane], id)\n"
    "redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "return 1\n";

typedef struct {
    char ids[KEY_MAX];
    char lane[3][KEY_MAX];
} keys_t;

static void make_keys(const char *inv, keys_t *k)
{
    snprintf(k->ids, sizeof k->ids, "levee:q:{%s}:ids", inv);
    for (int i = 0; i < 3; i++)
        snprintf(k->lane[i], sizeof k->lane[i], "levee:q:{%s}:%s", inv, s_lanes[i]);
}

static const char *lane_of(const char *grade)
{
    return grade && (!strcmp(grade, "red") || !strcmp(grade, "orange")) ? grade : "yellow";
}

static int append_op(redisContext *c, const lv_taskq_op_t *op)
{
    keys_t k;
    make_keys(op->investigator, &k);
    if (op->op == LV_TASKQ_RESET)
        return redisAppendCommand(c, "DEL %s %s %s %s", k.ids, k.lane[0], k.lane[1], k.lane[2]);
    const lv_taskq_item_t *it = &op->item;
    if (op->op == LV_TASKQ_ACK)
        return redisAppendCommand(c, "EVAL %s 4 %s %s %s %s %s", s_ack_lua, k.ids, k.lane[0],
                                  k.lane[1], k.lane[2], it->task_id);
    char due[24];
    snprintf(due, sizeof due, "%lld", (long long)it->due_ms);
    const char *argv[] = {"EVAL",         s_add_lua,    "4",         k.ids,
                          k.lane[0],      k.lane[1],    k.lane[2],   it->task_id,
                          lane_of(it->grade), it->case_id, it->household_id, it->kind,
                          it->grade ? it->grade : "", due};
    return redisAppendCommandArgv(c, (int)(sizeof argv / sizeof argv[0]), argv, NULL);
}

int lv_taskq_apply(lv_redis_t *r, const lv_taskq_op_t *ops, size_t n)
{
    redisContext *c = lv_redis_context(r);
    if (!c)
        return LV_ETRANSIENT;
    for (size_t i = 0; i < n; i++)
        if (append_op(c, &ops[i]) != REDIS_OK)
            return lv_redis_reset(r);
    int e = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep)
            return lv_redis_reset(r);
        if (rep->type == REDIS_REPLY_ERROR)
            e = LV_ETRANSIENT; /* e.g. out of memory: try again later */
        freeReplyObject(rep);
    }
    return e;
}

int lv_taskq_built(lv_redis_t *r, bool *built)
{
    *built = false;
    redisContext *c = lv_redis_context(r);
    if (!c)
        return LV_ETRANSIENT;
    redisReply *rep = redisCommand(c, "EXISTS " BUILT_KEY);
    if (!rep)
        return lv_redis_reset(r);
    int e = rep->type == REDIS_REPLY_INTEGER ? 0 : LV_ETRANSIENT;
    *built = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return e;
}

int lv_taskq_set_built(lv_redis_t *r, bool built)
{
    redisContext *c = lv_redis_context(r);
    if (!c)
        return LV_ETRANSIENT;
    redisReply *rep = built ? redisCommand(c, "SET " BUILT_KEY " 1") : redisCommand(c, "DEL " BUILT_KEY);
    if (!rep)
        return lv_redis_reset(r);
    int e = rep->type == REDIS_REPLY_ERROR ? LV_ETRANSIENT : 0;
    freeReplyObject(rep);
    return e;
}

static const char *field(const redisReply *kv, const char *name)
{
    for (size_t i = 0; kv && i + 1 < kv->elements; i += 2)
        if (kv->element[i]->type == REDIS_REPLY_STRING && !strcmp(kv->element[i]->str, name) &&
            kv->element[i + 1]->type == REDIS_REPLY_STRING)
            return kv->element[i + 1]->str;
    return "";
}

/* One lane's XREADGROUP answer: [[stream, [[id, [k, v, ...]], ...]]] or nil. */
static void each_entry(const redisReply *rep, lv_taskq_fn fn, void *ctx)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
        return;
    const redisReply *s = rep->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements < 2 || s->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    const redisReply *entries = s->element[1];
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const redisReply *kv = e->element[1]->type == REDIS_REPLY_ARRAY ? e->element[1] : NULL;
        if (!kv)
            continue; /* deleted after delivery: nothing to show */
        lv_taskq_item_t it = {.task_id = field(kv, "task_id"), .case_id = field(kv, "case_id"),
                              .household_id = field(kv, "household_id"), .kind = field(kv, "kind"),
                              .grade = field(kv, "grade"),
                              .due_ms = strtoll(field(kv, "due_ms"), NULL, 10)};
        fn(ctx, e->element[0]->str, &it);
    }
}

int lv_taskq_read(lv_redis_t *r, const char *investigator, size_t max, lv_taskq_fn fn, void *ctx)
{
    redisContext *c = lv_redis_context(r);
    if (!c)
        return LV_ETRANSIENT;
    keys_t k;
    make_keys(investigator, &k);
    char count[24]; /* hiredis formats %s and %b only, portably */
    snprintf(count, sizeof count, "%zu", max);
    /* Per lane: make sure the group exists, deliver what is new, then list
     * everything delivered and not acknowledged. */
    for (int i = 0; i < 3; i++) {
        if (redisAppendCommand(c, "XGROUP CREATE %s " LV_TASKQ_GROUP " 0 MKSTREAM", k.lane[i]) !=
                REDIS_OK ||
            redisAppendCommand(c, "XREADGROUP GROUP " LV_TASKQ_GROUP " %s COUNT %s STREAMS %s >",
                               investigator, count, k.lane[i]) != REDIS_OK ||
            redisAppendCommand(c, "XREADGROUP GROUP " LV_TASKQ_GROUP " %s COUNT %s STREAMS %s 0",
                               investigator, count, k.lane[i]) != REDIS_OK)
            return lv_redis_reset(r);
    }
    redisReply *pending[3] = {NULL, NULL, NULL};
    int e = 0;
    for (int i = 0; i < 9; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
            e = lv_redis_reset(r);
            break;
        }
        if (i % 3 == 2 && rep->type != REDIS_REPLY_ERROR)
            pending[i / 3] = rep;
        else
            freeReplyObject(rep);
    }
    for (int i = 0; i < 3; i++) {
        if (!e)
            each_entry(pending[i], fn, ctx);
        if (pending[i])
            freeReplyObject(pending[i]);
    }
    return e;
}
