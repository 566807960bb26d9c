#include "lv_arena.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    max_align_t data[];
} chunk_t;

struct lv_arena {
    chunk_t *head;
    size_t chunk_bytes;
    ProtobufCAllocator alloc;
};

static void *pb_alloc(void *ud, size_t n)
{
    return lv_arena_alloc(ud, n);
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    (void)p;
}

static chunk_t *chunk_new(size_t size)
{
    chunk_t *c = malloc(sizeof *c + size);
    if (!c)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

lv_arena_t *lv_arena_new(size_t chunk_bytes)
{
    lv_arena_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->chunk_bytes = chunk_bytes < 4096 ? 4096 : chunk_bytes;
    self->head = chunk_new(self->chunk_bytes);
    if (!self->head) {
        free(self);
        return NULL;
    }
    self->alloc.alloc = pb_alloc;
    self->alloc.free = pb_free;
    self->alloc.allocator_data = self;
    return self;
}

void *lv_arena_alloc(lv_arena_t *self, size_t n)
{
    size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    chunk_t *c = self->head;
    if (c->size - c->used < n) {
        size_t size = n > self->chunk_bytes ? n : self->chunk_bytes;
        chunk_t *nc = chunk_new(size);
        if (!nc)
            return NULL;
        nc->next = c;
        self->head = nc;
        c = nc;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

void lv_arena_reset(lv_arena_t *self)
{
    chunk_t *c = self->head;
    while (c->next) {
        chunk_t *next = c->next;
        free(c);
        c = next;
    }
    c->used = 0;
    self->head = c;
}

void lv_arena_destroy(lv_arena_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lv_arena_reset(*self_p);
    free((*self_p)->head);
    free(*self_p);
    *self_p = NULL;
}

ProtobufCAllocator *lv_arena_allocator(lv_arena_t *self)
{
    return &self->alloc;
}
