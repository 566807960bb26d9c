/* Identity matching in the record path: a row that came without a valid ID
 * number (Record.id_invalid) is matched with lv_ident against the registry
 * persons of its village (or county) and either linked, as if it had the
 * person's ID, or held in the review queue (identity_review). A review that
 * a person resolved with a link is fed on through matching once. */
#ifndef MAT_IDENTIFY_H
#define MAT_IDENTIFY_H

#include <libpq-fe.h>
#include <stddef.h>

#include "levee.pb-c.h"
#include "lv_arena.h"
#include "lv_ident.h"
#include "lv_service.h"

typedef struct mat_ident mat_ident_t;

typedef struct {
    /* LEVEE_IDENT_LINK_THRESHOLD (default 0.80) and LEVEE_IDENT_MIN_MARGIN
     * (default 0.05): a link needs this score and this lead over the
     * runner-up; anything less goes to review. */
    lv_ident_params_t params;
    /* LEVEE_IDENT_CACHE_PERSONS (default 2,000,000): registry persons kept
     * in the cached candidate sets of one process, least recently used
     * sets dropped first. */
    size_t cache_persons;
} mat_ident_cfg_t;

/* Reads the configuration from the environment; -1 after printing what is
 * wrong with a value. */
int mat_ident_cfg_load(mat_ident_cfg_t *cfg);

mat_ident_t *mat_ident_new(const mat_ident_cfg_t *cfg);
void mat_ident_destroy(mat_ident_t **self_p);

/* The hook of the record path, before records are linked by ID number, in
 * the consumer's transaction. A registry batch bumps the versions of the
 * villages and counties it touches (cached sets are rebuilt). In any other
 * batch each record with id_invalid is matched: linked (its id_number set,
 * strings in arena, its typed row updated, identity_link and a timeline row
 * written) or held (an identity_review row, removed from b). Returns 0 or an
 * lv error with err set. */
int mat_identify(mat_ident_t *self, PGconn *pg, Levee__RecordBatch *b, lv_arena_t *arena,
                 char *err, size_t errlen);

#endif
