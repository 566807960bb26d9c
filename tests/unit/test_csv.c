/* lv_csv: the streaming RFC 4180 reader, fed from memory with fmemopen. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lv_csv.h"
#include "lv_err.h"

typedef struct {
    char *data;
    FILE *fp;
    lv_csv_t *csv;
} rd_t;

static void rd_open(rd_t *rd, const char *data, size_t len, size_t max_record, size_t max_fields)
{
    /* fmemopen wants a writable buffer even for "r"; it may also refuse size 0. */
    rd->data = malloc(len + 1);
    assert_non_null(rd->data);
    memcpy(rd->data, data, len);
    rd->fp = len ? fmemopen(rd->data, len, "r") : tmpfile();
    assert_non_null(rd->fp);
    lv_csv_limits_t lim = {max_record, max_fields};
    rd->csv = lv_csv_new(rd->fp, &lim);
    assert_non_null(rd->csv);
}

static lv_csv_t *rd_str(rd_t *rd, const char *s)
{
    rd_open(rd, s, strlen(s), 0, 0);
    return rd->csv;
}

static void rd_close(rd_t *rd)
{
    lv_csv_destroy(&rd->csv);
    assert_null(rd->csv);
    fclose(rd->fp);
    free(rd->data);
}

static void expect_field(const lv_csv_t *csv, size_t i, const char *want)
{
    size_t len = 12345;
    const char *f = lv_csv_field(csv, i, &len);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(f, want, len);
    assert_int_equal(f[len], '\0'); /* usable as a C string */
}

static void expect_raw(const lv_csv_t *csv, const char *want)
{
    size_t len = 12345;
    const char *raw = lv_csv_raw(csv, &len);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(raw, want, len);
}

/* Reads a record and checks every field. */
static void expect_row(lv_csv_t *csv, int64_t row, size_t n, const char *const *want)
{
    assert_int_equal(lv_csv_next(csv), LV_CSV_ROW);
    assert_int_equal(lv_csv_row(csv), row);
    assert_int_equal(lv_csv_nfields(csv), n);
    for (size_t i = 0; i < n; i++)
        expect_field(csv, i, want[i]);
}

#define ROW(csv, row, ...)                                                                        \
    do {                                                                                          \
        const char *const w_[] = {__VA_ARGS__};                                                   \
        expect_row((csv), (row), sizeof w_ / sizeof w_[0], w_);                                   \
    } while (0)

static const lv_csv_col_t cols[] = {
    {"id_number", "身份证号", true},
    {"name", "姓名", true},
    {"amount", "金额", false},
    {"phone", "电话", false},
};
#define NCOLS (sizeof cols / sizeof cols[0])

static void test_simple(void **state)
{
    (void)state;
    rd_t rd;
    lv_csv_t *csv = rd_str(&rd, "id,name,amount\n1,张三,12.5\n2,李四,0.07\n");
    ROW(csv, 1, "id", "name", "amount");
    ROW(csv, 2, "1", "张三", "12.5");
    expect_raw(csv, "1,张三,12.5");
    ROW(csv, 3, "2", "李四", "0.07");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_quoted(void **state)
{
    (void)state;
    rd_t rd;
    lv_csv_t *csv = rd_str(&rd, "a,b,c,d\n"
                                "\"x,y\",\"he said \"\"hi\"\"\",\"line1\nline2\",\"l1\r\nl2\"\n"
                                "next,,\"\",end\n"
                                "\"\"\"\",\"a\"\"\",\",\",\"\n\"\n");
    ROW(csv, 1, "a", "b", "c", "d");
    ROW(csv, 2, "x,y", "he said \"hi\"", "line1\nline2", "l1\r\nl2");
    ROW(csv, 3, "next", "", "", "end");
    ROW(csv, 4, "\"", "a\"", ",", "\n");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_lenient_quotes(void **state)
{
    (void)state;
    rd_t rd;
    /* A quote inside an unquoted field is data; text after a closing quote is
     * kept; a lone CR is data. */
    lv_csv_t *csv = rd_str(&rd, "\"ab\"c,d\"e,\"x\"\n1\r2,3\n");
    ROW(csv, 1, "abc", "d\"e", "x");
    ROW(csv, 2, "1\r2", "3");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_crlf(void **state)
{
    (void)state;
    rd_t rd;
    lv_csv_t *csv = rd_str(&rd, "a,b\r\n1,2\r\n3,\"4\"\r\n,\r\n");
    ROW(csv, 1, "a", "b");
    ROW(csv, 2, "1", "2");
    expect_raw(csv, "1,2");
    ROW(csv, 3, "3", "4");
    expect_raw(csv, "3,\"4\"");
    ROW(csv, 4, "", "");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_header_bom_any_order(void **state)
{
    (void)state;
    rd_t rd;
    const char *data = "\xEF\xBB\xBF金额, NAME ,身份证号,extra\n12.5,张三,110101199003071233,z\n";
    lv_csv_t *csv = rd_str(&rd, data);
    int map[NCOLS];
    char err[256] = "";
    assert_int_equal(lv_csv_read_header(csv, cols, NCOLS, map, err, sizeof err), 0);
    assert_int_equal(map[0], 2);
    assert_int_equal(map[1], 1);
    assert_int_equal(map[2], 0);
    assert_int_equal(map[3], -1); /* optional and absent */
    assert_int_equal(lv_csv_row(csv), 1);
    assert_int_equal(lv_csv_next(csv), LV_CSV_ROW);
    assert_int_equal(lv_csv_row(csv), 2);
    expect_field(csv, (size_t)map[0], "110101199003071233");
    expect_field(csv, (size_t)map[1], "张三");
    expect_field(csv, (size_t)map[2], "12.5");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    assert_int_equal(lv_csv_bytes(csv), (int64_t)strlen(data)); /* BOM included */
    rd_close(&rd);
}

static void test_header_english_case(void **state)
{
    (void)state;
    rd_t rd;
    /* The BOM sits right before the first name, which must still match. */
    lv_csv_t *csv = rd_str(&rd, "\xEF\xBB\xBFID_Number,Phone,\"name\"\n1,2,3\n");
    int map[NCOLS];
    char err[256] = "";
    assert_int_equal(lv_csv_read_header(csv, cols, NCOLS, map, err, sizeof err), 0);
    assert_int_equal(map[0], 0);
    assert_int_equal(map[1], 2);
    assert_int_equal(map[2], -1);
    assert_int_equal(map[3], 1);
    rd_close(&rd);
}

static void test_header_missing_required(void **state)
{
    (void)state;
    rd_t rd;
    lv_csv_t *csv = rd_str(&rd, "姓名,amount\n张三,1\n");
    int map[NCOLS];
    char err[256] = "";
    assert_int_equal(lv_csv_read_header(csv, cols, NCOLS, map, err, sizeof err), LV_EINVAL);
    assert_non_null(strstr(err, "id_number"));
    assert_non_null(strstr(err, "身份证号"));
    assert_non_null(strstr(err, "missing required column"));
    rd_close(&rd);

    /* The message is bounded by errlen and still NUL-terminated. */
    csv = rd_str(&rd, "姓名,amount\n");
    char small[8];
    memset(small, 'z', sizeof small);
    assert_int_equal(lv_csv_read_header(csv, cols, NCOLS, map, small, sizeof small), LV_EINVAL);
    assert_non_null(memchr(small, '\0', sizeof small));
    rd_close(&rd);
}

static void test_header_duplicate_and_empty(void **state)
{
    (void)state;
    rd_t rd;
    int map[NCOLS];
    char err[256] = "";
    lv_csv_t *csv = rd_str(&rd, "id_number,name,身份证号\n");
    assert_int_equal(lv_csv_read_header(csv, cols, NCOLS, map, err, sizeof err), LV_EINVAL);
    assert_non_null(strstr(err, "id_number"));
    assert_non_null(strstr(err, "duplicated"));
    rd_close(&rd);

    const char *empties[] = {"", "\xEF\xBB\xBF", "\n\n", "\r\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        err[0] = '\0';
        csv = rd_str(&rd, empties[i]);
        assert_int_equal(lv_csv_read_header(csv, cols, NCOLS, map, err, sizeof err), LV_EINVAL);
        assert_non_null(strstr(err, "empty"));
        rd_close(&rd);
    }
}

static void test_field_past_end(void **state)
{
    (void)state;
    rd_t rd;
    lv_csv_t *csv = rd_str(&rd, "a,b,c\n1\n");
    ROW(csv, 1, "a", "b", "c");
    ROW(csv, 2, "1");
    size_t len = 99;
    assert_string_equal(lv_csv_field(csv, 1, &len), "");
    assert_int_equal(len, 0);
    len = 99;
    assert_string_equal(lv_csv_field(csv, 1000, &len), "");
    assert_int_equal(len, 0);
    assert_string_equal(lv_csv_field(csv, 0, NULL), "1");
    rd_close(&rd);
}

static void test_record_limit(void **state)
{
    (void)state;
    rd_t rd;
    const char *data = "a,b\n"
                       "1,2\n"
                       "xxxxxxxxxxxxxxxxxxxx,yyyyyyyyyyyyyyyyyyyy\n" /* 41 bytes */
                       "3,4\n"
                       "\"xxxxxxxxxxxxxxx\nxxxxxxxxxxxxxxx,\nyy\",z\n" /* quoted, over */
                       "5,6\n"
                       "1234567890,12345\r\n" /* exactly 16: the CRLF does not count */
                       "1234567890,123456\n"  /* 17 */
                       "7,8";
    rd_open(&rd, data, strlen(data), 16, 0);
    lv_csv_t *csv = rd.csv;
    ROW(csv, 1, "a", "b");
    ROW(csv, 2, "1", "2");
    assert_int_equal(lv_csv_next(csv), LV_ELIMIT);
    assert_int_equal(lv_csv_row(csv), 3);
    assert_int_equal(lv_csv_nfields(csv), 0);
    ROW(csv, 4, "3", "4");
    /* The embedded newlines and comma were inside quotes, so the whole record
     * was skipped and the next one starts at "5,6". */
    assert_int_equal(lv_csv_next(csv), LV_ELIMIT);
    assert_int_equal(lv_csv_row(csv), 5);
    ROW(csv, 6, "5", "6");
    ROW(csv, 7, "1234567890", "12345");
    expect_raw(csv, "1234567890,12345");
    assert_int_equal(lv_csv_next(csv), LV_ELIMIT);
    assert_int_equal(lv_csv_row(csv), 8);
    ROW(csv, 9, "7", "8");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_field_limit(void **state)
{
    (void)state;
    rd_t rd;
    const char *data = "a,b,c\n1,2,3,4\n5,6,7\n8,9,10,\n,,\n";
    rd_open(&rd, data, strlen(data), 0, 3);
    lv_csv_t *csv = rd.csv;
    ROW(csv, 1, "a", "b", "c");
    assert_int_equal(lv_csv_next(csv), LV_ELIMIT);
    assert_int_equal(lv_csv_row(csv), 2);
    assert_int_equal(lv_csv_nfields(csv), 0);
    expect_raw(csv, "1,2,3,4");
    ROW(csv, 3, "5", "6", "7");
    assert_int_equal(lv_csv_next(csv), LV_ELIMIT); /* a trailing comma is a 4th field */
    assert_int_equal(lv_csv_row(csv), 4);
    ROW(csv, 5, "", "", "");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_row_numbers_and_raw(void **state)
{
    (void)state;
    rd_t rd;
    lv_csv_t *csv = rd_str(&rd, "h1,h2\n"
                                "1,\"multi\nline\"\n"
                                "2,x\n"
                                "3,\"a\r\nb\r\nc\"\r\n"
                                "4,y\n");
    ROW(csv, 1, "h1", "h2");
    ROW(csv, 2, "1", "multi\nline");
    expect_raw(csv, "1,\"multi\nline\"");
    ROW(csv, 3, "2", "x");
    expect_raw(csv, "2,x");
    ROW(csv, 4, "3", "a\r\nb\r\nc");
    expect_raw(csv, "3,\"a\r\nb\r\nc\"");
    ROW(csv, 5, "4", "y");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_blank_lines(void **state)
{
    (void)state;
    const char *trailing[] = {"a\n1\n\n", "a\r\n1\r\n\r\n", "a\n1\n\n\n"};
    for (size_t i = 0; i < sizeof trailing / sizeof trailing[0]; i++) {
        rd_t rd;
        lv_csv_t *csv = rd_str(&rd, trailing[i]);
        ROW(csv, 1, "a");
        ROW(csv, 2, "1");
        assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
        rd_close(&rd);
    }
    /* A blank line in the middle is skipped but keeps its row number, as a
     * spreadsheet shows it. */
    rd_t rd;
    lv_csv_t *csv = rd_str(&rd, "a\n1\n\n2\n");
    ROW(csv, 1, "a");
    ROW(csv, 2, "1");
    ROW(csv, 4, "2");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_no_trailing_newline(void **state)
{
    (void)state;
    rd_t rd;
    lv_csv_t *csv = rd_str(&rd, "a,b\n1,\"2\"");
    ROW(csv, 1, "a", "b");
    ROW(csv, 2, "1", "2");
    expect_raw(csv, "1,\"2\"");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);

    csv = rd_str(&rd, "a,b\n1,2\r");
    ROW(csv, 1, "a", "b");
    ROW(csv, 2, "1", "2");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_unterminated_quote(void **state)
{
    (void)state;
    rd_t rd;
    lv_csv_t *csv = rd_str(&rd, "a,b\n1,2\n3,\"abc\ndef\n");
    ROW(csv, 1, "a", "b");
    ROW(csv, 2, "1", "2");
    assert_int_equal(lv_csv_next(csv), LV_EINVAL);
    assert_int_equal(lv_csv_row(csv), 3);
    expect_raw(csv, "3,\"abc\ndef\n");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_bytes(void **state)
{
    (void)state;
    rd_t rd;
    lv_csv_t *csv = rd_str(&rd, "\xEF\xBB\xBF" "a,b\n1,2\n33,44\r\n\"5\n\",6");
    assert_int_equal(lv_csv_bytes(csv), 0);
    assert_int_equal(lv_csv_next(csv), LV_CSV_ROW);
    assert_int_equal(lv_csv_bytes(csv), 3 + 4);
    assert_int_equal(lv_csv_next(csv), LV_CSV_ROW);
    assert_int_equal(lv_csv_bytes(csv), 3 + 4 + 4);
    assert_int_equal(lv_csv_next(csv), LV_CSV_ROW);
    assert_int_equal(lv_csv_bytes(csv), 3 + 4 + 4 + 7);
    assert_int_equal(lv_csv_next(csv), LV_CSV_ROW);
    assert_int_equal(lv_csv_bytes(csv), 3 + 4 + 4 + 7 + 6);
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    assert_int_equal(lv_csv_bytes(csv), 3 + 4 + 4 + 7 + 6);
    rd_close(&rd);
}

/* Puts every byte of a tricky record (quotes, doubled quotes, CRLF inside and
 * after quotes) on the 64 KiB read-buffer boundary in turn. */
static void test_buffer_boundaries(void **state)
{
    (void)state;
    const char *tricky = "\"a,\"\"b\"\"\r\nc\",d,\"e\"";
    size_t tlen = strlen(tricky);
    size_t total = 70000;
    char *data = malloc(total);
    assert_non_null(data);
    for (size_t i = 0; i <= tlen + 2; i++) {
        /* header (6) + "p," + pad + ",q\n" puts the tricky record at 65536 - i. */
        size_t pad = 65536 - i - 6 - 5;
        size_t n = 0;
        memcpy(data + n, "a,b,c\n", 6);
        n += 6;
        memcpy(data + n, "p,", 2);
        n += 2;
        memset(data + n, 'x', pad);
        n += pad;
        memcpy(data + n, ",q\n", 3);
        n += 3;
        assert_int_equal(n, 65536 - i);
        memcpy(data + n, tricky, tlen);
        n += tlen;
        memcpy(data + n, "\r\nlast,1,2", 10);
        n += 10;

        rd_t rd;
        rd_open(&rd, data, n, 128 * 1024, 0);
        lv_csv_t *csv = rd.csv;
        ROW(csv, 1, "a", "b", "c");
        assert_int_equal(lv_csv_next(csv), LV_CSV_ROW);
        assert_int_equal(lv_csv_nfields(csv), 3);
        size_t len;
        lv_csv_field(csv, 1, &len);
        assert_int_equal(len, pad);
        assert_int_equal(lv_csv_bytes(csv), (int64_t)(65536 - i));
        ROW(csv, 3, "a,\"b\"\r\nc", "d", "e");
        expect_raw(csv, tricky);
        ROW(csv, 4, "last", "1", "2");
        assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
        assert_int_equal(lv_csv_bytes(csv), (int64_t)n);
        rd_close(&rd);
    }
    free(data);
}

/* One quoted field spanning several buffer refills. */
static void test_big_field(void **state)
{
    (void)state;
    size_t big = 200000;
    char *data = malloc(big + 64);
    assert_non_null(data);
    size_t n = 0;
    memcpy(data, "k,v\n1,\"", 7);
    n = 7;
    for (size_t i = 0; i < big; i++)
        data[n++] = (i % 1000 == 999) ? '\n' : (char)('a' + i % 26);
    memcpy(data + n, "\"\n2,z\n", 6);
    n += 6;

    rd_t rd;
    rd_open(&rd, data, n, 256 * 1024, 0);
    lv_csv_t *csv = rd.csv;
    ROW(csv, 1, "k", "v");
    assert_int_equal(lv_csv_next(csv), LV_CSV_ROW);
    assert_int_equal(lv_csv_row(csv), 2);
    size_t len;
    const char *f = lv_csv_field(csv, 1, &len);
    assert_int_equal(len, big);
    assert_memory_equal(f, data + 7, big);
    ROW(csv, 3, "2", "z");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);

    /* The same record over a 64 KiB limit is skipped across refills too. */
    rd_open(&rd, data, n, 0, 0);
    csv = rd.csv;
    ROW(csv, 1, "k", "v");
    assert_int_equal(lv_csv_next(csv), LV_ELIMIT);
    assert_int_equal(lv_csv_row(csv), 2);
    ROW(csv, 3, "2", "z");
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    rd_close(&rd);
    free(data);
}

static void test_many_rows(void **state)
{
    (void)state;
    size_t rows = 30000;
    size_t cap = rows * 48 + 64;
    char *data = malloc(cap);
    assert_non_null(data);
    size_t n = (size_t)snprintf(data, cap, "id,name,note\r\n");
    for (size_t i = 0; i < rows; i++)
        n += (size_t)snprintf(data + n, cap - n, "%zu,n%zu,\"q,\"\"%zu\"\"\nx\"\r\n", i, i, i);
    assert_true(n < cap);

    rd_t rd;
    rd_open(&rd, data, n, 0, 0);
    lv_csv_t *csv = rd.csv;
    int map[3];
    const lv_csv_col_t c3[] = {{"note", NULL, true}, {"id", NULL, true}, {"name", NULL, true}};
    char err[128];
    assert_int_equal(lv_csv_read_header(csv, c3, 3, map, err, sizeof err), 0);
    int64_t prev = lv_csv_bytes(csv);
    for (size_t i = 0; i < rows; i++) {
        char want[64];
        assert_int_equal(lv_csv_next(csv), LV_CSV_ROW);
        assert_int_equal(lv_csv_row(csv), (int64_t)i + 2);
        snprintf(want, sizeof want, "%zu", i);
        expect_field(csv, (size_t)map[1], want);
        snprintf(want, sizeof want, "n%zu", i);
        expect_field(csv, (size_t)map[2], want);
        snprintf(want, sizeof want, "q,\"%zu\"\nx", i);
        expect_field(csv, (size_t)map[0], want);
        assert_true(lv_csv_bytes(csv) > prev);
        prev = lv_csv_bytes(csv);
    }
    assert_int_equal(lv_csv_next(csv), LV_CSV_EOF);
    assert_int_equal(lv_csv_bytes(csv), (int64_t)n);
    rd_close(&rd);
    free(data);
}

/* ---- other Chinese names, GB18030 ---------------------------------------- */

static void test_header_other_chinese_names(void **state)
{
    (void)state;
    static const lv_csv_col_t alt[] = {
        {"id_number", "户主身份证号|身份证号", true},
        {"period", "所属期|收入月份", true},
    };
    rd_t rd;
    int map[2];
    char err[256] = "";
    lv_csv_t *csv = rd_str(&rd, "收入月份,身份证号\n");
    assert_int_equal(lv_csv_read_header(csv, alt, 2, map, err, sizeof err), 0);
    assert_int_equal(map[0], 1);
    assert_int_equal(map[1], 0);
    rd_close(&rd);
    /* A part of a name, or the names run together, is no match; the message
     * lists every name. */
    csv = rd_str(&rd, "户主身份证号|身份证号,收入\n");
    assert_int_equal(lv_csv_read_header(csv, alt, 2, map, err, sizeof err), LV_EINVAL);
    assert_non_null(strstr(err, "户主身份证号 / 身份证号"));
    rd_close(&rd);
}

/* "张三,12" and a header in GB18030 bytes. */
static const char GB_TEXT[] = "\xd0\xd5\xc3\xfb,amount\r\n\xd5\xc5\xc8\xfd,12\r\n";

static void test_gb18030(void **state)
{
    (void)state;
    rd_t rd;
    rd_open(&rd, GB_TEXT, sizeof GB_TEXT - 1, 0, 0);
    assert_int_equal(lv_csv_set_encoding(rd.csv, "GB18030"), 0);
    ROW(rd.csv, 1, "姓名", "amount");
    ROW(rd.csv, 2, "张三", "12");
    expect_raw(rd.csv, "张三,12");
    assert_int_equal(lv_csv_next(rd.csv), LV_CSV_EOF);
    assert_int_equal(lv_csv_bytes(rd.csv), (int64_t)(sizeof GB_TEXT - 1));
    /* Too late once reading has begun. */
    assert_int_equal(lv_csv_set_encoding(rd.csv, "GB18030"), LV_EINVAL);
    rd_close(&rd);

    rd_open(&rd, "a\n", 2, 0, 0);
    assert_int_equal(lv_csv_set_encoding(rd.csv, "NO-SUCH-ENCODING"), LV_EINVAL);
    assert_int_equal(lv_csv_set_encoding(rd.csv, "utf-8"), 0); /* a no-op */
    ROW(rd.csv, 1, "a");
    rd_close(&rd);
}

static void test_gb18030_bad_bytes(void **state)
{
    (void)state;
    /* A lead byte with a bad trail byte on row 2, a cut sequence at the end
     * of the file on row 3: each is marked with 0xFF in its own record only. */
    static const char data[] = "a,b\n\x81\x20x,1\nok,2\n\xd5\xc5,\x81";
    rd_t rd;
    rd_open(&rd, data, sizeof data - 1, 0, 0);
    assert_int_equal(lv_csv_set_encoding(rd.csv, "GB18030"), 0);
    ROW(rd.csv, 1, "a", "b");
    ROW(rd.csv, 2, "\xff x", "1");
    size_t len;
    const char *raw = lv_csv_raw(rd.csv, &len);
    assert_false(lv_csv_utf8_valid(raw, len));
    ROW(rd.csv, 3, "ok", "2");
    raw = lv_csv_raw(rd.csv, &len);
    assert_true(lv_csv_utf8_valid(raw, len));
    ROW(rd.csv, 4, "张", "\xff");
    assert_int_equal(lv_csv_next(rd.csv), LV_CSV_EOF);
    rd_close(&rd);
}

static void test_gb18030_across_buffers(void **state)
{
    (void)state;
    /* Many rows of two-byte characters, so sequences straddle the 64 KiB
     * read buffer; one BOM (GB18030's own, 84 31 95 33) at the start. */
    size_t rows = 20000, n = 4;
    char *data = malloc(4 + rows * 7 + 1);
    assert_non_null(data);
    memcpy(data, "\x84\x31\x95\x33", 4);
    for (size_t i = 0; i < rows; i++) {
        memcpy(data + n, i % 2 ? "\xd5\xc5\xc8\xfd,1\n" : "x\xd5\xc5,12\n", 7);
        n += 7;
    }
    rd_t rd;
    rd_open(&rd, data, n, 0, 0);
    assert_int_equal(lv_csv_set_encoding(rd.csv, "GB18030"), 0);
    for (size_t i = 0; i < rows; i++) {
        if (i % 2)
            ROW(rd.csv, (int64_t)i + 1, "张三", "1");
        else
            ROW(rd.csv, (int64_t)i + 1, "x张", "12");
    }
    assert_int_equal(lv_csv_next(rd.csv), LV_CSV_EOF);
    rd_close(&rd);
    free(data);
}

static void test_detect_and_validate(void **state)
{
    (void)state;
    assert_string_equal(lv_csv_detect_encoding("id,姓名\n", strlen("id,姓名\n"), true), "utf-8");
    assert_string_equal(lv_csv_detect_encoding(GB_TEXT, sizeof GB_TEXT - 1, true), "gb18030");
    assert_string_equal(lv_csv_detect_encoding("", 0, true), "utf-8");
    /* A sequence cut by the end of a sample is no proof; by the end of the file it is. */
    assert_string_equal(lv_csv_detect_encoding("ab\xe5\xa7", 4, false), "utf-8");
    assert_string_equal(lv_csv_detect_encoding("ab\xe5\xa7", 4, true), "gb18030");
    assert_true(lv_csv_utf8_valid("张三 ok", strlen("张三 ok")));
    assert_false(lv_csv_utf8_valid("a\0b", 3));            /* NUL */
    assert_false(lv_csv_utf8_valid("\xc0\xaf", 2));        /* overlong */
    assert_false(lv_csv_utf8_valid("\xed\xa0\x80", 3));    /* surrogate */
    assert_false(lv_csv_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(lv_csv_utf8_valid("\xe5\xa7", 2));        /* cut */
}

static void test_lifetime(void **state)
{
    (void)state;
    assert_null(lv_csv_new(NULL, NULL));
    lv_csv_t *csv = NULL;
    lv_csv_destroy(&csv);
    lv_csv_destroy(NULL);
    /* NULL limits mean the defaults. */
    char data[] = "a\n1\n";
    FILE *fp = fmemopen(data, strlen(data), "r");
    assert_non_null(fp);
    csv = lv_csv_new(fp, NULL);
    assert_non_null(csv);
    ROW(csv, 1, "a");
    ROW(csv, 2, "1");
    lv_csv_destroy(&csv);
    assert_null(csv);
    fclose(fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_lenient_quotes),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_header_bom_any_order),
        cmocka_unit_test(test_header_english_case),
        cmocka_unit_test(test_header_missing_required),
        cmocka_unit_test(test_header_duplicate_and_empty),
        cmocka_unit_test(test_field_past_end),
        cmocka_unit_test(test_record_limit),
        cmocka_unit_test(test_field_limit),
        cmocka_unit_test(test_row_numbers_and_raw),
        cmocka_unit_test(test_blank_lines),
        cmocka_unit_test(test_no_trailing_newline),
        cmocka_unit_test(test_unterminated_quote),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_buffer_boundaries),
        cmocka_unit_test(test_big_field),
        cmocka_unit_test(test_many_rows),
        cmocka_unit_test(test_header_other_chinese_names),
        cmocka_unit_test(test_gb18030),
        cmocka_unit_test(test_gb18030_bad_bytes),
        cmocka_unit_test(test_gb18030_across_buffers),
        cmocka_unit_test(test_detect_and_validate),
        cmocka_unit_test(test_lifetime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
