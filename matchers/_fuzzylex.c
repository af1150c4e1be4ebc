/* The lexeme encoding of the `fuzzy` strategy for ASCII text: the hot path of
 * matchers/fuzzy.py `FuzzySessionMatcher._encode`.
 *
 * lexeme_cache(alphabet) -> a cache of `alphabet`'s codes by lexeme bytes, for one session
 * encode_ascii(text, alphabet, grow, cache) -> str or None
 *
 * Lexemes as fuzzy.py's _LEXEME finds them: a placeholder (<time>, <uuid>, <num>, <date>,
 * <hex>), a run of [A-Za-z0-9_], or any other character that is not blank; blanks (\s on
 * ASCII: \t \n \v \f \r, \x1c-\x1f and space) only separate them. Each lexeme becomes its
 * code in `alphabet` (a dict of lexeme -> code string). A lexeme not in it gets, with
 * `grow`, a new code added to the alphabet as FuzzySessionMatcher._new_code makes it (the
 * next character from U+0100 on, surrogates skipped, repeated by the lexeme's weight
 * 1 + min(len, 12) // 4), else U+10FFFF repeated by its weight. Codes are looked up in the
 * order lexemes first occur, so an alphabet grows exactly as the Python code grows it.
 *
 * None when `text` is not ASCII or holds no lexeme (empty or all blank): the Python code
 * handles those.
 *
 * Why: the Python version finds every lexeme with a regex and looks each one up in the
 * alphabet (about 1.1 ms for an 8 KB key, 550 ms to encode a session of 500 x 8 KB calls).
 * Here a lexeme's code is found by its bytes in the session's cache (koala_store/_runtable.h,
 * the bytes copied into the cache's own blocks): a lexeme becomes a str and is looked up in
 * the alphabet once per session, not once per text (encoding every key of that session,
 * measured in alternation: 35-58 -> 31-38 ms the first time, 35-57 -> 26-27 ms again).
 * One-character lexemes (70% of them there) skip the table for an array by byte, and codes
 * of the result's kind are copied whole (best of 9: 28 -> 24 ms cold, 24 -> 19 ms warm). The
 * alphabet stays the truth: codes the Python code adds to it are found there, then cached;
 * unknown lexemes (grow false) are never cached.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../koala_store/_runtable.h"

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

static unsigned char word_byte[256], blank_byte[256];
/* A byte that is a lexeme of its own: ASCII, neither a word's nor a blank, and not the "<" a
 * placeholder starts with. */
static unsigned char punct_byte[256];

/* The length of the placeholder at p (up to end), or 0. */
static Py_ssize_t placeholder(const unsigned char *p, const unsigned char *end) {
    static const struct {
        const char *name;
        size_t len;
    } names[] = {{"<time>", 6}, {"<uuid>", 6}, {"<num>", 5}, {"<date>", 6}, {"<hex>", 5}};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if ((size_t)(end - p) >= names[k].len && memcmp(p, names[k].name, names[k].len) == 0)
            return (Py_ssize_t)names[k].len;
    return 0;
}

/* fuzzy.py's _FIRST_CODE and _LAST_CODE: the code points an alphabet's codes are made of. */
#define FIRST_CODE 0x100
#define LAST_CODE 0x10FFFE

static inline Py_ssize_t weight_of(Py_ssize_t len) { return 1 + (len < 12 ? len : 12) / 4; }

/* The code `ch` gives a lexeme of `len` characters: ch repeated by the lexeme's weight. */
static PyObject *code_made_of(Py_UCS4 ch, Py_ssize_t len) {
    Py_ssize_t weight = weight_of(len);
    PyObject *code = PyUnicode_New(weight, ch);
    if (code == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < weight; i++)
        PyUnicode_WRITE(PyUnicode_KIND(code), PyUnicode_DATA(code), i, ch);
    return code;
}

/* The code of an unknown lexeme when the alphabet may not grow (fuzzy.py's _UNKNOWN). */
static PyObject *unknown_code(Py_ssize_t len) { return code_made_of(0x10FFFF, len); }

/* A new code for `lexeme`, added to the alphabet (a new reference): FuzzySessionMatcher._new_code. */
static PyObject *new_code(PyObject *alphabet, PyObject *lexeme, Py_ssize_t len) {
    Py_ssize_t n = FIRST_CODE + PyDict_GET_SIZE(alphabet);
    if (n >= 0xD800)
        n += 0x800; /* skip surrogates */
    if (n > LAST_CODE) {
        Py_hash_t h = PyObject_Hash(lexeme);
        if (h == -1)
            return NULL;
        Py_ssize_t span = 0xD800 - FIRST_CODE, r = (Py_ssize_t)(h % span);
        n = FIRST_CODE + (r < 0 ? r + span : r); /* Python's %: never negative */
    }
    PyObject *code = code_made_of((Py_UCS4)n, len);
    if (code != NULL && PyDict_SetItem(alphabet, lexeme, code) < 0)
        Py_CLEAR(code);
    return code;
}

/* --- the session's cache ----------------------------------------------------------- */

/* packed_of's flag for a code encode_chars can write: a character of U+0100..U+FFFF, weight 1 to 4. */
#define TWO_BYTES_FOUR_AT_MOST ((uint64_t)1 << 63)
#define WEIGHT_OF(packed) ((uint64_t)((packed) >> 32) & 0x7fffffff)
#define BLANK TWO_BYTES_FOUR_AT_MOST /* Cache.at_once's blank: of the fast shape, weight 0 */

#define BLOCK 65536
#define CAPSULE "matchers._fuzzylex.cache"

typedef struct Block {
    struct Block *next;
    size_t used, cap;
    unsigned char data[];
} Block;

typedef struct {
    Table table; /* lexeme bytes (in blocks) -> code (a strong reference) */
    Block *blocks;
    PyObject *alphabet; /* the dict the codes come from */
    /* The codes of one-character lexemes (strong references), found without hashing: most
     * lexemes of a key are punctuation (70% of a 500 x 8 KB session's). */
    PyObject *single[128];
    uint64_t single_packed[128]; /* their packed_of */
    /* What encode_chars writes for a byte at once, without reading it as a lexeme: a
     * one-character lexeme's packed code when the cache holds it and it is of the fast shape,
     * BLANK for a blank (written, but the end not moved on), else 0 (read the general way). */
    uint64_t at_once[256];
    /* How many of the alphabet's lexemes the cache holds. Every code it holds is the
     * alphabet's, so while the alphabet is no bigger, a lexeme the cache lacks is not in the
     * alphabet either: a new lexeme is added without looking it up first (a session of
     * 500 x 8 KB calls has ~25,000). Python code that adds codes makes the alphabet bigger. */
    Py_ssize_t known;
    /* Lexemes given codes here and not yet written into the alphabet, in the order they came:
     * making a str for each, its code's str and a dict entry cost ~900 instructions, a
     * quarter of what encoding a session's calls cost when most of their lexemes are new.
     * flush_alphabet() writes them, as _new_code would have, before Python code reads or grows
     * the alphabet. Their codes are in the cache (packed, no str). Once Python code has grown
     * the alphabet (a text beyond ASCII), it holds lexemes the cache lacks: new lexemes are
     * then looked up and added at once, as before there was a pending list. */
    struct Pending *pending;
    size_t pending_count, pending_cap;
} Cache;

typedef struct Pending {
    const unsigned char *at; /* the lexeme's bytes, kept by the cache */
    Py_ssize_t len;
    uint64_t packed; /* its code */
} Pending;

/* One-character lexemes' bytes, for Pending.at. */
static unsigned char ascii_bytes[128];

/* A freed cache's table, emptied, for the next cache to start with. A replay's sessions are
 * alike, so the next one needs about as much room; a fresh table grew to it (256 cells
 * doubled up to 65,536 for a 500 x 8 KB session) with a calloc per step, and malloc mapped
 * the big steps fresh each session: a page fault per 4 KB the lexer first wrote, about 1,500
 * a session (perf, fuzzy's full preparation). Tables above KEEP_CELLS are freed. The GIL is
 * held wherever a table is taken or given back, so no two caches race for it. */
#define KEEP_CELLS ((size_t)1 << 17)

static Table kept_table; /* index NULL: none kept */

/* The kept table for a new cache, else a fresh one. 0, or -1 when out of memory. */
static int take_table(Table *t) {
    if (kept_table.index == NULL)
        return table_init(t, 0);
    *t = kept_table;
    kept_table = (Table){0};
    return 0;
}

/* The table's values released and the table kept, emptied, when it is the biggest the module
 * would keep; else freed. */
static void give_table(Table *t) {
    size_t capacity = t->mask + 1;
    if (t->slots == NULL || capacity > KEEP_CELLS || (kept_table.index != NULL && kept_table.mask >= t->mask)) {
        table_free(t);
        return;
    }
    for (size_t i = 0; i < t->used; i++)
        Py_XDECREF(t->slots[i].value);
    memset(t->index, 0, capacity * sizeof(uint64_t)); /* sequential: 512 KB in microseconds */
    t->used = 0;
    table_free(&kept_table); /* the smaller one kept before, empty */
    kept_table = *t;
    t->index = NULL;
    t->slots = NULL;
}

static void cache_free(PyObject *capsule) {
    Cache *cache = PyCapsule_GetPointer(capsule, CAPSULE);
    if (cache == NULL)
        return;
    give_table(&cache->table);
    for (int c = 0; c < 128; c++)
        Py_XDECREF(cache->single[c]);
    for (Block *b = cache->blocks, *next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    Py_XDECREF(cache->alphabet);
    free(cache->pending);
    free(cache);
}

static PyObject *lexeme_cache(PyObject *self, PyObject *alphabet) {
    (void)self;
    if (!PyDict_Check(alphabet)) {
        PyErr_SetString(PyExc_TypeError, "lexeme_cache() takes the session's alphabet (a dict)");
        return NULL;
    }
    Cache *cache = calloc(1, sizeof(Cache));
    if (cache == NULL || take_table(&cache->table) < 0) {
        free(cache);
        return PyErr_NoMemory();
    }
    for (int c = 0; c < 256; c++)
        if (blank_byte[c])
            cache->at_once[c] = BLANK;
    Py_INCREF(alphabet);
    cache->alphabet = alphabet;
    PyObject *capsule = PyCapsule_New(cache, CAPSULE, cache_free);
    if (capsule == NULL) {
        table_free(&cache->table);
        Py_DECREF(alphabet);
        free(cache);
    }
    return capsule;
}

/* A copy of p[0:n] that lives as long as the cache. */
static const unsigned char *keep(Cache *cache, const unsigned char *p, size_t n) {
    Block *b = cache->blocks;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > BLOCK ? n : BLOCK;
        if ((b = malloc(sizeof(Block) + cap)) == NULL)
            return NULL;
        *b = (Block){cache->blocks, 0, cap};
        cache->blocks = b;
    }
    unsigned char *at = b->data + b->used;
    memcpy(at, p, n);
    b->used += n;
    return at;
}

/* The code of the lexeme at[0:len] from the alphabet (a new reference), made and added to
 * it with `grow`, else the unknown code; *cacheable is false for an unknown lexeme (this
 * text's alone: the alphabet may gain it later). `in_dict` false: the caller knows the
 * alphabet has no such lexeme, and it is not looked up. */
static PyObject *code_of(const unsigned char *at, Py_ssize_t len, PyObject *alphabet, int in_dict, int grow, int *cacheable) {
    PyObject *lexeme = PyUnicode_New(len, 127); /* the bytes are ASCII: no decoding */
    if (lexeme == NULL)
        return NULL;
    memcpy(PyUnicode_1BYTE_DATA(lexeme), at, (size_t)len);
    PyObject *code = in_dict ? PyDict_GetItemWithError(alphabet, lexeme) : NULL;
    *cacheable = 1;
    if (code != NULL)
        Py_INCREF(code);
    else if (!PyErr_Occurred()) {
        *cacheable = grow;
        code = grow ? new_code(alphabet, lexeme, len) : unknown_code(len);
    }
    Py_DECREF(lexeme);
    if (code != NULL && !PyUnicode_Check(code)) {
        PyErr_Format(PyExc_TypeError, "encode_ascii(): the code of a lexeme must be str, not %.100s", Py_TYPE(code)->tp_name);
        Py_CLEAR(code);
    }
    return code;
}

/* A code as its character and weight, (weight << 32) | character, when it is one character
 * repeated (every code _new_code makes), with TWO_BYTES_FOUR_AT_MOST when it is one of those;
 * 0 for any other str, written as it is. */
static uint64_t packed_of(PyObject *code) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(code);
    if (len < 1 || len > 64)
        return 0;
    int kind = PyUnicode_KIND(code);
    const void *data = PyUnicode_DATA(code);
    Py_UCS4 ch = PyUnicode_READ(kind, data, 0);
    for (Py_ssize_t j = 1; j < len; j++)
        if (PyUnicode_READ(kind, data, j) != ch)
            return 0;
    uint64_t fast = len <= 4 && ch >= 0x100 && ch <= 0xFFFF ? TWO_BYTES_FOUR_AT_MOST : 0;
    return fast | (uint64_t)len << 32 | ch;
}

/* Write the pending lexemes into the alphabet, in order. 0, or -1 with an exception (those
 * not written stay pending). */
static int flush(Cache *cache) {
    size_t k = 0;
    int rc = 0;
    for (; k < cache->pending_count; k++) {
        Pending *e = &cache->pending[k];
        PyObject *lexeme = PyUnicode_New(e->len, 127);
        PyObject *code = lexeme == NULL ? NULL : code_made_of((Py_UCS4)e->packed, e->len);
        if (code != NULL)
            memcpy(PyUnicode_1BYTE_DATA(lexeme), e->at, (size_t)e->len);
        if (code == NULL || PyDict_SetItem(cache->alphabet, lexeme, code) < 0)
            rc = -1;
        Py_XDECREF(lexeme);
        Py_XDECREF(code);
        if (rc < 0)
            break;
        cache->known++;
    }
    cache->pending_count -= k;
    if (k > 0 && cache->pending_count > 0) /* what an error left: kept, first in line */
        memmove(cache->pending, cache->pending + k, sizeof(Pending) * cache->pending_count);
    return rc;
}

static PyObject *flush_alphabet(PyObject *self, PyObject *capsule) {
    (void)self;
    Cache *cache = PyCapsule_GetPointer(capsule, CAPSULE);
    if (cache == NULL || flush(cache) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* A new lexeme's code, made as _new_code makes it (the alphabet's size counts the pending
 * lexemes), and kept pending. 1, 0 when it must be made at once (past the last code, where
 * _new_code hashes the lexeme), or -1 when out of memory. */
static int add_pending(Cache *cache, const unsigned char *kept, Py_ssize_t len, uint64_t *packed) {
    Py_ssize_t n = FIRST_CODE + cache->known + (Py_ssize_t)cache->pending_count;
    if (n >= 0xD800)
        n += 0x800; /* skip surrogates */
    if (n > LAST_CODE)
        return 0;
    if (cache->pending_count == cache->pending_cap) {
        size_t cap = cache->pending_cap ? 2 * cache->pending_cap : 1024;
        Pending *grown = realloc(cache->pending, sizeof(Pending) * cap);
        if (grown == NULL)
            return -1;
        cache->pending = grown;
        cache->pending_cap = cap;
    }
    Py_ssize_t weight = weight_of(len);
    *packed = (weight <= 4 && n <= 0xFFFF ? TWO_BYTES_FOUR_AT_MOST : 0) | (uint64_t)weight << 32 | (uint64_t)n;
    cache->pending[cache->pending_count++] = (Pending){kept, len, *packed};
    return 1;
}

/* The code of the lexeme at[0:len] in *code (borrowed: held by the cache, or by `owned`; NULL
 * for a pending code) and its packed_of in *packed (never 0 for a pending code). 0, or -1
 * with an exception. */
static ALWAYS_INLINE int cached_code(Cache *cache, const unsigned char *at, Py_ssize_t len, const unsigned char *end, int grow, PyObject *owned, PyObject **code_out, uint64_t *packed) {
    PyObject **home; /* where the cache keeps this lexeme's code */
    uint64_t *home_packed;
    const unsigned char *kept; /* the lexeme's bytes, as long as the cache lives */
    if (len == 1) {
        home = &cache->single[*at & 0x7f];
        home_packed = &cache->single_packed[*at & 0x7f];
        kept = &ascii_bytes[*at & 0x7f];
    } else {
        Slot *s = table_count(&cache->table, at, len, end);
        if (s != NULL && s->count == 1 && (s->at = keep(cache, at, (size_t)len)) == NULL) {
            table_drop_last(&cache->table); /* out of memory: as if never counted */
            s = NULL;
        }
        if (s == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        home = &s->value;
        home_packed = &s->packed;
        kept = s->at;
    }
    if (*home != NULL || *home_packed != 0) {
        *packed = *home_packed;
        *code_out = *home;
        if (len == 1 && punct_byte[*at] && (*packed & TWO_BYTES_FOUR_AT_MOST))
            cache->at_once[*at] = *packed; /* found at once from now on */
        return 0;
    }
    int in_dict = PyDict_GET_SIZE(cache->alphabet) != cache->known;
    int added = 0;
    if (grow && !in_dict) { /* a new lexeme: the alphabet has none the cache lacks */
        if ((added = add_pending(cache, kept, len, home_packed)) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        if (added) {
            *packed = *home_packed;
            *code_out = NULL;
            return 0;
        }
    }
    /* The alphabet is read (it holds lexemes the cache lacks) or grown past the last code:
     * it must be whole first. An unknown lexeme of a text that may not grow it needs neither. */
    if ((in_dict || grow) && cache->pending_count > 0) {
        if (flush(cache) < 0)
            return -1;
        in_dict = PyDict_GET_SIZE(cache->alphabet) != cache->known;
    }
    int cacheable;
    PyObject *code = code_of(at, len, cache->alphabet, in_dict, grow, &cacheable);
    if (code == NULL)
        return -1;
    *packed = packed_of(code);
    *code_out = code;
    if (cacheable) {
        cache->known++;
        *home_packed = *packed;
        *home = code;
        return 0;
    }
    int failed = PyList_Append(owned, code) < 0;
    Py_DECREF(code);
    return failed ? -1 : 0;
}

typedef struct {
    PyObject *code;  /* borrowed; NULL for a pending code */
    uint64_t packed; /* packed_of(code), never 0 without a code */
} Code;

/* The code's characters at dest, for a result of kind 2 (T Py_UCS2) or 4 (T Py_UCS4). */
#define WRITE_CODES(T)                                                                                                                                         \
    do {                                                                                                                                                       \
        T *d = (T *)dest;                                                                                                                                      \
        for (Py_ssize_t k = 0; k < n; k++) {                                                                                                                   \
            uint64_t packed = codes[k].packed;                                                                                                                 \
            if (packed != 0) {                                                                                                                                 \
                T ch = (T)(Py_UCS4)packed;                                                                                                                     \
                for (uint64_t w = WEIGHT_OF(packed); w > 0; w--)                                                                                               \
                    *d++ = ch;                                                                                                                                 \
            } else {                                                                                                                                           \
                PyObject *code = codes[k].code;                                                                                                                \
                int code_kind = PyUnicode_KIND(code);                                                                                                          \
                const void *src = PyUnicode_DATA(code);                                                                                                        \
                for (Py_ssize_t j = 0; j < PyUnicode_GET_LENGTH(code); j++)                                                                                    \
                    *d++ = (T)PyUnicode_READ(code_kind, src, j);                                                                                               \
            }                                                                                                                                                  \
        }                                                                                                                                                      \
    } while (0)

/* How much of the result a code makes: its length, added to *length, and its greatest
 * character (or an upper bound of it), kept in *maxchar when greater. */
static inline void measure(const Code *code, Py_ssize_t *length, Py_UCS4 *maxchar) {
    Py_UCS4 m;
    if (code->packed != 0) {
        *length += (Py_ssize_t)WEIGHT_OF(code->packed);
        m = (Py_UCS4)code->packed;
    } else {
        *length += PyUnicode_GET_LENGTH(code->code);
        m = PyUnicode_MAX_CHAR_VALUE(code->code); /* an upper bound: 0x7f, 0xff, 0xffff or 0x10ffff */
    }
    if (m > *maxchar)
        *maxchar = m;
}

/* The text made of `codes` (`n` of them, measured: `length` and `maxchar`) one after
 * another. Written here rather than by str.join: codes are one to four characters, and
 * join's general copy costs more per code than the whole lexing. A code made of one
 * character repeated (all of them, unless another caller filled the alphabet) is written
 * from its packed form, without reading the str (callgrind, encoding every key of a
 * 500 x 8 KB session: 179 -> 147 M instructions with measuring done while lexing). */
static PyObject *concat(const Code *codes, Py_ssize_t n, Py_ssize_t length, Py_UCS4 maxchar) {
    PyObject *out = PyUnicode_New(length, maxchar);
    if (out == NULL)
        return NULL;
    void *dest = PyUnicode_DATA(out);
    switch (PyUnicode_KIND(out)) {
    case PyUnicode_1BYTE_KIND:
        WRITE_CODES(Py_UCS1); /* only for codes below U+0100, which _new_code never makes */
        break;
    case PyUnicode_2BYTE_KIND:
        WRITE_CODES(Py_UCS2);
        break;
    default:
        WRITE_CODES(Py_UCS4);
    }
    return out;
}

/* The arrays one call fills (its codes, or its characters): kept between calls rather than
 * allocated for each. An 8 KB key needs ~128 KB of codes, which malloc maps fresh every time:
 * every call paid page faults for it (fuzzy's full preparation of a 500 x 8 KB session:
 * ~1,500 fewer faults and ~3 ms less system time with the array kept). The GIL is held
 * throughout a call, and nothing it does once it has an array runs Python code (str keys; no
 * allocation the collector counts), so calls never overlap; `busy` keeps that so should a
 * later change let one call start inside another (it gets an array of its own). Arrays
 * beyond KEEP_BYTES are not kept. */
#define KEEP_BYTES ((size_t)1 << 20)

typedef struct {
    void *at;
    size_t bytes;
    int busy;
} Spare;

static Spare spare_codes, spare_chars;

static void *take(Spare *spare, size_t bytes) {
    if (spare->busy || bytes > KEEP_BYTES)
        return malloc(bytes);
    if (bytes > spare->bytes) {
        size_t size = bytes < 65536 ? 65536 : bytes;
        void *grown = realloc(spare->at, size);
        if (grown == NULL)
            return NULL;
        spare->at = grown;
        spare->bytes = size;
    }
    spare->busy = 1;
    return spare->at;
}

static void give(Spare *spare, void *at) {
    if (at != NULL && at == spare->at && spare->busy)
        spare->busy = 0;
    else
        free(at);
}

/* The next lexeme of data[*i:size] (blanks skipped): its start, with *i moved past it; -1 at
 * the end of the text. */
static inline Py_ssize_t next_lexeme(const unsigned char *data, Py_ssize_t size, Py_ssize_t *i) {
    Py_ssize_t at = *i;
    while (at < size && blank_byte[data[at]])
        at++;
    if (at >= size)
        return -1;
    Py_ssize_t start = at, n;
    unsigned char c = data[at];
    if (c == '<' && (n = placeholder(data + at, data + size)) > 0)
        at += n;
    else if (word_byte[c])
        while (at < size && word_byte[data[at]])
            at++;
    else
        at++;
    *i = at;
    return start;
}

/* encode_ascii's result in one pass, its characters written as each lexeme's code is found:
 * for texts whose codes are all one character of U+0100..U+FFFF repeated at most four times,
 * which are those _new_code makes for a session's first ~55,000 lexemes. Each code's
 * character is written four times and the end moved on by its weight, with no branch on
 * the weight. *other set (and NULL returned) at a code of any other shape: the caller
 * starts again with encode_codes. Against encode_codes alone, fuzzy's full preparation of a
 * 500 x 8 KB session took 384.0M -> 369.5M instructions (bench_instructions.py fuzzy-prep):
 * no array of codes written and read back, no measuring. */
static PyObject *encode_chars(Cache *cache, const unsigned char *data, Py_ssize_t size, int grow, PyObject *owned, int *other) {
    /* At most four characters a byte, and four written at the last code. */
    Py_UCS2 *chars = take(&spare_chars, sizeof(Py_UCS2) * (4 * (size_t)size + 4));
    if (chars == NULL)
        return PyErr_NoMemory();
    Py_UCS2 *d = chars;
    PyObject *result = NULL;
    Py_ssize_t i = 0, start;
    const unsigned char *end = data + size;
    for (;;) {
        /* Blanks, and one-character lexemes whose codes the cache holds, at once (at_once):
         * most of a JSON key's lexemes are its punctuation (fuzzy-prep in
         * bench_instructions.py 310.0M -> 299.3M instructions, then one table for both
         * -> 285.4M, PYTHONHASHSEED=0). Anything else is read as next_lexeme reads it. */
        uint64_t packed;
        while (i < size && (packed = cache->at_once[data[i]]) != 0) {
            d[0] = d[1] = d[2] = d[3] = (Py_UCS2)packed;
            d += WEIGHT_OF(packed);
            i++;
        }
        if ((start = next_lexeme(data, size, &i)) < 0)
            break;
        PyObject *code;
        if (cached_code(cache, data + start, i - start, end, grow, owned, &code, &packed) < 0)
            goto done;
        if (!(packed & TWO_BYTES_FOUR_AT_MOST)) {
            *other = 1;
            goto done;
        }
        d[0] = d[1] = d[2] = d[3] = (Py_UCS2)packed;
        d += WEIGHT_OF(packed);
    }
    if (d == chars) {
        Py_INCREF(Py_None);
        result = Py_None;
    } else if ((result = PyUnicode_New(d - chars, 0xFFFF)) != NULL) /* 2 bytes a character: every one is above U+00FF */
        memcpy(PyUnicode_2BYTE_DATA(result), chars, sizeof(Py_UCS2) * (size_t)(d - chars));
done:
    give(&spare_chars, chars);
    return result;
}

/* encode_ascii's result for any codes: each lexeme's code found first, then written. */
static PyObject *encode_codes(Cache *cache, const unsigned char *data, Py_ssize_t size, int grow, PyObject *owned) {
    /* Each lexeme's code, borrowed from the cache's slots or from `owned`. */
    Code *codes = take(&spare_codes, sizeof(Code) * (size_t)(size > 0 ? size : 1));
    if (codes == NULL)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    Py_ssize_t found = 0, i = 0, length = 0, start;
    Py_UCS4 maxchar = 0;
    const unsigned char *end = data + size;
    while ((start = next_lexeme(data, size, &i)) >= 0) {
        Code *code = &codes[found++];
        if (cached_code(cache, data + start, i - start, end, grow, owned, &code->code, &code->packed) < 0)
            goto done;
        measure(code, &length, &maxchar);
    }
    if (found == 0) {
        Py_INCREF(Py_None);
        result = Py_None;
    } else
        result = concat(codes, found, length, maxchar);
done:
    give(&spare_codes, codes);
    return result;
}

static PyObject *encode_ascii(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4 || !PyUnicode_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encode_ascii() takes (text: str, alphabet: dict, grow: bool, cache: lexeme_cache(alphabet))");
        return NULL;
    }
    PyObject *text = args[0], *alphabet = args[1];
    int grow = PyObject_IsTrue(args[2]);
    Cache *cache = PyCapsule_GetPointer(args[3], CAPSULE);
    if (grow < 0 || cache == NULL)
        return NULL;
    if (cache->alphabet != alphabet) {
        PyErr_SetString(PyExc_ValueError, "encode_ascii(): the cache was made for another alphabet");
        return NULL;
    }
    if (PyUnicode_READY(text) < 0)
        return NULL;
    if (!PyUnicode_IS_ASCII(text))
        Py_RETURN_NONE;
    const unsigned char *data = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    PyObject *owned = PyList_New(0); /* codes of unknown lexemes, held while they are read */
    if (owned == NULL)
        return NULL;
    int other = 0;
    PyObject *result = encode_chars(cache, data, size, grow, owned, &other);
    if (other) /* the lexemes already seen are in the cache now: found again at once */
        result = encode_codes(cache, data, size, grow, owned);
    Py_DECREF(owned);
    return result;
}

static PyMethodDef methods[] = {
    {"lexeme_cache", lexeme_cache, METH_O, "lexeme_cache(alphabet) -> the cache encode_ascii keeps for a session's alphabet."},
    {"flush_alphabet", flush_alphabet, METH_O,
     "flush_alphabet(cache) -> None: the codes encode_ascii gave new lexemes written into the alphabet, as "
     "_new_code writes them (call it before Python code reads or grows the alphabet)."},
    {"encode_ascii", (PyCFunction)(void (*)(void))encode_ascii, METH_FASTCALL,
     "encode_ascii(text, alphabet, grow, cache) -> the codes of text's lexemes joined, or None when text "
     "is not ASCII or holds no lexeme (see matchers.fuzzy.FuzzySessionMatcher._encode)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_fuzzylex",
    .m_doc = "Compiled lexeme encoding of the fuzzy strategy (matchers/fuzzy.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fuzzylex(void) {
    for (int c = 0; c < 128; c++)
        ascii_bytes[c] = (unsigned char)c;
    for (int c = 0; c < 256; c++) {
        word_byte[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        blank_byte[c] = c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
        punct_byte[c] = c < 0x80 && !word_byte[c] && !blank_byte[c] && c != '<';
    }
    return PyModule_Create(&module);
}
