#define _POSIX_C_SOURCE 200809L
#include "lv_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "lv_time.h"

static char s_service[32] = "levee";

void lv_log_init(const char *service)
{
    snprintf(s_service, sizeof s_service, "%s", service);
    setvbuf(stderr, NULL, _IOLBF, 0);
}

void lv_log(const char *level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* jansson does the JSON escaping so a message can never break the line format. */
    json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "ts", (json_int_t)lv_now_ms(), "level", level,
                          "svc", s_service, "msg", msg);
    if (!o) {
        fprintf(stderr, "{\"level\":\"%s\",\"msg\":\"(unprintable)\"}\n", level);
        return;
    }
    char *line = json_dumps(o, JSON_COMPACT);
    if (line) {
        fprintf(stderr, "%s\n", line);
        free(line);
    }
    json_decref(o);
}
