/* Streaming RFC 4180 CSV reader.
 *
 * Bytes are read with fread into a fixed buffer and run through a small state
 * machine in one pass. Each record is copied twice as it is scanned: its raw
 * text (for reject reports) and its unquoted fields, NUL-terminated one after
 * another, with an (offset, length) pair per field. Both buffers and the field
 * table are allocated once at their limits in lv_csv_new, so reading never
 * allocates and never fails for memory in the middle of a file. */
#define _POSIX_C_SOURCE 200809L

#include "lv_csv.h"

#include <stdlib.h>
#include <string.h>

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
};

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
    return self;
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
    free(self);
    *self_p = NULL;
}

/* Refills the read buffer: 1 data, 0 end of file, -1 read error. */
static int fill(lv_csv_t *self)
{
    if (self->io_error)
        return -1;
    while (!self->eof) {
        size_t n = fread(self->in, 1, IN_SIZE, self->fp);
        self->total_read += (int64_t)n;
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
        if (ferror(self->fp)) {
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
    return col->name_zh && strlen(col->name_zh) == hlen && memcmp(h, col->name_zh, hlen) == 0;
}

static void col_message(char *err, size_t errlen, const char *what, const lv_csv_col_t *col,
                        const char *english)
{
    if (!err || !errlen)
        return;
    if (col->name_zh)
        snprintf(err, errlen, "%s %s (%s) (%s)", what, col->name_en ? col->name_en : "",
                 col->name_zh, english);
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
    return self->total_read - (int64_t)(self->len - self->pos);
}
