/* The head of an HTTP/1.x message split into its start line and headers: the hot part of
 * koala_store/wire/http1.py `_parse_head`, which keeps the same code in Python as the
 * reference (and the fallback where this does not build).
 *
 * split_head(data) -> (start_line, [(name, value), ...], body_offset)
 *
 * Exactly what the Python does:
 *
 *     end = data.find(b"\r\n\r\n")
 *     head, body_offset = (data, len(data)) if end < 0 else (data[:end], end + 4)
 *     lines = head.decode("latin-1").split("\r\n")
 *     headers = [(name, value.strip()) for name, sep, value in (l.partition(":") for l in lines[1:])
 *                if sep and name and " " not in name]
 *     return lines[0], headers, body_offset
 *
 * str.strip() removes what str.isspace() calls whitespace; in Latin-1 that is \t \n \v \f \r,
 * \x1c-\x1f, space, \x85 and \xa0, all of which Py_UNICODE_ISSPACE tells here.
 *
 * Why: the loop above costs ~2.9 us for a response head of seven headers, and every compared
 * response, replayed inbound response and outbound HTTP call is parsed; this takes ~0.9 us.
 *
 * Also here, each the same decisions as its Python reference in http1.py: find_header,
 * scan_headers (named headers found, and taken out, in one scan), looks_like_request /
 * request_line (http1._REQUEST_LINE, asked several times a talk) and status_code
 * (http1._STATUS_LINE, asked of every recorded and replayed answer).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static inline int is_space(unsigned char c) { return Py_UNICODE_ISSPACE((Py_UCS4)c); }

/* The next "\r\n" in [p, end), or end. */
static const unsigned char *line_end(const unsigned char *p, const unsigned char *end) {
    for (;;) {
        const unsigned char *cr = memchr(p, '\r', (size_t)(end - p));
        if (cr == NULL || cr + 1 >= end)
            return end;
        if (cr[1] == '\n')
            return cr;
        p = cr + 1;
    }
}

/* The first "\r\n" in [p, end), or NULL. memchr, not memmem: glibc's memmem sets up a
 * two-way search each call (~350 instructions), where a head needs one call a line. */
static const unsigned char *find_crlf(const unsigned char *p, const unsigned char *end) {
    const unsigned char *at = line_end(p, end);
    return at == end ? NULL : at;
}

/* The first "\r\n\r\n" in [p, end), or NULL. */
static const unsigned char *find_head_end(const unsigned char *p, const unsigned char *end) {
    while ((p = find_crlf(p, end)) != NULL) {
        if (end - p >= 4 && p[2] == '\r' && p[3] == '\n')
            return p;
        p += 2;
    }
    return NULL;
}

/* One header line, appended to headers when it is one (a colon after a name without spaces). */
static int header(PyObject *headers, const unsigned char *p, const unsigned char *end) {
    const unsigned char *colon = memchr(p, ':', (size_t)(end - p));
    if (colon == NULL || colon == p || memchr(p, ' ', (size_t)(colon - p)) != NULL)
        return 0;
    const unsigned char *value = colon + 1, *stop = end;
    while (value < stop && is_space(*value))
        value++;
    while (stop > value && is_space(stop[-1]))
        stop--;
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL)
        return -1;
    PyObject *name_text = PyUnicode_DecodeLatin1((const char *)p, colon - p, NULL);
    PyObject *value_text = PyUnicode_DecodeLatin1((const char *)value, stop - value, NULL);
    if (name_text == NULL || value_text == NULL) {
        Py_XDECREF(name_text);
        Py_XDECREF(value_text);
        Py_DECREF(pair);
        return -1;
    }
    PyTuple_SET_ITEM(pair, 0, name_text);
    PyTuple_SET_ITEM(pair, 1, value_text);
    int rc = PyList_Append(headers, pair);
    Py_DECREF(pair);
    return rc;
}

static PyObject *split_head(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *data = view.buf, *end = data + view.len;
    const unsigned char *head_end = find_head_end(data, data + view.len);
    Py_ssize_t body_offset = head_end == NULL ? view.len : (head_end - data) + 4;
    if (head_end == NULL)
        head_end = end;
    PyObject *headers = PyList_New(0), *start = NULL;
    const unsigned char *first = line_end(data, head_end);
    if (headers != NULL)
        start = PyUnicode_DecodeLatin1((const char *)data, first - data, NULL);
    const unsigned char *p = first;
    while (start != NULL && p < head_end) {
        p += 2; /* the CRLF that ended the line before */
        const unsigned char *stop = line_end(p, head_end);
        if (header(headers, p, stop) < 0) {
            Py_CLEAR(start);
            break;
        }
        p = stop;
    }
    PyBuffer_Release(&view);
    if (start == NULL) {
        Py_XDECREF(headers);
        return NULL;
    }
    return Py_BuildValue("(NNn)", start, headers, body_offset);
}

/* find(headers, name) -> str | None: koala_store/wire/http.py `_find` (the reference), for a
 * list of (str, str) pairs: the value of the first whose name equals `name` case-insensitively.
 * ASCII names (nearly all) are compared here; a name beyond ASCII goes through str.lower() as
 * in Python, where lowering can change a length ('\u0130') or map a letter into ASCII
 * ('\u212a' is 'k'). NotImplemented for other shapes: the caller then runs the reference.
 * Why: the Python loop costs ~4.1k instructions for a head of eight headers, find() with this
 * ~1.2k (cachegrind), and every compared response is asked for Transfer-Encoding,
 * Content-Encoding and Content-Type. */
static int ascii_equal_ignoring_case(const unsigned char *a, const unsigned char *b, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char x = a[i], y = b[i];
        if (x != y && ((x | 0x20) != (y | 0x20) || (unsigned char)((x | 0x20) - 'a') > 'z' - 'a'))
            return 0;
    }
    return 1;
}

static PyObject *find_header(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyUnicode_CheckExact(args[1]))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *headers = args[0], *name = args[1], *lowered = NULL, *found = Py_None;
    int name_ascii = PyUnicode_IS_ASCII(name);
    Py_ssize_t name_len = PyUnicode_GET_LENGTH(name);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(pair, 0))) {
            found = Py_NotImplemented;
            break;
        }
        PyObject *key = PyTuple_GET_ITEM(pair, 0);
        int same;
        if (name_ascii && PyUnicode_IS_ASCII(key)) {
            same = PyUnicode_GET_LENGTH(key) == name_len && ascii_equal_ignoring_case(PyUnicode_DATA(key), PyUnicode_DATA(name), name_len);
        } else {
            if (lowered == NULL && (lowered = PyObject_CallMethod(name, "lower", NULL)) == NULL)
                return NULL;
            same = 0;
            if (PyUnicode_GET_LENGTH(key) == PyUnicode_GET_LENGTH(lowered)) {
                PyObject *key_lowered = PyObject_CallMethod(key, "lower", NULL);
                if (key_lowered == NULL) {
                    Py_DECREF(lowered);
                    return NULL;
                }
                same = PyUnicode_Compare(key_lowered, lowered) == 0;
                Py_DECREF(key_lowered);
            }
        }
        if (same) {
            found = PyTuple_GET_ITEM(pair, 1);
            break;
        }
    }
    Py_XDECREF(lowered);
    return Py_NewRef(found);
}

/* scan_headers(data, names, strip) -> ([value or None per name], message): koala_store/wire/
 * http1.py `_scan_headers` (the reference) for bytes `data` and a tuple of bytes `names`:
 *
 *     end = data.find(b"\r\n\r\n"); head = data[:end] if end >= 0 else data
 *     each value: after the first b"\r\n" + name + b":" in head.lower(), up to the next CRLF
 *                 in head, .strip() (ASCII whitespace), decoded as Latin-1; None if absent
 *     message: with `strip`, a name found and a head end, the lines of data[:end + 2] split at
 *              CRLF whose part before any ':' .strip().lower() is a name, left out (the first
 *              line kept), joined again, + data[end + 2:]; else `data` itself
 *
 * NotImplemented for other shapes: the caller then runs the reference.
 * Why: the replay mock reads the session header of every outbound HTTP talk and takes it out
 * (and frames the talk by two more headers): ~6 us a talk in Python. */

static inline unsigned char lower_ascii(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c; }

/* bytes.isspace(): what bytes.strip() takes off, and what \s matches in a bytes regex. */
static inline int space_byte(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* How far the request line regex looks: http1._LINE_LIMIT. */
#define REQUEST_LINE_LIMIT 8200

/* Where b"\r\n" + name + b":" first is in head[0:n] lowered, or -1. */
static Py_ssize_t find_named_line(const unsigned char *head, Py_ssize_t n, const unsigned char *name, Py_ssize_t name_len) {
    const unsigned char *end = head + n, *p = head;
    while (end - p >= name_len + 3 && (p = find_crlf(p, end)) != NULL) {
        if (end - p < name_len + 3)
            return -1;
        Py_ssize_t i = 0;
        while (i < name_len && lower_ascii(p[2 + i]) == name[i])
            i++;
        if (i == name_len && p[2 + name_len] == ':')
            return p - head;
        p++;
    }
    return -1;
}

/* Whether a head line's name (its part before any ':', stripped and lowered) is in `names`. */
static int named(const unsigned char *p, const unsigned char *stop, PyObject *names) {
    const unsigned char *colon = memchr(p, ':', (size_t)(stop - p));
    if (colon != NULL)
        stop = colon;
    while (p < stop && space_byte(*p))
        p++;
    while (stop > p && space_byte(stop[-1]))
        stop--;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(names); k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k);
        Py_ssize_t len = PyBytes_GET_SIZE(name);
        if (len != stop - p)
            continue;
        const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(name);
        Py_ssize_t i = 0;
        while (i < len && lower_ascii(p[i]) == bytes[i])
            i++;
        if (i == len)
            return 1;
    }
    return 0;
}

/* data without the head lines named (see scan_headers); `region` is data[:end + 2]. */
static PyObject *without_named_lines(const unsigned char *data, Py_ssize_t size, Py_ssize_t region, PyObject *names) {
    /* Two passes over the lines: the size of what is kept, then the copy. */
    PyObject *out = NULL;
    unsigned char *to = NULL;
    for (int pass = 0; pass < 2; pass++) {
        Py_ssize_t total = 0;
        int first = 1;
        const unsigned char *p = data, *end = data + region;
        for (;;) {
            const unsigned char *stop = find_crlf(p, end);
            const unsigned char *line_stop = stop != NULL ? stop : end;
            if (first || !named(p, line_stop, names)) {
                if (!first) {
                    if (pass)
                        memcpy(to + total, "\r\n", 2);
                    total += 2;
                }
                if (pass)
                    memcpy(to + total, p, (size_t)(line_stop - p));
                total += line_stop - p;
            }
            first = 0;
            if (stop == NULL)
                break;
            p = stop + 2;
        }
        if (pass)
            memcpy(to + total, data + region, (size_t)(size - region));
        else {
            out = PyBytes_FromStringAndSize(NULL, total + (size - region));
            if (out == NULL)
                return NULL;
            to = (unsigned char *)PyBytes_AS_STRING(out);
        }
    }
    return out;
}

static PyObject *scan_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 || !PyBytes_CheckExact(args[0]) || !PyTuple_CheckExact(args[1]))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *names = args[1];
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(names); k++)
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(names, k)))
            Py_RETURN_NOTIMPLEMENTED;
    int strip = PyObject_IsTrue(args[2]);
    if (strip < 0)
        return NULL;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    const unsigned char *head_end = find_head_end(data, data + size);
    Py_ssize_t head = head_end != NULL ? head_end - data : size;
    PyObject *values = PyList_New(PyTuple_GET_SIZE(names));
    if (values == NULL)
        return NULL;
    int found = 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(names); k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k), *value = Py_None;
        Py_ssize_t name_len = PyBytes_GET_SIZE(name);
        Py_ssize_t at = find_named_line(data, head, (const unsigned char *)PyBytes_AS_STRING(name), name_len);
        if (at >= 0) {
            found = 1;
            const unsigned char *start = data + at + name_len + 3, *stop = line_end(start, data + head);
            while (start < stop && space_byte(*start))
                start++;
            while (stop > start && space_byte(stop[-1]))
                stop--;
            if ((value = PyUnicode_DecodeLatin1((const char *)start, stop - start, NULL)) == NULL) {
                Py_DECREF(values);
                return NULL;
            }
        } else
            Py_INCREF(value);
        PyList_SET_ITEM(values, k, value);
    }
    PyObject *message = strip && found && head_end != NULL ? without_named_lines(data, size, head + 2, names) : Py_NewRef(args[0]);
    if (message == NULL) {
        Py_DECREF(values);
        return NULL;
    }
    return Py_BuildValue("(NN)", values, message);
}

/* The request line at the start of data, as http1._REQUEST_LINE matches it over data[:limit]:
 *     ([A-Z][A-Z0-9_-]{0,19}) (\S+) HTTP/(\d)\.(\d)\r?\n?(?:\r\n|\Z)
 * 1 with the method's length and the target's span, else 0. \S+ cannot give anything back to
 * the " HTTP/" after it (a space is no \S), so one pass decides; the tail is an optional CR,
 * an optional LF, then CRLF or the end of data[:limit]. */
static int scan_request_line(const unsigned char *data, Py_ssize_t size, Py_ssize_t *method_len, Py_ssize_t *target_start, Py_ssize_t *target_len) {
    const Py_ssize_t n = size < REQUEST_LINE_LIMIT ? size : REQUEST_LINE_LIMIT;
    Py_ssize_t i = 0;
    if (n == 0 || data[0] < 'A' || data[0] > 'Z')
        return 0;
    for (i = 1; i < n && i < 20; i++) { /* a method of 1 to 20 bytes */
        unsigned char c = data[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            break;
    }
    if (i >= n || data[i] != ' ')
        return 0;
    *method_len = i;
    Py_ssize_t start = ++i;
    while (i < n && !space_byte(data[i]))
        i++;
    if (i == start || n - i < 9 || memcmp(data + i, " HTTP/", 6) != 0)
        return 0;
    const unsigned char *v = data + i + 6;
    if (v[0] < '0' || v[0] > '9' || v[1] != '.' || v[2] < '0' || v[2] > '9')
        return 0;
    Py_ssize_t rest = i + 9;
    static const char *const prefixes[] = {"\r\n", "\r", "\n", ""};
    for (int k = 0; k < 4; k++) {
        Py_ssize_t at = rest + (Py_ssize_t)strlen(prefixes[k]);
        if (at > n || memcmp(data + rest, prefixes[k], (size_t)(at - rest)) != 0)
            continue;
        if (at == n || (n - at >= 2 && data[at] == '\r' && data[at + 1] == '\n')) {
            *target_start = start;
            *target_len = i - start;
            return 1;
        }
    }
    return 0;
}

static PyObject *looks_like_request(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t method_len, target_start, target_len;
    int found = scan_request_line(view.buf, view.len, &method_len, &target_start, &target_len);
    PyBuffer_Release(&view);
    return PyBool_FromLong(found);
}

static PyObject *request_line(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *data = view.buf;
    Py_ssize_t method_len, target_start, target_len;
    PyObject *out = NULL;
    if (!scan_request_line((const unsigned char *)data, view.len, &method_len, &target_start, &target_len))
        out = Py_NewRef(Py_None);
    else {
        PyObject *method = PyUnicode_DecodeLatin1(data, method_len, NULL);
        PyObject *target = method == NULL ? NULL : PyUnicode_DecodeLatin1(data + target_start, target_len, NULL);
        if (target == NULL)
            Py_XDECREF(method);
        else
            out = Py_BuildValue("(NN)", method, target);
    }
    PyBuffer_Release(&view);
    return out;
}

/* http1._status_code: the status of an "HTTP/d.d ddd[ reason][\r]" first line (the first line
 * runs to the first \n), else None; the regex http1._STATUS_LINE decides the same. */
static inline int ascii_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static PyObject *status_code(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *d = view.buf;
    const unsigned char *newline = memchr(d, '\n', (size_t)view.len);
    Py_ssize_t n = newline != NULL ? newline - d : view.len;
    long status = -1;
    if (n >= 12 && memcmp(d, "HTTP/", 5) == 0 && ascii_digit(d[5]) && d[6] == '.' && ascii_digit(d[7]) && d[8] == ' ' && ascii_digit(d[9]) && ascii_digit(d[10]) &&
        ascii_digit(d[11]) && (n == 12 || d[12] == ' ' || (n == 13 && d[12] == '\r')))
        status = (d[9] - '0') * 100 + (d[10] - '0') * 10 + (d[11] - '0');
    PyBuffer_Release(&view);
    if (status < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(status);
}

static PyMethodDef methods[] = {
    {"split_head", split_head, METH_O, "(start_line, [(name, value)], body_offset) of an HTTP/1.x message's head."},
    {"find_header", (PyCFunction)(void (*)(void))find_header, METH_FASTCALL,
     "find_header(headers, name): the first value named `name` (any case), None, or NotImplemented for other shapes."},
    {"scan_headers", (PyCFunction)(void (*)(void))scan_headers, METH_FASTCALL,
     "scan_headers(data, names, strip): (the first value of each header named, the message without those lines when strip), "
     "or NotImplemented for other shapes."},
    {"looks_like_request", looks_like_request, METH_O, "Whether bytes start with an HTTP/1.x request line (http1._REQUEST_LINE over the first 8200 bytes)."},
    {"status_code", status_code, METH_O, "The status of the HTTP/1.x status line bytes start with, else None (http1._STATUS_LINE on the first line)."},
    {"request_line", request_line, METH_O, "(method, target) of the request line bytes start with, else None (http1._REQUEST_LINE over the first 8200 bytes)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_http1head", NULL, -1, methods};

PyMODINIT_FUNC PyInit__http1head(void) { return PyModule_Create(&module); }
