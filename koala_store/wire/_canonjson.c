/* A canonical form of a JSON document, made without building Python objects: the hot path
 * of koala_store/diff/body.py `same_canonical_json`, and how koala_store/wire/normalize.py
 * buckets a JSON body without parsing it (canonical's `plain`).
 *
 * canonical(data) -> bytes or None
 *
 * The form: no whitespace, every object's members sorted by their key's bytes (stably, so
 * members with the same key keep their order), every token as written. Two documents with
 * equal forms hold the same tokens in the same places up to key order, so they parse to the
 * same value (duplicate keys included: the last one wins on both sides).
 *
 * None when the document is not one this can answer for exactly, and the caller parses it:
 * not strict JSON (the standard library also reads NaN and other things), a top-level value
 * that is not an object or an array, a key with an escape ("a" and "\u0061" are one key),
 * nesting deeper than MAX_DEPTH, or trailing bytes. Strings are validated (escapes, no raw
 * control bytes) but not decoded: the caller checks UTF-8 when the body is not ASCII.
 *
 * Why: bodies whose keys come in another order (another serialiser, another map order) are
 * the common "equal" case the whitespace-only check cannot settle; parsing both to objects
 * and dumping them sorted costs ~110 us per 4 KB pair, the two forms ~20 us.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The token readers, inlined into value() and object(): their calls were 6% of the work
 * (instructions counted by callgrind, a 4 KB document: 112k -> 105k per canonical()). */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

#define MAX_DEPTH 200 /* far below orjson's and the standard library's nesting limits */

enum { OK = 0, REFUSE = -1, NOMEM = -2, DIFFERS = -3 };

typedef struct {
    unsigned char *at;
    size_t len;
} Buf;

typedef struct {
    const unsigned char *p, *end;
    int depth;
    Buf out;     /* the canonical form being written */
    Buf scratch; /* an object's members while they are written back sorted */
    /* Compare mode (other != NULL): instead of writing the form, each token is matched
     * against the next token of the other document, in place and in the order written. */
    const unsigned char *other, *other_end;
    int differs; /* set at the first token that does not match; the parse then stops */
    int plain;   /* refuse escapes, keys written twice, numbers spelled unlike Python (canonical's `plain`) */
} Ctx;

typedef struct {
    const unsigned char *key; /* the key's bytes, without quotes */
    size_t key_len;
    size_t start, len; /* the member (`"key":value`) in out */
    size_t index;      /* the order it came in: the tie-break that keeps the sort stable */
} Member;

/* The canonical form holds the input's tokens and structural bytes, no more: out and
 * scratch are given the input's length (plus SLACK) once and written without bound checks. */
static inline void put(Buf *b, const unsigned char *src, size_t n) {
    memcpy(b->at + b->len, src, n);
    b->len += n;
}

#define SLACK 16 /* bytes past the form's length in out and scratch, for put_token */

/* A token of the input, most of them short: copied 16 bytes at once when the input holds
 * them (the bytes past the token are overwritten by what follows, or left in the slack). */
static inline void put_token(Ctx *c, const unsigned char *src, size_t n) {
    if (n <= 16 && c->end - src >= 16) {
        memcpy(c->out.at + c->out.len, src, 16);
        c->out.len += n;
    } else {
        put(&c->out, src, n);
    }
}

static inline void put_byte(Buf *b, unsigned char c) { b->at[b->len++] = c; }

static inline const unsigned char *skip_ws_at(const unsigned char *p, const unsigned char *end);

/* In compare mode: whether the other document's next token (after its whitespace) is these
 * bytes. A token that is only a prefix of the other's (1 against 12) is caught by the next
 * match, since the bytes after a token are never whitespace-free continuations of it. */
static void match(Ctx *c, const unsigned char *src, size_t n) {
    const unsigned char *q = skip_ws_at(c->other, c->other_end);
    if (!c->differs && (size_t)(c->other_end - q) >= n && memcmp(q, src, n) == 0)
        c->other = q + n;
    else
        c->differs = 1;
}

/* A token of the document: written to the form, or matched in compare mode. */
static inline void emit(Ctx *c, const unsigned char *src, size_t n) {
    if (c->other != NULL)
        match(c, src, n);
    else
        put_token(c, src, n);
}

/* A structural byte ({ } [ ] : ,): written to the form, or matched in compare mode. */
static inline void emit_byte(Ctx *c, unsigned char ch) {
    if (c->other == NULL)
        put_byte(&c->out, ch);
    else if (!c->differs && c->other < c->other_end && *c->other == ch)
        c->other++; /* the common case: no whitespace before it */
    else
        match(c, &ch, 1);
}

#define EIGHT_SPACES 0x2020202020202020ULL

/* Whitespace between tokens. Pretty-printed bodies are mostly indentation, so runs of spaces
 * are skipped eight bytes at a time. */
static inline const unsigned char *skip_ws_at(const unsigned char *p, const unsigned char *end) {
    while (p < end && *p <= ' ') {
        if (*p == ' ') {
            uint64_t word;
            while (end - p >= 8 && (memcpy(&word, p, 8), word == EIGHT_SPACES))
                p += 8;
            while (p < end && *p == ' ')
                p++;
        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            p++;
        } else {
            break;
        }
    }
    return p;
}

static inline void skip_ws(Ctx *c) { c->p = skip_ws_at(c->p, c->end); }

static int is_hex(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static unsigned char string_stop[256]; /* the bytes a string's scan stops at: '"', '\\', controls */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The bytes of a little-endian word that string_stop holds ('"', '\\', below 0x20), each
 * flagged by its high bit: the classic zero-byte and less-than tests on a word. A borrow can
 * flag a byte above a flagged one, never below, so the lowest flag is exactly the first stop. */
static inline uint64_t stop_bytes(uint64_t w) {
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
    return (((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash) | ((w - ONES * 0x20) & ~w)) & HIGHS;
}

/* A string token at c->p (the opening quote), copied as written. *escaped says whether it
 * held a backslash. */
static ALWAYS_INLINE int string(Ctx *c, int *escaped) {
    const unsigned char *start = c->p++;
    *escaped = 0;
    for (;;) {
        const unsigned char *p = c->p;
        uint64_t word, stops = 0;
        while (c->end - p >= 8 && (memcpy(&word, p, 8), (stops = stop_bytes(word)) == 0))
            p += 8;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (stops != 0)
            p += __builtin_ctzll(stops) >> 3;
        else
#endif
            while (p < c->end && !string_stop[*p])
                p++;
        c->p = p;
        if (c->p >= c->end)
            return REFUSE;
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            emit(c, start, (size_t)(c->p - start));
            return OK;
        }
        if (ch != '\\' || c->p + 1 >= c->end || c->plain)
            return REFUSE; /* a raw control byte, a backslash at the end, or any escape when plain */
        *escaped = 1;
        unsigned char e = c->p[1];
        if (e == 'u') {
            if (c->end - c->p < 6 || !is_hex(c->p[2]) || !is_hex(c->p[3]) || !is_hex(c->p[4]) || !is_hex(c->p[5]))
                return REFUSE;
            c->p += 6;
        } else if (e != 0 && strchr("\"\\/bfnrt", e) != NULL) {
            c->p += 2;
        } else {
            return REFUSE;
        }
    }
}

static inline void digits(Ctx *c) {
    while (c->p < c->end && is_digit(*c->p))
        c->p++;
}

/* A number token (RFC 8259's grammar), copied as written: 1 and 1.0 stay different. */
/* A float token repr() surely writes alike, known without converting it (the common case,
 * ~10x cheaper): d.d with at most 15 significant digits (any two such decimals are different
 * doubles, so none shorter reads back as the same one), no trailing zero in the fraction but
 * for x.0, and not below 0.0001 (repr() writes 1e-05). */
static int short_decimal(const unsigned char *p, size_t n) {
    const unsigned char *end = p + n, *dot;
    if (*p == '-')
        p++;
    for (dot = p; dot < end && is_digit(*dot); dot++)
        ;
    if (dot == end || *dot != '.' || dot == p)
        return 0;
    const unsigned char *frac = dot + 1;
    for (const unsigned char *q = frac; q < end; q++)
        if (!is_digit(*q))
            return 0; /* an exponent */
    size_t int_len = (size_t)(dot - p), frac_len = (size_t)(end - frac);
    if (frac_len == 0)
        return 0;
    if (frac_len == 1 && frac[0] == '0')
        return int_len <= 15; /* x.0 */
    if (end[-1] == '0')
        return 0;
    if (int_len == 1 && p[0] == '0') {
        size_t zeros = 0;
        while (zeros < frac_len && frac[zeros] == '0')
            zeros++;
        return zeros < 3 && frac_len - zeros <= 15; /* 0.00x and up: repr() keeps it fixed */
    }
    return int_len + frac_len <= 15;
}

/* Whether a JSON number token is written as Python writes its value: an integer other than
 * -0 as it is, a float as repr() writes the double it reads as (61.36, 1e-05, 100.0; not
 * 1.50 or 1E2). */
static int python_spelling(const unsigned char *start, size_t n, int is_float) {
    if (!is_float)
        return !(n == 2 && start[0] == '-' && start[1] == '0');
    if (short_decimal(start, n))
        return 1;
    char token[64];
    if (n >= sizeof token)
        return 0; /* repr() never writes a double this long */
    memcpy(token, start, n);
    token[n] = 0;
    double x = PyOS_string_to_double(token, NULL, NULL);
    if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    char *repr = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (repr == NULL) {
        PyErr_Clear();
        return 0;
    }
    int same = strlen(repr) == n && memcmp(repr, token, n) == 0;
    PyMem_Free(repr);
    return same;
}

static ALWAYS_INLINE int number(Ctx *c) {
    const unsigned char *start = c->p;
    int is_float = 0;
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p >= c->end)
        return REFUSE;
    if (*c->p == '0')
        c->p++;
    else if (*c->p >= '1' && *c->p <= '9')
        digits(c);
    else
        return REFUSE;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (c->p >= c->end || !is_digit(*c->p))
            return REFUSE;
        digits(c);
        is_float = 1;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        is_float = 1;
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p >= c->end || !is_digit(*c->p))
            return REFUSE;
        digits(c);
    }
    if (c->plain && !python_spelling(start, (size_t)(c->p - start), is_float))
        return REFUSE;
    emit(c, start, (size_t)(c->p - start));
    return OK;
}

static ALWAYS_INLINE int literal(Ctx *c, const char *word, size_t n) {
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return REFUSE;
    c->p += n;
    emit(c, c->p - n, n); /* the input's bytes (equal to word): put_token may read past them */
    return OK;
}

static int value(Ctx *c);

static inline int member_before(const Member *a, const Member *b) {
    if (a->key_len > 0 && b->key_len > 0 && a->key[0] != b->key[0])
        return a->key[0] < b->key[0]; /* most keys differ at once: no memcmp call */
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int by_key = memcmp(a->key, b->key, n);
    if (by_key != 0)
        return by_key < 0;
    if (a->key_len != b->key_len)
        return a->key_len < b->key_len;
    return a->index < b->index;
}

/* Write the members (already in out, comma-separated from members[0].start) back sorted.
 * Insertion sort: objects have few members, and it is stable. */
static void sort_members(Ctx *c, Member *members, size_t count) {
    size_t i = 1;
    while (i < count && member_before(&members[i - 1], &members[i]))
        i++;
    if (i >= count)
        return; /* already in order, the most common case */
    size_t base = members[0].start;
    for (; i < count; i++) {
        Member m = members[i];
        size_t j = i;
        while (j > 0 && member_before(&m, &members[j - 1])) {
            members[j] = members[j - 1];
            j--;
        }
        members[j] = m;
    }
    c->scratch.len = 0;
    put(&c->scratch, c->out.at + base, c->out.len - base);
    c->out.len = base;
    for (i = 0; i < count; i++) {
        if (i > 0)
            put_byte(&c->out, ',');
        put(&c->out, c->scratch.at + (members[i].start - base), members[i].len);
    }
}

static int object(Ctx *c) {
    Member few[16]; /* on the stack: 640 bytes a level, 128 KB at MAX_DEPTH */
    Member *members = few;
    size_t count = 0, cap = 16;
    int rc = OK;
    emit_byte(c, '{');
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        emit_byte(c, '}');
        return OK;
    }
    for (;;) {
        skip_ws(c);
        if (c->p >= c->end || *c->p != '"') {
            rc = REFUSE;
            break;
        }
        if (count > 0)
            emit_byte(c, ',');
        if (count == cap) {
            Member *grown = malloc(2 * cap * sizeof(Member));
            if (grown == NULL) {
                rc = NOMEM;
                break;
            }
            memcpy(grown, members, count * sizeof(Member));
            if (members != few)
                free(members);
            members = grown;
            cap *= 2;
        }
        Member *m = &members[count];
        m->start = c->out.len;
        m->key = c->p + 1;
        m->index = count;
        int escaped;
        if ((rc = string(c, &escaped)) != OK)
            break;
        if (escaped) {
            rc = REFUSE;
            break;
        }
        m->key_len = (size_t)(c->p - 1 - m->key);
        skip_ws(c);
        if (c->p >= c->end || *c->p != ':') {
            rc = REFUSE;
            break;
        }
        c->p++;
        emit_byte(c, ':');
        if ((rc = value(c)) != OK)
            break;
        m->len = c->out.len - m->start;
        count++;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            if (c->other == NULL) /* compare mode matches members in the order written */
                sort_members(c, members, count);
            for (size_t i = 1; c->plain && rc == OK && i < count; i++)
                if (members[i].key_len == members[i - 1].key_len && memcmp(members[i].key, members[i - 1].key, members[i].key_len) == 0)
                    rc = REFUSE; /* sorted: a key written twice is next to itself */
            if (rc != OK)
                break;
            emit_byte(c, '}');
            break;
        }
        rc = REFUSE;
        break;
    }
    if (members != few)
        free(members);
    return rc;
}

static int array(Ctx *c) {
    emit_byte(c, '[');
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        emit_byte(c, ']');
        return OK;
    }
    for (int first = 1;; first = 0) {
        if (!first)
            emit_byte(c, ',');
        int rc = value(c);
        if (rc != OK)
            return rc;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == ']') {
            c->p++;
            emit_byte(c, ']');
            return OK;
        }
        return REFUSE;
    }
}

static int value(Ctx *c) {
    if (c->differs)
        return DIFFERS;
    skip_ws(c);
    if (c->p >= c->end)
        return REFUSE;
    int escaped, rc;
    switch (*c->p) {
    case '{':
    case '[':
        if (++c->depth > MAX_DEPTH)
            return REFUSE;
        rc = *c->p == '{' ? object(c) : array(c);
        c->depth--;
        return rc;
    case '"':
        return string(c, &escaped);
    case 't':
        return literal(c, "true", 4);
    case 'f':
        return literal(c, "false", 5);
    case 'n':
        return literal(c, "null", 4);
    default:
        return number(c);
    }
}

/* canonical(data, plain=False) -> bytes or None. With `plain`, a document holding an escape,
 * an object with a key written twice or a number not spelled as Python writes it (1.50, 1E2,
 * -0) is refused too: the form of any other document is then exactly the text
 * json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
 * writes, made without parsing it (koala_store/wire/normalize.py's keys and buckets). */
static PyObject *canonical(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "canonical(data, plain=False) takes one or two arguments");
        return NULL;
    }
    int plain = nargs == 2 ? PyObject_IsTrue(args[1]) : 0;
    if (plain < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Ctx c = {0};
    c.plain = plain;
    c.p = view.buf;
    c.end = c.p + view.len;
    skip_ws(&c);
    if (c.p >= c.end || (*c.p != '{' && *c.p != '[')) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    /* The form is written straight into the result, shrunk to its length at the end. */
    PyObject *result = PyBytes_FromStringAndSize(NULL, view.len + SLACK);
    c.scratch.at = malloc((size_t)view.len + SLACK);
    int rc = NOMEM;
    if (result != NULL && c.scratch.at != NULL) {
        c.out.at = (unsigned char *)PyBytes_AS_STRING(result);
        rc = value(&c);
        skip_ws(&c);
        if (rc == OK && c.p != c.end)
            rc = REFUSE; /* trailing bytes */
    }
    free(c.scratch.at);
    PyBuffer_Release(&view);
    if (rc == OK) {
        if (_PyBytes_Resize(&result, (Py_ssize_t)c.out.len) < 0)
            return NULL;
        return result;
    }
    Py_XDECREF(result);
    if (rc == NOMEM)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* same_tokens(expected, actual) -> bool: whether both are the same JSON object or array token
 * for token, in the same order, with only whitespace between tokens told apart. Then they
 * parse to the same value (the same rules as the form: strict JSON, no escaped keys, nesting
 * up to MAX_DEPTH). False says nothing more: the documents may differ only in key order, or
 * not be JSON; the caller goes on to the forms. Nothing is written: a pretty-printed body and
 * its compact twin (the common re-indented case) are settled in one pass over both, without
 * sorting either, and a pair that differs stops at its first differing token. */
static PyObject *same_tokens(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "same_tokens(expected, actual) takes two bytes-like objects");
        return NULL;
    }
    Py_buffer first, second;
    if (PyObject_GetBuffer(args[0], &first, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &second, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&first);
        return NULL;
    }
    Ctx c = {0};
    c.p = first.buf;
    c.end = c.p + first.len;
    c.other = second.buf;
    c.other_end = c.other + second.len;
    skip_ws(&c);
    int rc = REFUSE;
    if (c.p < c.end && (*c.p == '{' || *c.p == '[')) {
        rc = value(&c);
        skip_ws(&c);
        if (rc == OK && (c.differs || c.p != c.end || skip_ws_at(c.other, c.other_end) != c.other_end))
            rc = DIFFERS; /* trailing bytes on either side */
    }
    PyBuffer_Release(&first);
    PyBuffer_Release(&second);
    if (rc == NOMEM)
        return PyErr_NoMemory();
    return PyBool_FromLong(rc == OK);
}

static PyMethodDef methods[] = {
    {"canonical", (PyCFunction)(void (*)(void))canonical, METH_FASTCALL,
     "canonical(data, plain=False): the canonical form of a JSON object or array (sorted keys, no whitespace), or None; "
     "plain refuses escapes and keys written twice."},
    {"same_tokens", (PyCFunction)(void (*)(void))same_tokens, METH_FASTCALL, "Whether two JSON documents are the same tokens in the same order (whitespace aside)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_canonjson", NULL, -1, methods};

PyMODINIT_FUNC PyInit__canonjson(void) {
    string_stop['"'] = string_stop['\\'] = 1;
    for (int b = 0; b < 0x20; b++)
        string_stop[b] = 1;
    return PyModule_Create(&module);
}
