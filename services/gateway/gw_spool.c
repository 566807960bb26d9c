/* A posted feed goes to a file under the stack's home, where ingest reads it
 * as it reads a file given to `levee load`. A GB18030 body is converted to
 * UTF-8 on the way, in bounded chunks; a character split between two chunks
 * is carried over. The file is synced before its import is queued. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw.h"
#include "lv_err.h"
#include "lv_time.h"

#define CARRY_MAX 8 /* a GB18030 character is at most 4 bytes */
#define OUT_CHUNK 16384

struct gw_spool {
    char path[1400];
    int fd;
    iconv_t cd; /* (iconv_t)-1 when no conversion */
    char carry[CARRY_MAX];
    size_t ncarry;
    long long in_bytes; /* bytes as received */
};

gw_spool_t *gw_spool_new(const char *dir, const char *source, bool gb18030)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return NULL;
    gw_spool_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->fd = -1;
    self->cd = (iconv_t)-1;
    unsigned char rnd[6];
    char hex[13];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    snprintf(self->path, sizeof self->path, "%s/%lld-%s-%s.csv", dir, (long long)lv_now_ms(), hex,
             source);
    self->fd = open(self->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (gb18030)
        self->cd = iconv_open("UTF-8", "GB18030");
    if (self->fd < 0 || (gb18030 && self->cd == (iconv_t)-1)) {
        gw_spool_destroy(&self, false);
        return NULL;
    }
    return self;
}

void gw_spool_destroy(gw_spool_t **self_p, bool keep)
{
    if (!self_p || !*self_p)
        return;
    gw_spool_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    if (!keep && self->path[0])
        unlink(self->path);
    if (self->cd != (iconv_t)-1)
        iconv_close(self->cd);
    free(self);
    *self_p = NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return LV_EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int bad_encoding(long long at, char *why, size_t whylen)
{
    snprintf(why, whylen, "不是有效的 GB18030 编码, 第 %lld 字节附近 (not valid GB18030 near byte %lld)",
             at, at);
    return LV_EINVAL;
}

/* Converts in[0..*n), whose first byte is at stream offset base, and writes
 * it; an incomplete last character stays in the input (*n is what remains). */
static int convert(gw_spool_t *self, const char *in, size_t *n, long long base, char *why,
                   size_t whylen)
{
    char out[OUT_CHUNK];
    char *ip = (char *)in;
    size_t left = *n;
    while (left > 0) {
        char *op = out;
        size_t room = sizeof out;
        size_t rc = iconv(self->cd, &ip, &left, &op, &room);
        int err = rc == (size_t)-1 ? errno : 0;
        if (write_all(self->fd, out, (size_t)(op - out)))
            return LV_EIO;
        if (err == E2BIG)
            continue;
        if (err == EINVAL)
            break; /* an incomplete character: the next chunk completes it */
        if (err)
            return bad_encoding(base + (ip - in), why, whylen);
    }
    *n = left;
    return 0;
}

int gw_spool_write(gw_spool_t *self, const char *data, size_t len, char *why, size_t whylen)
{
    long long base = self->in_bytes; /* the stream offset of data[0] */
    self->in_bytes += (long long)len;
    if (self->cd == (iconv_t)-1)
        return write_all(self->fd, data, len);
    size_t used = 0;
    /* First complete the character the previous chunk ended inside. */
    while (self->ncarry > 0 && used < len) {
        self->carry[self->ncarry++] = data[used++];
        size_t n = self->ncarry;
        int e = convert(self, self->carry, &n, base + (long long)used - (long long)self->ncarry,
                        why, whylen);
        if (e)
            return e;
        if (n > 0 && self->ncarry >= CARRY_MAX)
            return bad_encoding(base + (long long)used, why, whylen);
        memmove(self->carry, self->carry + self->ncarry - n, n);
        self->ncarry = n;
    }
    if (self->ncarry > 0)
        return 0; /* the chunk ended still inside that character */
    size_t n = len - used;
    int e = convert(self, data + used, &n, base + (long long)used, why, whylen);
    if (e)
        return e;
    if (n >= CARRY_MAX)
        return bad_encoding(base + (long long)(len - n), why, whylen);
    memcpy(self->carry, data + len - n, n);
    self->ncarry = n;
    return 0;
}

int gw_spool_finish(gw_spool_t *self, char *why, size_t whylen)
{
    if (self->ncarry > 0) {
        snprintf(why, whylen, "文件在一个字符中间结束 (the body ends inside a GB18030 character)");
        return LV_EINVAL;
    }
    if (fsync(self->fd) != 0 || close(self->fd) != 0) {
        self->fd = -1;
        return LV_EIO;
    }
    self->fd = -1;
    return 0;
}

const char *gw_spool_path(const gw_spool_t *self)
{
    return self->path;
}

long long gw_spool_bytes(const gw_spool_t *self)
{
    return self->in_bytes;
}
