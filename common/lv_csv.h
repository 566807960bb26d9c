/* A streaming RFC 4180 CSV reader: quoted fields with embedded commas, quotes
 * and newlines, CRLF or LF, an optional UTF-8 BOM, and input in another
 * encoding (GB18030) decoded to UTF-8 on the fly. Every buffer is bounded. */
#ifndef LV_CSV_H
#define LV_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct lv_csv lv_csv_t;

typedef struct {
    size_t max_record_bytes; /* one record, quotes and newlines included; 0 = 64 KiB */
    size_t max_fields;       /* fields per record; 0 = 256 */
} lv_csv_limits_t;

/* A column a feed wants: found by its English name (ASCII case-insensitive)
 * or its Chinese name, after trimming spaces. name_zh may list other Chinese
 * names some departments use after a '|', e.g. "户主身份证号|身份证号". */
typedef struct {
    const char *name_en;
    const char *name_zh;
    bool required;
} lv_csv_col_t;

/* Results of lv_csv_next. */
#define LV_CSV_ROW 1    /* a record is ready */
#define LV_CSV_EOF 0    /* no more records */
/* Negative: LV_ELIMIT (record or field count over a limit: the record is
 * skipped, the reader is positioned after it, reading may go on), LV_EINVAL
 * (an unterminated quote at end of file), LV_EIO (read error). */

/* Reads from fp, which stays owned by the caller. */
lv_csv_t *lv_csv_new(FILE *fp, const lv_csv_limits_t *limits);
void lv_csv_destroy(lv_csv_t **self_p);

/* Decodes the input from encoding (an iconv name, e.g. "GB18030") to UTF-8
 * before parsing; "UTF-8" leaves it as it is. Call before the first read.
 * A byte sequence invalid in that encoding becomes the byte 0xFF, which is
 * never valid UTF-8, so the record holding it fails lv_csv_utf8_valid and can
 * be rejected alone. Returns 0, or LV_EINVAL for an unknown encoding. */
int lv_csv_set_encoding(lv_csv_t *self, const char *encoding);

/* True when s[0..n) is valid UTF-8 without NUL bytes. */
bool lv_csv_utf8_valid(const char *s, size_t n);

/* The encoding of a file from its first n bytes: "gb18030" when they are not
 * valid UTF-8, else "utf-8". A sequence cut by the end of the sample counts as
 * valid unless the sample is the whole file (complete). */
const char *lv_csv_detect_encoding(const char *s, size_t n, bool complete);

/* Reads the header record and maps each wanted column to its field index
 * (map[i] = -1 when absent). A missing required column, a duplicated wanted
 * column or an empty file is an error: returns LV_EINVAL and writes one clear
 * message naming the column into err, e.g.
 * "缺少必填列 id_number (身份证号) (missing required column)". */
int lv_csv_read_header(lv_csv_t *self, const lv_csv_col_t *cols, size_t ncols,
                       int *map, char *err, size_t errlen);

/* Reads the next record. See the LV_CSV_* results above. */
int lv_csv_next(lv_csv_t *self);

/* The current record's fields; valid until the next call. Quotes removed and
 * doubled quotes undone; a field index past the end yields "" with len 0. */
size_t lv_csv_nfields(const lv_csv_t *self);
const char *lv_csv_field(const lv_csv_t *self, size_t i, size_t *len);

/* The current record's raw text as read (without its line terminator). */
const char *lv_csv_raw(const lv_csv_t *self, size_t *len);

/* The current record's row number as a spreadsheet shows it: the header is
 * row 1, the first data record row 2 (a record with embedded newlines is one
 * row). */
int64_t lv_csv_row(const lv_csv_t *self);

/* Bytes consumed from the stream so far (BOM included), for progress bars.
 * For a decoded stream these are input bytes handed to the decoder, ahead of
 * the current record by at most one read buffer. */
int64_t lv_csv_bytes(const lv_csv_t *self);

#endif
