/* The dashboard's static files. GET / is web/index.html; GET /web/PATH is a
 * file under web/app (the dashboard's own code) or web/vendor (what
 * scripts/web-deps copies there: ECharts and the region names). Nothing
 * else under the web root is served: not its package files, not
 * node_modules, not the browser test.
 *
 * A path is checked by its text first (short segments of letters, digits,
 * '-', '_' and '.', none starting with '.', so neither ".." nor a hidden
 * file can be named) and then by where it really leads (realpath must stay
 * under the web root, so a symbolic link cannot lead out); only a regular
 * file of a known type is sent. Files are revalidated on every use
 * (Cache-Control: no-cache with an ETag), so a new release shows at once
 * while an unchanged file costs a 304 without a body. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw.h"
#include "lv_log.h"

#define WEB_FILE_MAX (16LL << 20) /* the largest file served (ECharts is about 1 MiB) */
#define WEB_SEGMENTS_MAX 8
#define WEB_SEGMENT_MAX 64

static const char *const s_served_dirs[] = {"app", "vendor", NULL};

static const struct {
    const char *ext;
    const char *type;
} s_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json; charset=utf-8"},
    {".csv", "text/csv; charset=utf-8"},
    {".txt", "text/plain; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
};

const char *gw_web_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || strchr(dot, '/'))
        return NULL;
    for (size_t i = 0; i < sizeof s_types / sizeof s_types[0]; i++)
        if (!strcmp(dot, s_types[i].ext))
            return s_types[i].type;
    return NULL;
}

static bool segment_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

bool gw_web_path_ok(const char *rel)
{
    int segments = 0;
    const char *s = rel;
    for (;;) {
        size_t n = strcspn(s, "/");
        if (n == 0 || n > WEB_SEGMENT_MAX || s[0] == '.' || ++segments > WEB_SEGMENTS_MAX)
            return false;
        for (size_t i = 0; i < n; i++)
            if (!segment_char_ok(s[i]))
                return false;
        if (!s[n])
            break;
        s += n + 1;
    }
    /* The first segment names a served directory, and the last a file of
     * a known type. */
    size_t first = strcspn(rel, "/");
    bool dir_ok = false;
    for (int i = 0; s_served_dirs[i]; i++)
        if (strlen(s_served_dirs[i]) == first && !strncmp(rel, s_served_dirs[i], first))
            dir_ok = true;
    return dir_ok && segments >= 2 && gw_web_type(rel) != NULL;
}

/* The file's text, malloc'ed, into *out; 0 or -1 (errno set). */
static int read_all(int fd, size_t size, char **out)
{
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return -1;
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            if (n == 0)
                errno = EIO; /* the file shrank while being read */
            return -1;
        }
        got += (size_t)n;
    }
    *out = buf;
    return 0;
}

/* Is the resolved path inside the web root? */
static bool under_root(const char *root, const char *real)
{
    size_t n = strlen(root);
    return !strncmp(real, root, n) && real[n] == '/';
}

static void web_not_found(gw_req_t *r)
{
    gw_reply_error(r, 404, "not_found", "没有这个文件 (no such file)");
}

/* Sends root/rel: 200 with the file, 304 when the caller's copy is current. */
static void serve(gw_req_t *r, const char *rel)
{
    const char *root = r->gw->web_root;
    if (!root[0]) {
        gw_reply_error(r, 404, "not_found",
                       "未配置监测大屏 (the dashboard is not configured: set LEVEE_WEB_ROOT)");
        return;
    }
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", root, rel) >= sizeof path) {
        web_not_found(r);
        return;
    }
    char *real = realpath(path, NULL);
    if (!real || !under_root(root, real)) {
        free(real);
        web_not_found(r);
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(real);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        web_not_found(r);
        return;
    }
    if (st.st_size > WEB_FILE_MAX) {
        close(fd);
        lv_warn("web: %s is larger than %lld bytes, not served", rel, WEB_FILE_MAX);
        gw_reply_error(r, 500, "internal", "文件过大 (file too large to serve)");
        return;
    }
    snprintf(r->etag, sizeof r->etag, "\"%llx-%llx.%lx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (unsigned long)st.st_mtim.tv_nsec);
    r->cache_control = "no-cache";
    r->page = true;
    const char *type = gw_web_type(rel);
    const char *inm = gw_header(r, "If-None-Match");
    if (inm && strstr(inm, r->etag)) {
        close(fd);
        gw_reply_raw(r, 304, type, NULL, 0);
        return;
    }
    char *text = NULL;
    int rc = read_all(fd, (size_t)st.st_size, &text);
    close(fd);
    if (rc != 0) {
        lv_warn("web: cannot read %s: %s", rel, strerror(errno));
        gw_reply_error(r, 500, "internal", "读取文件失败 (could not read the file)");
        return;
    }
    gw_reply_raw(r, 200, type, text, (size_t)st.st_size);
}

void gw_h_web_index(gw_req_t *r)
{
    serve(r, "index.html");
}

void gw_h_web(gw_req_t *r)
{
    if (!gw_web_path_ok(r->params[0])) {
        web_not_found(r);
        return;
    }
    serve(r, r->params[0]);
}
