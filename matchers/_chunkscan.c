/* Where a request's chunks hit in recorded requests: the inner loop of matchers/chunk.py.
 *
 * scan(chunks, datas) -> [(head_at, count, at), ...], one tuple per recorded request in
 * `datas`, exactly what matchers.chunk_scan.PythonScanner computes with bytes.find:
 *
 *     off = 0; head_at = -1; count = 0; at = -1
 *     for i, chunk in enumerate(chunks):
 *         pos = data.find(chunk, off)
 *         if pos >= 0: off = pos; at = i; head_at = pos if i == 0 else head_at; count += i > 0
 *
 * Why not that loop: a chunk that misses scans the whole rest of the request, for each of
 * ~500 chunks and ~500 candidates. Here each candidate is read once per request instead.
 * A chunk of 15 or 16 bytes found at q holds the 12-byte gram starting at the first multiple
 * of 4 at or after q, at offset d = that multiple - q (0..3). So a table of the 4 grams of
 * every distinct chunk (gram -> the chunks and offsets d holding it), probed with the
 * candidate's grams at offsets 0, 4, 8, ... and each probe hit checked against the whole
 * chunk, lists every occurrence of every chunk exactly once, in ascending order per chunk.
 * "Next occurrence of chunk i at or after off" is then a walk along that chunk's list; as
 * off never decreases, the walk resumes where it stopped. Shorter chunks (at most chunk 0
 * and the last one) are searched with memmem, as bytes.find would.
 *
 * The scanning runs without the GIL: the bytes objects are immutable and referenced.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GRAM 12   /* bytes of a probed gram: 8 + 4, two loads */
#define STRIDE 4  /* the candidate's grams probed start every STRIDE bytes */
#define MIN_INDEXED (GRAM + STRIDE - 1)
#define MAX_INDEXED 16 /* a chunk is compared as its first and last 8 bytes */
#define FILTER_BITS 16 /* a 8 KB bitmap of gram hashes: most probes stop there */
#define ABI 1          /* matchers.chunk_scan refuses a stale build of another version */

typedef struct {
    const char *ptr;
    Py_ssize_t len;
} Span;

typedef struct {
    uint64_t x; /* the gram's bytes 0..7 */
    uint32_t y; /* and 8..11 */
    int32_t start; /* its entries: entries[start .. start + count), -1 for an empty slot */
    int32_t count;
} Slot;

typedef struct {
    uint64_t first, last; /* the chunk's first and last 8 bytes */
    int32_t id;           /* distinct chunk */
    int32_t d;            /* offset of the gram in the chunk */
    int32_t len;
} Entry;

typedef struct {
    /* the request's chunks */
    Py_ssize_t n;
    int32_t *order; /* distinct chunk id of chunk i */
    Py_ssize_t ids;
    Span *distinct; /* content of each distinct chunk */
    char *indexed;  /* whether a distinct chunk is found through the gram table */
    /* gram -> entries */
    Slot *slots;
    uint64_t slot_mask;
    int slot_shift;
    Entry *entries;
    uint64_t *filter;
    /* per candidate: occurrences as linked lists per distinct chunk, in ascending order */
    Py_ssize_t *occ_pos;
    int32_t *occ_next;
    Py_ssize_t occ_cap;
    int32_t *cursor;  /* per distinct chunk: its next occurrence to look at, -1 for none */
    int32_t *tail;    /* per distinct chunk: its last occurrence so far (to link the next) */
    int32_t *touched; /* distinct chunks with occurrences in this candidate */
} Scan;

static inline uint64_t load64(const char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t load32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t gram_hash(uint64_t x, uint32_t y) { return x * 0x9E3779B97F4A7C15ULL + y * 0xC2B2AE3D27D4EB4FULL; }

static inline uint64_t filter_bit(uint64_t h) { return h >> (64 - FILTER_BITS); }

static void scan_free(Scan *s) {
    PyMem_Free(s->order);
    PyMem_Free(s->distinct);
    PyMem_Free(s->indexed);
    PyMem_Free(s->slots);
    PyMem_Free(s->entries);
    PyMem_Free(s->filter);
    PyMem_RawFree(s->occ_pos);
    PyMem_RawFree(s->occ_next);
    PyMem_Free(s->cursor);
    PyMem_Free(s->tail);
    PyMem_Free(s->touched);
}

static inline uint64_t find_slot(const Scan *s, uint64_t x, uint32_t y, uint64_t h) {
    uint64_t i = h >> s->slot_shift; /* the top bits: a multiplicative hash mixes every byte into them */
    while (s->slots[i].start >= 0 && (s->slots[i].x != x || s->slots[i].y != y)) i = (i + 1) & s->slot_mask;
    return i;
}

/* The table of the distinct chunks' grams. Called with the GIL (it allocates). */
static int build_table(Scan *s) {
    Py_ssize_t grams = 0;
    for (Py_ssize_t k = 0; k < s->ids; k++) {
        s->indexed[k] = s->distinct[k].len >= MIN_INDEXED && s->distinct[k].len <= MAX_INDEXED;
        grams += s->indexed[k] ? STRIDE : 0;
    }
    uint64_t size = 16;
    s->slot_shift = 60;
    while (size < (uint64_t)grams * 2) {
        size <<= 1;
        s->slot_shift--;
    }
    s->slots = PyMem_Malloc(size * sizeof(Slot));
    s->entries = PyMem_Malloc((grams ? grams : 1) * sizeof(Entry));
    s->filter = PyMem_Calloc((1u << FILTER_BITS) / 64, sizeof(uint64_t));
    int32_t *slot_of = PyMem_Malloc((grams ? grams : 1) * sizeof(int32_t));
    if (!s->slots || !s->entries || !s->filter || !slot_of) {
        PyMem_Free(slot_of);
        return -1;
    }
    s->slot_mask = size - 1;
    for (uint64_t i = 0; i < size; i++) {
        s->slots[i].start = -1;
        s->slots[i].count = 0;
    }
    /* Count each gram's entries, then lay them out slot by slot. Within a slot they go with
       d descending: at one probe the occurrences q = a - d of a chunk come out ascending. */
    for (int pass = 0; pass < 2; pass++) {
        int32_t e = 0;
        for (int32_t d = STRIDE - 1; d >= 0; d--) {
            for (Py_ssize_t k = 0; k < s->ids; k++) {
                if (!s->indexed[k]) continue;
                const Span *c = &s->distinct[k];
                uint64_t x = load64(c->ptr + d);
                uint32_t y = load32(c->ptr + d + 8);
                uint64_t h = gram_hash(x, y);
                if (pass == 0) {
                    uint64_t i = find_slot(s, x, y, h);
                    if (s->slots[i].start < 0) {
                        s->slots[i].x = x;
                        s->slots[i].y = y;
                        s->slots[i].start = 0;
                    }
                    s->slots[i].count++;
                    slot_of[e++] = (int32_t)i;
                    s->filter[filter_bit(h) >> 6] |= 1ULL << (filter_bit(h) & 63);
                } else {
                    Slot *slot = &s->slots[slot_of[e++]];
                    Entry *en = &s->entries[slot->start + slot->count++];
                    en->first = load64(c->ptr);
                    en->last = load64(c->ptr + c->len - 8);
                    en->id = (int32_t)k;
                    en->d = d;
                    en->len = (int32_t)c->len;
                }
            }
        }
        if (pass == 0) {
            int32_t start = 0;
            for (uint64_t i = 0; i < size; i++) {
                if (s->slots[i].start < 0) continue;
                s->slots[i].start = start;
                start += s->slots[i].count;
                s->slots[i].count = 0; /* counted again as the entries are placed */
            }
        }
    }
    PyMem_Free(slot_of);
    return 0;
}

/* Grows the occurrence arrays; called without the GIL, so the raw allocator. */
static int grow(Scan *s, Py_ssize_t need) {
    if (need >= INT32_MAX) return -1; /* occurrences are linked by int32 indexes */
    Py_ssize_t cap = s->occ_cap ? s->occ_cap : 1024;
    while (cap < need) cap *= 2;
    if (cap > INT32_MAX) cap = INT32_MAX;
    Py_ssize_t *pos = PyMem_RawRealloc(s->occ_pos, cap * sizeof(Py_ssize_t));
    if (!pos) return -1;
    s->occ_pos = pos;
    int32_t *next = PyMem_RawRealloc(s->occ_next, cap * sizeof(int32_t));
    if (!next) return -1;
    s->occ_next = next;
    s->occ_cap = cap;
    return 0;
}

/* The occurrences of the indexed chunks whose gram starts at a (see the top of this file). */
static inline int record(Scan *s, const char *data, Py_ssize_t len, Py_ssize_t a, Py_ssize_t *occ, Py_ssize_t *touched) {
    uint64_t x = load64(data + a);
    uint32_t y = load32(data + a + 8);
    const Slot *slot = &s->slots[find_slot(s, x, y, gram_hash(x, y))];
    for (int32_t e = slot->start, end = slot->start + slot->count; e < end; e++) {
        const Entry *en = &s->entries[e];
        Py_ssize_t q = a - en->d;
        if (q < 0 || q + en->len > len || load64(data + q) != en->first || load64(data + q + en->len - 8) != en->last) continue;
        if (*occ >= s->occ_cap && grow(s, *occ + 1) < 0) return -1;
        s->occ_pos[*occ] = q;
        s->occ_next[*occ] = -1;
        if (s->cursor[en->id] < 0) {
            s->cursor[en->id] = (int32_t)*occ;
            s->touched[(*touched)++] = en->id;
        } else {
            s->occ_next[s->tail[en->id]] = (int32_t)*occ;
        }
        s->tail[en->id] = (int32_t)*occ;
        (*occ)++;
    }
    return 0;
}

/* One candidate: its hits, as the loop at the top of this file. -1 when out of memory. */
static int scan_one(Scan *s, const char *data, Py_ssize_t len, Py_ssize_t out[3]) {
    Py_ssize_t occ = 0, touched = 0;
    Py_ssize_t probes = len >= GRAM ? (len - GRAM) / STRIDE + 1 : 0;
    /* The filter is tested 64 probes at a time without branching: only the probes that pass
       it (a fraction, but in no predictable pattern) cost a branch. */
    for (Py_ssize_t block = 0; block < probes; block += 64) {
        int64_t size = probes - block < 64 ? probes - block : 64;
        uint64_t pass = 0;
        for (int64_t j = 0; j < size; j++) {
            const char *p = data + (block + j) * STRIDE;
            uint64_t bit = filter_bit(gram_hash(load64(p), load32(p + 8)));
            pass |= ((s->filter[bit >> 6] >> (bit & 63)) & 1) << j;
        }
        while (pass) {
            Py_ssize_t a = (block + __builtin_ctzll(pass)) * STRIDE;
            pass &= pass - 1;
            if (record(s, data, len, a, &occ, &touched) < 0) return -1;
        }
    }
    Py_ssize_t off = 0, head_at = -1, count = 0, at = -1;
    for (Py_ssize_t i = 0; i < s->n; i++) {
        int32_t id = s->order[i];
        Py_ssize_t pos;
        if (s->indexed[id]) {
            int32_t k = s->cursor[id];
            while (k >= 0 && s->occ_pos[k] < off) k = s->occ_next[k];
            s->cursor[id] = k;
            if (k < 0) continue;
            pos = s->occ_pos[k];
        } else {
            const Span *c = &s->distinct[id];
            if (c->len > len - off) continue;
            const char *p = c->len ? memmem(data + off, len - off, c->ptr, c->len) : data + off;
            if (!p) continue;
            pos = p - data;
        }
        off = pos;
        at = i;
        if (i == 0) head_at = pos;
        else count++;
    }
    for (Py_ssize_t t = 0; t < touched; t++) s->cursor[s->touched[t]] = -1;
    out[0] = head_at;
    out[1] = count;
    out[2] = at;
    return 0;
}

static PyObject *scan(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *chunks_arg, *datas_arg;
    if (!PyArg_ParseTuple(args, "OO:scan", &chunks_arg, &datas_arg)) return NULL;
    PyObject *chunks = PySequence_Fast(chunks_arg, "scan: chunks must be a sequence of bytes");
    if (!chunks) return NULL;
    PyObject *datas = PySequence_Fast(datas_arg, "scan: datas must be a sequence of bytes");
    if (!datas) {
        Py_DECREF(chunks);
        return NULL;
    }
    Scan s = {0};
    PyObject *seen = NULL, *result = NULL;
    Span *spans = NULL;
    Py_ssize_t *hits = NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(chunks), m = PySequence_Fast_GET_SIZE(datas);
    if (n > INT32_MAX / GRAM) {
        PyErr_SetString(PyExc_OverflowError, "scan: too many chunks");
        goto done;
    }
    s.n = n;
    s.order = PyMem_Malloc((n ? n : 1) * sizeof(int32_t));
    s.distinct = PyMem_Malloc((n ? n : 1) * sizeof(Span));
    s.indexed = PyMem_Malloc(n ? n : 1);
    spans = PyMem_Malloc((m ? m : 1) * sizeof(Span));
    hits = PyMem_Malloc((m ? m : 1) * 3 * sizeof(Py_ssize_t));
    seen = PyDict_New();
    if (!s.order || !s.distinct || !s.indexed || !spans || !hits || !seen) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    /* Identical chunks share one id, so one occurrence list. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PySequence_Fast_GET_ITEM(chunks, i);
        if (!PyBytes_CheckExact(c)) {
            PyErr_Format(PyExc_TypeError, "scan: chunk %zd is %.100s, not bytes", i, Py_TYPE(c)->tp_name);
            goto done;
        }
        PyObject *id = PyLong_FromSsize_t(s.ids);
        if (!id) goto done;
        PyObject *got = PyDict_SetDefault(seen, c, id);
        Py_DECREF(id);
        if (!got) goto done;
        Py_ssize_t k = PyLong_AsSsize_t(got);
        if (k == s.ids) {
            s.distinct[k].ptr = PyBytes_AS_STRING(c);
            s.distinct[k].len = PyBytes_GET_SIZE(c);
            s.ids++;
        }
        s.order[i] = (int32_t)k;
    }
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *d = PySequence_Fast_GET_ITEM(datas, j);
        if (!PyBytes_CheckExact(d)) {
            PyErr_Format(PyExc_TypeError, "scan: data %zd is %.100s, not bytes", j, Py_TYPE(d)->tp_name);
            goto done;
        }
        spans[j].ptr = PyBytes_AS_STRING(d);
        spans[j].len = PyBytes_GET_SIZE(d);
    }
    s.cursor = PyMem_Malloc((s.ids ? s.ids : 1) * sizeof(int32_t));
    s.tail = PyMem_Malloc((s.ids ? s.ids : 1) * sizeof(int32_t));
    s.touched = PyMem_Malloc((s.ids ? s.ids : 1) * sizeof(int32_t));
    if (!s.cursor || !s.tail || !s.touched) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < s.ids; k++) s.cursor[k] = -1;
    if (build_table(&s) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < m && !failed; j++) failed = scan_one(&s, spans[j].ptr, spans[j].len, hits + 3 * j) < 0;
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyList_New(m);
    if (!result) goto done;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *t = Py_BuildValue("(nnn)", hits[3 * j], hits[3 * j + 1], hits[3 * j + 2]);
        if (!t) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, j, t);
    }
done:
    scan_free(&s);
    PyMem_Free(spans);
    PyMem_Free(hits);
    Py_XDECREF(seen);
    Py_DECREF(chunks);
    Py_DECREF(datas);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(chunks, datas) -> [(head_at, count, at), ...]: where each recorded request in datas holds the chunks, in order "
     "(see matchers.chunk_scan)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_chunkscan",
    .m_doc = "Compiled inner loop of Koala's chunk strategy (matchers/chunk_scan.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__chunkscan(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "ABI", ABI) < 0) Py_CLEAR(m);
    return m;
}
