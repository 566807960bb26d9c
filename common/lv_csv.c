/* Streaming RFC 4180 CSV reader.
 *
 * Bytes are read with fread into a fixed buffer and run through a small state
 * machine in one pass. Each record is copied twice as it is scanned: its raw
 * text (for reject reports) and its unquoted fields, NUL-terminated one after
 * another, with an (offset, length) pair per field. Both buffers and the field
 * table are allocated once at their limits in lv_csv_new, so reading never
 * allocates and never fails for memory in the middle of a file.
 *
 * A file in another encoding is read into a second buffer and converted with
 * iconv into the read buffer, so the state machine only ever sees UTF-8. */
#define _POSIX_C_SOURCE 200809L

#include "lv_csv.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lv_err.h"

#define IN_SIZE (64 * 1024)
#define DEFAULT_MAX_RECORD (64 * 1024)
#define DEFAULT_MAX_FIELDS 256

enum { S_START, S_UNQ, S_Q, S_QQ };

typedef struct {
    size_t off, len;
} field_t;

struct lv_csv {
    FILE *fp;
    size_t max_record;
    size_t max_fields;

    char *in; /* read buffer: in[pos..len) not yet consumed */
    size_t pos, len;
    int64_t total_read;
    bool started; /* the BOM check has been done */
    bool eof;
    bool io_error;

    char *raw; /* max_record + 2: room for a trailing CR and the NUL */
    size_t raw_len;

    char *fbuf; /* unquoted fields, each NUL-terminated */
    size_t fbuf_len, fbuf_cap;
    field_t *fields;
    size_t nfields;

    int64_t row;      /* the current record's row */
    int64_t next_row; /* the row the next line starts */

    /* Decoding: undecoded input rbuf[rpos..rlen), converted by cd. */
    iconv_t cd;
    char *rbuf;
    size_t rpos, rlen;
    bool need_more; /* rbuf ends inside a multi-byte sequence */
    bool raw_eof;
};

#define NO_ICONV ((iconv_t)-1)

/* Bytes that end an unquoted run. */
static const bool special[256] = {[','] = true, ['\n'] = true, ['\r'] = true};

lv_csv_t *lv_csv_new(FILE *fp, const lv_csv_limits_t *limits)
{
    if (!fp)
        return NULL;
    lv_csv_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->fp = fp;
    self->max_record = limits && limits->max_record_bytes ? limits->max_record_bytes
                                                          : DEFAULT_MAX_RECORD;
    self->max_fields = limits && limits->max_fields ? limits->max_fields : DEFAULT_MAX_FIELDS;
    if (self->max_record > SIZE_MAX / 2 - self->max_fields - 4 ||
        self->max_fields > SIZE_MAX / sizeof(field_t)) {
        free(self);
        return NULL;
    }
    /* Field bytes never outnumber raw bytes, plus one NUL per field. */
    self->fbuf_cap = self->max_record + 1 + self->max_fields + 1;
    self->in = malloc(IN_SIZE);
    self->raw = malloc(self->max_record + 2);
    self->fbuf = malloc(self->fbuf_cap);
    self->fields = malloc(self->max_fields * sizeof(field_t));
    if (!self->in || !self->raw || !self->fbuf || !self->fields) {
        lv_csv_destroy(&self);
        return NULL;
    }
    self->raw[0] = '\0';
    self->next_row = 1;
    self->cd = NO_ICONV;
    return self;
}

int lv_csv_set_encoding(lv_csv_t *self, const char *encoding)
{
    if (!encoding || self->started)
        return LV_EINVAL;
    if (!strcasecmp(encoding, "UTF-8") || !strcasecmp(encoding, "UTF8"))
        return 0;
    iconv_t cd = iconv_open("UTF-8", encoding);
    if (cd == NO_ICONV)
        return LV_EINVAL;
    char *rbuf = malloc(IN_SIZE);
    if (!rbuf) {
        iconv_close(cd);
        return LV_ENOMEM;
    }
    if (self->cd != NO_ICONV)
        iconv_close(self->cd);
    free(self->rbuf);
    self->cd = cd;
    self->rbuf = rbuf;
    return 0;
}

void lv_csv_destroy(lv_csv_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lv_csv_t *self = *self_p;
    free(self->in);
    free(self->raw);
    free(self->fbuf);
    free(self->fields);
    free(self->rbuf);
    if (self->cd != NO_ICONV)
        iconv_close(self->cd);
    free(self);
    *self_p = NULL;
}

/* Reads more raw input behind what is left in rbuf. */
static void read_raw(lv_csv_t *self)
{
    memmove(self->rbuf, self->rbuf + self->rpos, self->rlen - self->rpos);
    self->rlen -= self->rpos;
    self->rpos = 0;
    size_t n = fread(self->rbuf + self->rlen, 1, IN_SIZE - self->rlen, self->fp);
    self->total_read += (int64_t)n;
    self->rlen += n;
    self->need_more = false;
    if (n == 0) {
        if (ferror(self->fp))
            self->io_error = true;
        self->raw_eof = true;
    }
}

/* Decodes into the read buffer; returns the bytes produced, 0 at the end of
 * the input (or on a read error, with io_error set). */
static size_t read_decoded(lv_csv_t *self)
{
    for (;;) {
        if (!self->raw_eof && (self->rpos == self->rlen || self->need_more))
            read_raw(self);
        if (self->io_error || self->rpos == self->rlen)
            return 0;
        char *ip = self->rbuf + self->rpos, *op = self->in;
        size_t il = self->rlen - self->rpos, ol = IN_SIZE;
        size_t r = iconv(self->cd, &ip, &il, &op, &ol);
        int err = errno;
        self->rpos = (size_t)(ip - self->rbuf);
        if (r == (size_t)-1 && ol > 0) {
            /* An invalid sequence, or one cut by the end of the file, is
             * marked and skipped a byte at a time; a sequence cut by the end
             * of the buffer waits for more input. */
            if (err == EILSEQ || (err == EINVAL && self->raw_eof)) {
                *op++ = (char)0xFF;
                self->rpos++;
            } else if (err == EINVAL) {
                self->need_more = true;
            }
        }
        size_t out = (size_t)(op - self->in);
        if (out > 0)
            return out;
    }
}

/* Refills the read buffer: 1 data, 0 end of file, -1 read error. */
static int fill(lv_csv_t *self)
{
    if (self->io_error)
        return -1;
    while (!self->eof) {
        size_t n;
        if (self->cd != NO_ICONV) {
            n = read_decoded(self);
        } else {
            n = fread(self->in, 1, IN_SIZE, self->fp);
            self->total_read += (int64_t)n;
        }
        self->pos = 0;
        self->len = n;
        if (!self->started) {
            self->started = true;
            /* fread only returns short at end of file, so a BOM is never split. */
            if (n >= 3 && memcmp(self->in, "\xEF\xBB\xBF", 3) == 0)
                self->pos = 3;
        }
        if (self->pos < n)
            return 1;
        if (self->io_error || ferror(self->fp)) {
            self->io_error = true;
            return -1;
        }
        if (n == 0)
            self->eof = true;
    }
    return 0;
}

/* Appends to the field buffer; past its cap the record is over the limit
 * anyway, so the bytes are dropped and the caller sees the raw length. */
static inline void fput(lv_csv_t *self, const char *p, size_t n)
{
    if (n > self->fbuf_cap - 1 - self->fbuf_len)
        return;
    memcpy(self->fbuf + self->fbuf_len, p, n);
    self->fbuf_len += n;
}

static inline void field_end(lv_csv_t *self, size_t *start, bool *too_many)
{
    if (self->nfields == self->max_fields) {
        *too_many = true;
    } else if (self->fbuf_len < self->fbuf_cap) {
        self->fields[self->nfields].off = *start;
        self->fields[self->nfields].len = self->fbuf_len - *start;
        self->fbuf[self->fbuf_len++] = '\0';
        self->nfields++;
    }
    *start = self->fbuf_len;
}

static void raw_put(lv_csv_t *self, const char *p, size_t n)
{
    size_t room = self->max_record + 1 - self->raw_len;
    if (n > room)
        n = room;
    memcpy(self->raw + self->raw_len, p, n);
    self->raw_len += n;
}

int lv_csv_next(lv_csv_t *self)
{
    for (;;) {
        self->raw_len = 0;
        self->fbuf_len = 0;
        self->nfields = 0;
        int st = S_START;
        bool cr = false;       /* the last byte was a CR outside quotes */
        bool too_many = false; /* more fields than max_fields */
        bool at_eof = false;
        size_t rec_bytes = 0;  /* raw bytes of this record, stored or not */
        size_t fstart = 0;

        for (;;) {
            if (self->pos == self->len) {
                int r = fill(self);
                if (r < 0)
                    return LV_EIO;
                if (r == 0) {
                    if (rec_bytes == 0 && st == S_START)
                        return LV_CSV_EOF;
                    at_eof = true;
                    break;
                }
            }
            const char *base = self->in + self->pos;
            const char *p = base;
            const char *end = self->in + self->len;
            bool done = false;
            while (p < end) {
                unsigned char c = (unsigned char)*p;
                if (cr) {
                    cr = false;
                    if (c == '\n') {
                        done = true;
                        cr = true; /* strip it below */
                        break;
                    }
                    /* A lone CR is data. */
                    fput(self, "\r", 1);
                    st = S_UNQ;
                }
                switch (st) {
                case S_START:
                    if (c == '"') {
                        st = S_Q;
                        p++;
                        continue;
                    }
                    st = S_UNQ;
                    /* fall through */
                case S_UNQ: {
                    const char *q = p;
                    while (q < end && !special[(unsigned char)*q])
                        q++;
                    if (q > p) {
                        fput(self, p, (size_t)(q - p));
                        p = q;
                        continue;
                    }
                    break;
                }
                case S_Q: {
                    const char *q = memchr(p, '"', (size_t)(end - p));
                    if (!q) {
                        fput(self, p, (size_t)(end - p));
                        p = end;
                        continue;
                    }
                    fput(self, p, (size_t)(q - p));
                    p = q + 1;
                    st = S_QQ;
                    continue;
                }
                case S_QQ:
                    if (c == '"') {
                        fput(self, "\"", 1);
                        st = S_Q;
                        p++;
                        continue;
                    }
                    if (!special[c]) {
                        /* Text after a closing quote is kept, as spreadsheets do. */
                        st = S_UNQ;
                        continue;
                    }
                    break;
                }
                /* c is a comma, CR or LF outside quotes. */
                if (c == ',') {
                    field_end(self, &fstart, &too_many);
                    st = S_START;
                    p++;
                } else if (c == '\r') {
                    cr = true;
                    p++;
                } else {
                    done = true;
                    break;
                }
            }
            raw_put(self, base, (size_t)(p - base));
            rec_bytes += (size_t)(p - base);
            self->pos = (size_t)(p - self->in);
            if (done) {
                self->pos++; /* the LF */
                break;
            }
        }

        size_t content = rec_bytes - (cr ? 1 : 0);
        if (at_eof && st == S_Q) {
            /* The rest of the file was swallowed by an open quote. */
            self->row = self->next_row++;
            self->raw_len = content < self->max_record ? content : self->max_record;
            self->raw[self->raw_len] = '\0';
            self->nfields = 0;
            return LV_EINVAL;
        }
        if (content == 0) {
            /* A blank line is not a record, but a spreadsheet shows it as a row. */
            self->next_row++;
            if (at_eof)
                return LV_CSV_EOF;
            continue;
        }
        field_end(self, &fstart, &too_many);
        self->row = self->next_row++;
        if (content > self->max_record) {
            self->raw_len = self->max_record;
            self->raw[self->raw_len] = '\0';
            self->nfields = 0;
            return LV_ELIMIT;
        }
        self->raw_len = content;
        self->raw[content] = '\0';
        if (too_many) {
            self->nfields = 0;
            return LV_ELIMIT;
        }
        return LV_CSV_ROW;
    }
}

static bool name_eq(const char *h, size_t hlen, const lv_csv_col_t *col)
{
    if (col->name_en && strlen(col->name_en) == hlen) {
        size_t i = 0;
        for (; i < hlen; i++) {
            unsigned char a = (unsigned char)h[i], b = (unsigned char)col->name_en[i];
            if (a >= 'A' && a <= 'Z')
                a = (unsigned char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z')
                b = (unsigned char)(b - 'A' + 'a');
            if (a != b)
                break;
        }
        if (i == hlen)
            return true;
    }
    for (const char *z = col->name_zh; z && *z;) {
        const char *bar = strchr(z, '|');
        size_t zlen = bar ? (size_t)(bar - z) : strlen(z);
        if (zlen == hlen && memcmp(h, z, hlen) == 0)
            return true;
        z = bar ? bar + 1 : NULL;
    }
    return false;
}

static void col_message(char *err, size_t errlen, const char *what, const lv_csv_col_t *col,
                        const char *english)
{
    if (!err || !errlen)
        return;
    if (col->name_zh) {
        /* Alternative names read "户主身份证号 / 身份证号". */
        char zh[256];
        size_t n = 0;
        for (const char *z = col->name_zh; *z && n + 4 < sizeof zh; z++) {
            if (*z == '|') {
                memcpy(zh + n, " / ", 3);
                n += 3;
            } else {
                zh[n++] = *z;
            }
        }
        zh[n] = '\0';
        snprintf(err, errlen, "%s %s (%s) (%s)", what, col->name_en ? col->name_en : "", zh,
                 english);
    }
    else
        snprintf(err, errlen, "%s %s (%s)", what, col->name_en ? col->name_en : "", english);
}

int lv_csv_read_header(lv_csv_t *self, const lv_csv_col_t *cols, size_t ncols, int *map,
                       char *err, size_t errlen)
{
    for (size_t c = 0; c < ncols; c++)
        map[c] = -1;
    int r = lv_csv_next(self);
    const char *msg = NULL;
    if (r == LV_CSV_EOF)
        msg = "空文件, 没有表头 (empty file, no header)";
    else if (r == LV_EIO)
        msg = "读取文件出错 (read error)";
    else if (r == LV_ELIMIT)
        msg = "表头超过长度或列数上限 (header over the length or field limit)";
    else if (r < 0)
        msg = "表头引号未闭合 (unterminated quote in header)";
    if (msg) {
        if (err && errlen)
            snprintf(err, errlen, "%s", msg);
        return r == LV_EIO ? LV_EIO : LV_EINVAL;
    }

    for (size_t i = 0; i < self->nfields; i++) {
        const char *h = self->fbuf + self->fields[i].off;
        size_t hlen = self->fields[i].len;
        while (hlen && (*h == ' ' || *h == '\t')) {
            h++;
            hlen--;
        }
        while (hlen && (h[hlen - 1] == ' ' || h[hlen - 1] == '\t'))
            hlen--;
        for (size_t c = 0; c < ncols; c++) {
            if (!name_eq(h, hlen, &cols[c]))
                continue;
            if (map[c] >= 0) {
                col_message(err, errlen, "重复的列", &cols[c], "duplicated column");
                return LV_EINVAL;
            }
            map[c] = (int)i;
            break;
        }
    }
    for (size_t c = 0; c < ncols; c++) {
        if (cols[c].required && map[c] < 0) {
            col_message(err, errlen, "缺少必填列", &cols[c], "missing required column");
            return LV_EINVAL;
        }
    }
    return 0;
}

size_t lv_csv_nfields(const lv_csv_t *self)
{
    return self->nfields;
}

const char *lv_csv_field(const lv_csv_t *self, size_t i, size_t *len)
{
    if (i >= self->nfields) {
        if (len)
            *len = 0;
        return "";
    }
    if (len)
        *len = self->fields[i].len;
    return self->fbuf + self->fields[i].off;
}

const char *lv_csv_raw(const lv_csv_t *self, size_t *len)
{
    if (len)
        *len = self->raw_len;
    return self->raw;
}

int64_t lv_csv_row(const lv_csv_t *self)
{
    return self->row;
}

int64_t lv_csv_bytes(const lv_csv_t *self)
{
    if (self->cd != NO_ICONV)
        return self->total_read - (int64_t)(self->rlen - self->rpos);
    return self->total_read - (int64_t)(self->len - self->pos);
}

/* The length of the UTF-8 sequence starting at s[0..n): 1..4, 0 when it is
 * invalid, -1 when it is cut short by the end of s. */
static int utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k;
    if (c == 0)
        return 0;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        k = 1;
    else if ((c & 0xF0) == 0xE0)
        k = 2;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 3;
    else
        return 0;
    for (size_t j = 1; j <= k; j++) {
        if (j >= n)
            return -1;
        if ((s[j] & 0xC0) != 0x80)
            return 0;
    }
    /* Overlong three-byte forms and surrogates are not UTF-8. */
    if (c == 0xE0 && s[1] < 0xA0)
        return 0;
    if (c == 0xED && s[1] >= 0xA0)
        return 0;
    if (c == 0xF0 && s[1] < 0x90)
        return 0;
    if (c == 0xF4 && s[1] >= 0x90)
        return 0;
    return (int)k + 1;
}

bool lv_csv_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int k = utf8_seq(u + i, n - i);
        if (k <= 0)
            return false;
        i += (size_t)k;
    }
    return true;
}

const char *lv_csv_detect_encoding(const char *s, size_t n, bool complete)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int k = utf8_seq(u + i, n - i);
        if (k == 0 && u[i] == 0) {
            i++; /* a NUL says nothing about the encoding */
            continue;
        }
        if (k == 0 || (k < 0 && complete))
            return "gb18030";
        if (k < 0)
            break;
        i += (size_t)k;
    }
    return "utf-8";
}
