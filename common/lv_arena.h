/* A bump arena for decoding a batch: every allocation is freed at once by
 * lv_arena_reset, so no per-field free can be forgotten. */
#ifndef LV_ARENA_H
#define LV_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct lv_arena lv_arena_t;

lv_arena_t *lv_arena_new(size_t chunk_bytes);
void lv_arena_destroy(lv_arena_t **self_p);
void *lv_arena_alloc(lv_arena_t *self, size_t n);
/* Frees everything allocated since the last reset; keeps the first chunk. */
void lv_arena_reset(lv_arena_t *self);
/* A protobuf-c allocator over the arena (free is a no-op). */
ProtobufCAllocator *lv_arena_allocator(lv_arena_t *self);

#endif
