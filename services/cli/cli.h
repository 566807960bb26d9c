/* levee-cli: what a person at a terminal does with Levee. Shared context,
 * argument parsing and output helpers of the command modules. */
#ifndef CLI_H
#define CLI_H

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli_table.h"
#include "lv_cfg.h"

/* Exit codes, part of the command line's contract. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1  /* the operation failed or was refused */
#define CLI_EXIT_USAGE 2 /* bad usage */
#define CLI_EXIT_DOWN 3  /* Postgres or dispatch could not be reached, or a wait timed out */

#define CLI_MAX_POS 8
#define CLI_MAX_OPTS 16

/* Default and largest row count of list commands. */
#define CLI_LIST_DEFAULT 200
#define CLI_LIST_MAX 100000

typedef struct {
    lv_cfg_t cfg;
    bool json;  /* --json: exactly one JSON document on stdout */
    PGconn *pg; /* connected on first use */
} cli_t;

/* An option a command accepts: "--name" with a value or a bare flag. */
typedef struct {
    const char *name;
    bool has_value;
} cli_opt_t;

typedef struct {
    const char *pos[CLI_MAX_POS];
    int npos;
    const char *opt_name[CLI_MAX_OPTS];
    const char *opt_val[CLI_MAX_OPTS]; /* "" for a flag */
    int nopts;
} cli_args_t;

/* The value of an option, or NULL when it was not given. */
const char *cli_opt(const cli_args_t *a, const char *name);

/* Reports an error and returns code: {"error": ...} on stdout with --json,
 * the text on stderr otherwise. */
int cli_fail(cli_t *cli, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The Postgres connection, connected on first use; NULL after reporting
 * "could not reach Postgres" (the caller returns CLI_EXIT_DOWN). */
PGconn *cli_pg(cli_t *cli);

/* Maps an lv_pg_* error to an exit code, reporting it. */
int cli_pg_fail(cli_t *cli, int e);

/* Strict integer parsing for arguments: the whole string, within lo..hi. */
int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* Sleeps ms milliseconds. */
void cli_sleep_ms(int ms);

/* ---- text helpers (cli_text.c) --------------------------------------- */

/* Display width of UTF-8 text on a terminal: East Asian wide characters
 * count 2, combining marks 0, others 1. */
int cli_text_width(const char *s);

/* Writes s padded with spaces to width display columns. */
void cli_put_padded(FILE *out, const char *s, int width, bool right);

/* Copies s into out, cut at max_width display columns with "…" when longer;
 * control characters become spaces. out must hold strlen(s) + 4 bytes. */
void cli_text_fit(const char *s, int max_width, char *out);

/* 元 with thousands separators, e.g. 450000000 -> "4,500,000.00". Integer
 * arithmetic only. */
void cli_yuan(int64_t fen, char *out, size_t n);

/* An integer with thousands separators. */
void cli_count(int64_t v, char *out, size_t n);

/* Masks: ID numbers keep the first 6 and last 4, phones the first 3 and last
 * 4. out must hold strlen(s) + 1 bytes. */
void cli_mask_idnum(const char *s, char *out);
void cli_mask_phone(const char *s, char *out);
/* Free text: digit runs that look like an ID number or a mobile number are
 * masked in place. */
void cli_mask_free(char *s);

/* Prints "label    value" lines with labels padded to a common width. */
void cli_kv(FILE *out, int indent, const char *label, int label_width, const char *value);

/* ---- messages to services (cli_command.c) ----------------------------- */

struct Levee__Command;
/* Sends a command to a service and reports its answer (ok, dup, refused,
 * dead) as text or JSON; returns the exit code. */
int cli_send_command(cli_t *cli, const char *endpoint, const char *service,
                     struct Levee__Command *cmd);
struct ProtobufCMessage;
/* The same for any message: msg_id is its idempotency key, reported under
 * id_key in JSON. */
int cli_send_message(cli_t *cli, const char *endpoint, const char *service, const char *msg_id,
                     const char *type, const struct ProtobufCMessage *msg, const char *id_key);
/* "cli:" and 16 random hex characters: a command's idempotency key. */
int cli_new_cmd_id(char out[21]);
/* $USER, or "cli". */
const char *cli_default_actor(void);
/* 元 text to fen, or an exit code after reporting a bad amount. */
int cli_parse_money(cli_t *cli, const char *opt, const char *v, int64_t *fen);

/* Runs a list query and prints it like cli_res_print, with a note on
 * stderr when limit (the row limit as text, or NULL) cut it (cli_views.c). */
int cli_list(cli_t *cli, const char *sql, int n, const char *const *p, const cli_col_t *cols,
             const char *limit);

/* ---- commands ----------------------------------------------------------- */

int cli_cmd_load(cli_t *cli, const cli_args_t *a);
int cli_cmd_import(cli_t *cli, const cli_args_t *a);
int cli_cmd_rejects(cli_t *cli, const cli_args_t *a);
int cli_cmd_wait_idle(cli_t *cli, const cli_args_t *a);

int cli_cmd_investigator_add(cli_t *cli, const cli_args_t *a);
int cli_cmd_task_result(cli_t *cli, const cli_args_t *a);
int cli_cmd_step(cli_t *cli, const cli_args_t *a);
int cli_cmd_sweep(cli_t *cli, const cli_args_t *a);

int cli_cmd_cases(cli_t *cli, const cli_args_t *a);
int cli_cmd_tasks(cli_t *cli, const cli_args_t *a);
int cli_cmd_payouts(cli_t *cli, const cli_args_t *a);
int cli_cmd_funds(cli_t *cli, const cli_args_t *a);
int cli_cmd_channels(cli_t *cli, const cli_args_t *a);
int cli_cmd_export(cli_t *cli, const cli_args_t *a);
int cli_cmd_dead_letters(cli_t *cli, const cli_args_t *a);
int cli_cmd_replay(cli_t *cli, const cli_args_t *a);
int cli_cmd_inbox(cli_t *cli, const cli_args_t *a);
int cli_cmd_household(cli_t *cli, const cli_args_t *a);
int cli_cmd_summary(cli_t *cli, const cli_args_t *a);

int cli_cmd_pay(cli_t *cli, const cli_args_t *a);
int cli_cmd_void(cli_t *cli, const cli_args_t *a);
int cli_cmd_donate(cli_t *cli, const cli_args_t *a);
int cli_cmd_relief(cli_t *cli, const cli_args_t *a);
int cli_cmd_reconcile(cli_t *cli, const cli_args_t *a);
int cli_cmd_medcalc(cli_t *cli, const cli_args_t *a);
int cli_cmd_payout_report(cli_t *cli, const cli_args_t *a);

/* Notification channels (cli_notify.c). */
int cli_cmd_channel(cli_t *cli, const cli_args_t *a);
int cli_cmd_subscribe(cli_t *cli, const cli_args_t *a);
int cli_cmd_unsubscribe(cli_t *cli, const cli_args_t *a);
int cli_cmd_subscriptions(cli_t *cli, const cli_args_t *a);
int cli_cmd_deliveries(cli_t *cli, const cli_args_t *a);
int cli_cmd_notify_test(cli_t *cli, const cli_args_t *a);

/* --limit as text (cli_views.c). */
int cli_parse_limit(cli_t *cli, const cli_args_t *a, char out[24]);
int cli_cmd_token(cli_t *cli, const cli_args_t *a);
int cli_cmd_shadow(cli_t *cli, const cli_args_t *a); /* cli_shadow.c */
int cli_cmd_measure(cli_t *cli, const cli_args_t *a);
int cli_cmd_measure_delivered(cli_t *cli, const cli_args_t *a);
int cli_cmd_measures(cli_t *cli, const cli_args_t *a);
int cli_cmd_recheck_stats(cli_t *cli, const cli_args_t *a);
int cli_cmd_queue(cli_t *cli, const cli_args_t *a);
int cli_cmd_identity(cli_t *cli, const cli_args_t *a); /* cli_identity.c */

#endif
