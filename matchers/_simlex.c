/* The token vector of Koala's `sim` strategy for ASCII requests: the hot path of
 * matchers/sim.py `_lex_vector`.
 *
 * lex_ascii(data) -> {token: weight} or None
 * sum_of_squares(vector) -> int or None
 *
 * Tokens: runs of [A-Za-z0-9_.] weigh their length per occurrence; every other byte is a
 * one-byte token of weight 1 per occurrence. None when `data` is not ASCII or holds a run
 * over 128 bytes: the Python code handles those (Unicode letters, runs cut into pieces).
 *
 * Why: the Python version splits every run into a bytes object and counts them (about
 * 90 ms for a session of 500 x 8 KB requests); here runs are counted in a hash table over
 * the request's own bytes, and a bytes object is made once per distinct token.
 *
 * sum_of_squares: a vector's squared norm (matchers/sim.py `_norm`), exact, for a vector of
 * int weights whose sum of squares fits in 63 bits; None for any other, which Python sums.
 *
 * Packed vectors (what a session keeps of each call: matchers/sim.py `pack_vector`):
 *   lex_packed(data, extra) -> (packed, sum of squares) or None, for ASCII data as lex_ascii,
 *       with `extra`'s (token, weight) pairs added (the HTTP URI weighting);
 *   pack(vector) -> (packed, sum of squares), for any {bytes: int} vector;
 *   dots(packed, [packed, ...]) -> [int, ...], the exact dot product with each;
 *   unpacked(packed) -> {token: weight}, for tests.
 * A packed vector is one bytes object: a head, then its entries (token hash, weight, and where
 * the token's bytes are), then the tokens' bytes. Why: a dict of bytes and ints per call was
 * most of a session's preparation (making ~700 objects per 8 KB call), and a match walked
 * each call's dict through Python's dict lookups; here a match is one table of the request's
 * tokens, probed with each call's entries in C. Equal hashes are confirmed on the bytes, so
 * the sums are exactly those of the dicts.
 * (A 500 x 8 KB session's norms: 11 -> 4 ms. Sharing one bytes object per token across a
 * session's vectors was tried and dropped: looking each up in a session-wide table cost
 * more in cache misses, 50 -> 85 ms, than making the objects saved.)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../koala_store/_runtable.h"

#define CAP 128

static unsigned char word_byte[256];
static unsigned char byte_of[128]; /* byte_of[c] == c: the one-byte tokens' bytes */

/* A packed vector: Head, then Entry[n], then the tokens' bytes (`arena` of them). */
typedef struct {
    int64_t n;
    int64_t arena;
} Head;

typedef struct {
    uint64_t hash; /* hash_run of the token's bytes */
    int64_t weight;
    uint32_t at; /* the token's bytes: arena[at : at + len] */
    uint32_t len;
} Entry;

/* Weights this size or more are refused (packed_of), so that a dot product's sum of products cannot pass
 * 127 bits (a weight is a token's length times its count: a request's size, at most). */
#define MAX_WEIGHT (1LL << 48)

typedef struct {
    const unsigned char *at;
    Py_ssize_t len;
    uint64_t hash;
    int64_t weight;
} Token;

static PyObject *int128_to_long(__int128 v) {
    if (v >= INT64_MIN && v <= INT64_MAX)
        return PyLong_FromLongLong((long long)v);
    unsigned char bytes[16];
    for (int i = 0; i < 16; i++)
        bytes[i] = (unsigned char)((unsigned __int128)v >> (8 * i));
    return _PyLong_FromByteArray(bytes, 16, 1, 1); /* little-endian, signed */
}

/* (packed, sum of squares) of `n` tokens. */
static PyObject *packed_of(const Token *tokens, Py_ssize_t n) {
    Py_ssize_t arena = 0;
    __int128 squares = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (tokens[i].weight >= MAX_WEIGHT) {
            PyErr_SetString(PyExc_OverflowError, "a sim weight passes 2**48");
            return NULL;
        }
        arena += tokens[i].len;
        squares += (__int128)tokens[i].weight * tokens[i].weight;
    }
    if (arena > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a sim vector's tokens hold over 4 GB");
        return NULL;
    }
    PyObject *blob = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(Head) + n * (Py_ssize_t)sizeof(Entry) + arena);
    if (blob == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(blob);
    Head head = {n, arena};
    memcpy(out, &head, sizeof head);
    Entry *entries = (Entry *)(out + sizeof(Head));
    unsigned char *bytes = (unsigned char *)(entries + n);
    uint32_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        entries[i] = (Entry){tokens[i].hash, tokens[i].weight, at, (uint32_t)tokens[i].len};
        memcpy(bytes + at, tokens[i].at, (size_t)tokens[i].len);
        at += (uint32_t)tokens[i].len;
    }
    PyObject *sum = int128_to_long(squares);
    if (sum == NULL) {
        Py_DECREF(blob);
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, blob, sum);
    Py_DECREF(blob);
    Py_DECREF(sum);
    return pair;
}

/* A weight as int64, or -1 with an error set (not an int, negative, or MAX_WEIGHT or more). */
static int64_t weight_of(PyObject *value) {
    int overflow = 0;
    long long w = PyLong_CheckExact(value) ? PyLong_AsLongLongAndOverflow(value, &overflow) : -1;
    if (w == -1 && PyErr_Occurred())
        return -1;
    if (!PyLong_CheckExact(value) || overflow || w < 0 || w >= MAX_WEIGHT) {
        PyErr_Format(PyExc_ValueError, "a sim weight must be an int in [0, 2**48), not %R", value);
        return -1;
    }
    return w;
}

static int set_weight(PyObject *vec, const char *at, Py_ssize_t len, Py_ssize_t weight) {
    PyObject *key = PyBytes_FromStringAndSize(at, len);
    PyObject *value = key ? PyLong_FromSsize_t(weight) : NULL;
    int failed = value == NULL || PyDict_SetItem(vec, key, value) < 0;
    Py_XDECREF(key);
    Py_XDECREF(value);
    return failed ? -1 : 0;
}

/* Counts the runs of ASCII `data` into `table` and its other bytes into `others`. 1 when the
 * data is not ASCII or holds a run over CAP bytes (Python's lexer answers), -1 when out of
 * memory, else 0. */
static int count_ascii(const unsigned char *data, Py_ssize_t size, Table *table, Py_ssize_t others[128]) {
    Py_ssize_t i = 0;
    while (i < size) {
        unsigned char c = data[i];
        if (c >= 0x80)
            return 1;
        if (!word_byte[c]) {
            others[c]++;
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < size && word_byte[data[i]])
            i++;
        if (i - start > CAP)
            return 1;
        if (table_count(table, data + start, i - start, data + size) == NULL)
            return -1;
    }
    return 0;
}

static PyObject *lex_ascii(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "lex_ascii() takes bytes");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t size = PyBytes_GET_SIZE(arg);
    Py_ssize_t others[128] = {0};
    Table table;
    if (table_init(&table, size) < 0)
        return PyErr_NoMemory();
    int got = count_ascii(data, size, &table, others);
    if (got > 0)
        goto fall_back;
    if (got < 0) {
        table_free(&table);
        return PyErr_NoMemory();
    }
    Py_ssize_t distinct = (Py_ssize_t)table.used;
    for (int c = 0; c < 128; c++)
        distinct += others[c] != 0;
    /* Made at its final size: growing it step by step cost ~6% of the call's instructions. */
    PyObject *vec = _PyDict_NewPresized(distinct);
    if (vec == NULL)
        goto failed;
    for (size_t j = 0; j < table.used; j++) {
        Slot *s = &table.slots[j];
        if (set_weight(vec, (const char *)s->at, s->len, s->len * s->count) < 0)
            goto failed_vec;
    }
    for (int c = 0; c < 128; c++) {
        char byte = (char)c;
        if (others[c] && set_weight(vec, &byte, 1, others[c]) < 0)
            goto failed_vec;
    }
    table_free(&table);
    return vec;

failed_vec:
    Py_DECREF(vec);
failed:
    table_free(&table);
    return NULL;

fall_back:
    table_free(&table);
    Py_RETURN_NONE;
}

static PyObject *lex_packed(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *data_arg, *extra_arg;
    if (!PyArg_ParseTuple(args, "SO:lex_packed", &data_arg, &extra_arg))
        return NULL;
    PyObject *extra = PySequence_Fast(extra_arg, "lex_packed: extra must be a sequence of (bytes, int)");
    if (extra == NULL)
        return NULL;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(data_arg);
    Py_ssize_t size = PyBytes_GET_SIZE(data_arg);
    Py_ssize_t others[128] = {0};
    int64_t other_extra[128] = {0};
    Table table;
    Token *tokens = NULL;
    PyObject *result = NULL;
    if (table_init(&table, size) < 0) {
        Py_DECREF(extra);
        return PyErr_NoMemory();
    }
    int got = count_ascii(data, size, &table, others);
    if (got < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (got > 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    /* The extra weights: a one-byte token of another byte adds to that byte's count, any
     * other token to its run's slot (`packed` holds the extra weight; a slot the extra
     * made has no occurrence of its own). */
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(extra); k++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(extra, k);
        PyObject *token, *weight;
        if (!PyTuple_Check(pair) || !PyArg_ParseTuple(pair, "SO:lex_packed extra", &token, &weight)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "lex_packed: extra must be a sequence of (bytes, int)");
            goto done;
        }
        int64_t w = weight_of(weight);
        if (w < 0)
            goto done;
        const unsigned char *t = (const unsigned char *)PyBytes_AS_STRING(token);
        Py_ssize_t n = PyBytes_GET_SIZE(token);
        if (n == 0)
            continue;
        if (n == 1 && t[0] < 0x80 && !word_byte[t[0]]) {
            other_extra[t[0]] += w;
            continue;
        }
        Slot *slot = table_count(&table, t, n, t + n);
        if (slot == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        slot->count--;
        slot->packed += (uint64_t)w;
    }
    tokens = PyMem_Malloc((table.used + 128) * sizeof(Token));
    if (tokens == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n = 0;
    for (size_t j = 0; j < table.used; j++) {
        Slot *slot = &table.slots[j];
        tokens[n++] = (Token){slot->at, slot->len, slot->hash, (int64_t)(slot->len * slot->count) + (int64_t)slot->packed};
    }
    for (int c = 0; c < 128; c++) {
        int64_t w = others[c] + other_extra[c];
        if (w)
            tokens[n++] = (Token){&byte_of[c], 1, hash_run(&byte_of[c], 1, &byte_of[c] + 1), w};
    }
    result = packed_of(tokens, n);
done:
    PyMem_Free(tokens);
    table_free(&table);
    Py_DECREF(extra);
    return result;
}

static PyObject *pack(PyObject *self, PyObject *vec) {
    (void)self;
    if (!PyDict_Check(vec)) {
        PyErr_SetString(PyExc_TypeError, "pack() takes a dict");
        return NULL;
    }
    Py_ssize_t n = PyDict_GET_SIZE(vec), i = 0, pos = 0;
    Token *tokens = PyMem_Malloc((n ? n : 1) * sizeof(Token));
    if (tokens == NULL)
        return PyErr_NoMemory();
    PyObject *key, *value, *result = NULL;
    while (PyDict_Next(vec, &pos, &key, &value)) {
        if (!PyBytes_Check(key)) {
            PyErr_Format(PyExc_TypeError, "pack: a token must be bytes, not %.100s", Py_TYPE(key)->tp_name);
            goto done;
        }
        int64_t w = weight_of(value);
        if (w < 0)
            goto done;
        const unsigned char *t = (const unsigned char *)PyBytes_AS_STRING(key);
        Py_ssize_t len = PyBytes_GET_SIZE(key);
        tokens[i++] = (Token){t, len, hash_run(t, len, t + len), w};
    }
    result = packed_of(tokens, i);
done:
    PyMem_Free(tokens);
    return result;
}

/* A packed vector's parts, checked against its size. 0, or -1 with an error set. */
static int unpack(PyObject *blob, Head *head, const Entry **entries, const unsigned char **bytes) {
    if (!PyBytes_Check(blob) || PyBytes_GET_SIZE(blob) < (Py_ssize_t)sizeof(Head)) {
        PyErr_SetString(PyExc_TypeError, "a packed vector must be bytes from lex_packed() or pack()");
        return -1;
    }
    const char *p = PyBytes_AS_STRING(blob);
    memcpy(head, p, sizeof *head);
    Py_ssize_t size = PyBytes_GET_SIZE(blob);
    if (head->n < 0 || head->arena < 0 || head->n > size / (Py_ssize_t)sizeof(Entry) || head->arena > size ||
        (Py_ssize_t)sizeof(Head) + head->n * (Py_ssize_t)sizeof(Entry) + head->arena != size) {
        PyErr_SetString(PyExc_ValueError, "not a packed vector (its size disagrees with its head): pass what lex_packed() or pack() made");
        return -1;
    }
    *entries = (const Entry *)(p + sizeof(Head));
    *bytes = (const unsigned char *)(*entries + head->n);
    return 0;
}

/* Whether an entry's token lies within the vector's bytes (the head was checked by unpack). */
static inline int within(const Entry *e, const Head *head) { return (int64_t)e->at + e->len <= head->arena; }

static int bad_entry(void) {
    PyErr_SetString(PyExc_ValueError, "not a packed vector (a token passes its end): pass what lex_packed() or pack() made");
    return -1;
}

static PyObject *dots(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *request, *others_arg;
    if (!PyArg_ParseTuple(args, "OO:dots", &request, &others_arg))
        return NULL;
    Head head;
    const Entry *entries;
    const unsigned char *bytes;
    if (unpack(request, &head, &entries, &bytes) < 0)
        return NULL;
    PyObject *others = PySequence_Fast(others_arg, "dots: the others must be a sequence of packed vectors");
    if (others == NULL)
        return NULL;
    /* The request's tokens by hash: open addressing, under half full. */
    size_t capacity = 16;
    while (capacity < (size_t)head.n * 2)
        capacity *= 2;
    size_t mask = capacity - 1;
    int32_t *slots = PyMem_Malloc(capacity * sizeof(int32_t));
    PyObject *result = PyList_New(PySequence_Fast_GET_SIZE(others));
    if (slots == NULL || result == NULL) {
        if (slots == NULL)
            PyErr_NoMemory();
        goto failed;
    }
    for (size_t j = 0; j < capacity; j++)
        slots[j] = -1;
    for (int64_t e = 0; e < head.n; e++) {
        if (!within(&entries[e], &head)) {
            bad_entry();
            goto failed;
        }
        size_t j = entries[e].hash & mask;
        while (slots[j] >= 0)
            j = (j + 1) & mask;
        slots[j] = (int32_t)e;
    }
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(others); k++) {
        Head oh;
        const Entry *oe;
        const unsigned char *ob;
        if (unpack(PySequence_Fast_GET_ITEM(others, k), &oh, &oe, &ob) < 0)
            goto failed;
        __int128 sum = 0;
        for (int64_t e = 0; e < oh.n; e++) {
            const Entry *x = &oe[e];
            if (!within(x, &oh)) {
                bad_entry();
                goto failed;
            }
            for (size_t j = x->hash & mask; slots[j] >= 0; j = (j + 1) & mask) {
                const Entry *r = &entries[slots[j]];
                if (r->hash == x->hash && r->len == x->len && memcmp(bytes + r->at, ob + x->at, x->len) == 0) {
                    sum += (__int128)r->weight * x->weight;
                    break;
                }
            }
        }
        PyObject *value = int128_to_long(sum);
        if (value == NULL)
            goto failed;
        PyList_SET_ITEM(result, k, value);
    }
    PyMem_Free(slots);
    Py_DECREF(others);
    return result;
failed:
    PyMem_Free(slots);
    Py_XDECREF(result);
    Py_DECREF(others);
    return NULL;
}

static PyObject *unpacked(PyObject *self, PyObject *blob) {
    (void)self;
    Head head;
    const Entry *entries;
    const unsigned char *bytes;
    if (unpack(blob, &head, &entries, &bytes) < 0)
        return NULL;
    PyObject *vec = PyDict_New();
    for (int64_t e = 0; vec != NULL && e < head.n; e++) {
        if (!within(&entries[e], &head)) {
            bad_entry();
            Py_CLEAR(vec);
        } else if (set_weight(vec, (const char *)bytes + entries[e].at, entries[e].len, entries[e].weight) < 0)
            Py_CLEAR(vec);
    }
    return vec;
}

static PyObject *sum_of_squares(PyObject *self, PyObject *vec) {
    (void)self;
    if (!PyDict_Check(vec)) {
        PyErr_SetString(PyExc_TypeError, "sum_of_squares() takes a dict");
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    long long sum = 0;
    while (PyDict_Next(vec, &pos, &key, &value)) {
        int overflow = 1;
        long long w = PyLong_CheckExact(value) ? PyLong_AsLongLongAndOverflow(value, &overflow) : 0;
        if (overflow || __builtin_mul_overflow(w, w, &w) || __builtin_add_overflow(sum, w, &sum))
            Py_RETURN_NONE; /* not an int, or past 63 bits: Python's exact ints sum it */
    }
    return PyLong_FromLongLong(sum);
}

static PyMethodDef methods[] = {
    {"sum_of_squares", sum_of_squares, METH_O, "sum_of_squares(vector) -> the sum of its squared int weights, or None (see matchers.sim._norm)."},
    {"lex_packed", lex_packed, METH_VARARGS,
     "lex_packed(data, extra) -> (packed vector, sum of squares) for ASCII data whose word runs fit in 128 bytes, with extra's "
     "(token, weight) added; else None (see matchers.sim.pack_vector)."},
    {"pack", pack, METH_O, "pack({token: weight}) -> (packed vector, sum of squares) (see matchers.sim.pack_vector)."},
    {"unpacked", unpacked, METH_O, "unpacked(packed) -> {token: weight}: the vector a packed one holds (for tests)."},
    {"dots", dots, METH_VARARGS, "dots(packed, [packed, ...]) -> the exact dot product of the first with each of the others."},
    {"lex_ascii", lex_ascii, METH_O,
     "lex_ascii(data) -> {token: weight} for ASCII data whose word runs fit in 128 bytes, else None "
     "(see matchers.sim._lex_vector)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_simlex",
    .m_doc = "Compiled token counting of Koala's sim strategy (matchers/sim.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__simlex(void) {
    for (int c = 0; c < 128; c++)
        byte_of[c] = (unsigned char)c;
    for (int c = 0; c < 256; c++)
        word_byte[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    return PyModule_Create(&module);
}
