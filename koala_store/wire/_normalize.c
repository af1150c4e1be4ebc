/* The hot paths of koala_store/wire/normalize.py for ASCII text, which keeps the regexes as
 * the reference and as the fallback: masking volatile values, and SQL's normalised text.
 *
 * mask_ascii(text) -> str or None
 *
 * Exactly what `_VOLATILE.sub(_placeholder, text)` does on ASCII text: scanning left to right,
 * at each position the first of these that matches is replaced and the scan goes on after
 * it, else the scan moves one character on:
 *   <time>  yyyy-mm-dd[T ]hh:mm:ss, then [.,]digits and Z or +hh[:]mm when there (any digits:
 *           the regex checks no ranges here), or an HTTP date "Sun, 06 Nov 1994 08:49:37 GMT";
 *           neither needs a word boundary;
 *   and where the character before is not a letter or digit (_B):
 *   <uuid>  8-4-4-4-12 hex digits,
 *   <num>   ten or more digits,
 *   <date>  yyyymmdd or yyyy-mm-dd (years 19xx and 20xx, months 01-12, days 01-31),
 *   <hex>   sixteen or more hex digits, one of them a digit,
 *   each only where the character after it is not a letter or digit (_E). A run of digits or
 *   hex digits followed by a letter or digit matches nothing: no shorter match can end at a
 *   boundary, as the regex finds by backtracking.
 * None when `text` is not ASCII (the regex's \d is wider there).
 *
 * Why: an 8 KB SQL statement full of ids and dates takes the regex ~0.9 ms; normalising the
 * details of a 500 x 8 KB session spent most of its time there. Here a date is looked for only
 * at a day's first letter and a time only where its separators are: 40% fewer instructions
 * than checking every hex digit for both (callgrind, that session's requests).
 *
 * sql_text_ascii(sql, literals) -> str or None
 *
 * Exactly `" ".join("".join(joined).split())` of normalize._sql_text over
 * mysql.SQL_TOKEN.split(sql): every token SQL_TOKEN finds, scanning as re.split does, is
 * replaced (a string or number literal by "?" when `literals` is MASK (1), kept when KEEP (0);
 * a comment or a run of blanks by a blank), then blanks are collapsed to one space and
 * trimmed. The tokens:
 *   string   '...' or "...": escapes (\ and any character) and doubled quotes inside; when
 *            the closing quote is missing, the regex backtracks to end the string at the
 *            first quote of its last doubled pair, and without one no string starts there;
 *   comment  slash-star to the first star-slash (none: no comment), -- or # to the end of the line;
 *   number   0x and hex digits between word boundaries, or digits with an optional fraction
 *            and exponent, not after a word character, '.' or '$', not before a word
 *            character or '.' (only the longest reading can pass: shorter ones stop before
 *            a digit, '.' or a letter);
 *   blanks   \s+ (on ASCII: \t \n \v \f \r, \x1c-\x1f and space, as str.split() splits).
 * None when `sql` is not ASCII. The caller still collapses masked lists (`(?+)`).
 *
 * Why: the regex split of an 8 KB INSERT takes ~0.75 ms, most of a MySQL key's cost.
 *
 * collapse_lists_ascii(text) -> str or None
 *
 * Exactly normalize._collapse_lists on ASCII text: `_SQL_LIST.sub("(?+)", text)`, a masked
 * list `( ? , ? ... )` of two or more `?` becoming `(?+)`, then `_SQL_ROWS.sub(r"\1", ...)`,
 * a run of `(?+)` joined by commas becoming one. Neither regex can gain by backtracking (a
 * shorter repetition is followed by a comma, never by what must come next), so one greedy
 * reading at each `(` decides each. None when `text` is not ASCII.
 *
 * Why: the two substitutions took ~0.1 ms for an 8 KB INSERT of many rows, four times the
 * statement's own normalisation above.
 *
 * comment_marker_ascii(sql) -> bool or None
 *
 * Whether `sql` holds "--", slash-star or "#" anywhere (then it may hold a comment), as the three
 * `in` tests of normalize._Statement.commented say. None when `sql` is not ASCII.
 *
 * Why: those three scans took ~30 us on an 8 KB INSERT full of dates (every '-' a candidate
 * for "--"), paid for every statement the first time a detail's bucket is asked for.
 *
 * bucket_ascii(text, drop) -> int or None
 *
 * Exactly normalize.bucket_of on ASCII text: `hash(text.encode().translate(None, drop))`,
 * the text's bytes with those in `drop` left out, hashed as Python hashes bytes. None when
 * `text` is not ASCII.
 *
 * Why: every call of a session gets a bucket when a matcher first needs one, over its whole
 * text (8 KB for an 8 KB call); the encode, translate's general byte loop and the copy cost
 * more than picking the kept bytes in one pass.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef const unsigned char *Ptr;

static unsigned char digit_byte[256], hexd[256], alnum[256], word_byte[256], blank_byte[256];
/* day_start: the first letters of Mon..Sun (an HTTP date's start); may_start: where any value
 * may start (a hex digit or a day_start). */
static unsigned char day_start[256], may_start[256];
/* sql_token_start: a byte a SQL token may start at (a quote, a comment's first byte, a digit, a blank). */
static unsigned char sql_token_start[256];

/* n characters of `class` (a byte table) at p, within end. */
static inline int all_in(const unsigned char *class, Ptr p, Ptr end, Py_ssize_t n) {
    if (end - p < n)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!class[p[i]])
            return 0;
    return 1;
}

#define digits(p, end, n) all_in(digit_byte, p, end, n)
#define hexes(p, end, n) all_in(hexd, p, end, n)

static inline int is(Ptr p, Ptr end, char c) { return p < end && *p == (unsigned char)c; }

/* Not followed by a letter or digit (_E). */
static inline int ends(Ptr p, Ptr end) { return p >= end || !alnum[*p]; }

/* The end of an ISO time at p, or NULL. */
static Ptr iso_time(Ptr p, Ptr end) {
    if (end - p < 19 || p[4] != '-' || p[7] != '-' || p[13] != ':' || p[16] != ':')
        return NULL; /* its separators first: most digits start no time */
    if (!(digits(p, end, 4) && is(p + 4, end, '-') && digits(p + 5, end, 2) && is(p + 7, end, '-') && digits(p + 8, end, 2) &&
          (is(p + 10, end, 'T') || is(p + 10, end, ' ')) && digits(p + 11, end, 2) && is(p + 13, end, ':') && digits(p + 14, end, 2) &&
          is(p + 16, end, ':') && digits(p + 17, end, 2)))
        return NULL;
    p += 19;
    if ((is(p, end, '.') || is(p, end, ',')) && digits(p + 1, end, 1)) {
        p++;
        while (p < end && digit_byte[*p])
            p++;
    }
    if (is(p, end, 'Z'))
        return p + 1;
    if ((is(p, end, '+') || is(p, end, '-')) && digits(p + 1, end, 2)) {
        if (is(p + 3, end, ':') && digits(p + 4, end, 2))
            return p + 6;
        if (digits(p + 3, end, 2))
            return p + 5;
    }
    return p;
}

static inline int one_of(Ptr p, Ptr end, const char *words, size_t count) {
    if (end - p < 3)
        return 0;
    for (size_t k = 0; k < count; k++)
        if (memcmp(p, words + 3 * k, 3) == 0)
            return 1;
    return 0;
}

/* The end of an HTTP date at p, or NULL. */
static Ptr http_date(Ptr p, Ptr end) {
    if (!one_of(p, end, "MonTueWedThuFriSatSun", 7) || !is(p + 3, end, ',') || !is(p + 4, end, ' ') || !digits(p + 5, end, 1))
        return NULL;
    p += 6;
    if (p < end && digit_byte[*p])
        p++; /* \d{1,2}: one more digit, then a space either way */
    if (!is(p, end, ' ') || !one_of(p + 1, end, "JanFebMarAprMayJunJulAugSepOctNovDec", 12) || !is(p + 4, end, ' '))
        return NULL;
    p += 5;
    if (!(digits(p, end, 4) && is(p + 4, end, ' ') && digits(p + 5, end, 2) && is(p + 7, end, ':') && digits(p + 8, end, 2) &&
          is(p + 10, end, ':') && digits(p + 11, end, 2) && end - p >= 17 && memcmp(p + 13, " GMT", 4) == 0))
        return NULL;
    return p + 17;
}

static inline int month_day(Ptr m, Ptr d) {
    int month = (m[0] - '0') * 10 + (m[1] - '0'), day = (d[0] - '0') * 10 + (d[1] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

/* yyyy of 19xx or 20xx at p (four digits known). */
static inline int century(Ptr p) { return (p[0] == '1' && p[1] == '9') || (p[0] == '2' && p[1] == '0'); }

/* The placeholder of the value at p (after a boundary) and its end, or NULL. */
static const char *bounded_value(Ptr p, Ptr end, Ptr *value_end) {
    if (hexes(p, end, 8) && is(p + 8, end, '-') && hexes(p + 9, end, 4) && is(p + 13, end, '-') && hexes(p + 14, end, 4) &&
        is(p + 18, end, '-') && hexes(p + 19, end, 4) && is(p + 23, end, '-') && hexes(p + 24, end, 12) && ends(p + 36, end)) {
        *value_end = p + 36;
        return "<uuid>";
    }
    Ptr q = p;
    while (q < end && digit_byte[*q])
        q++;
    Py_ssize_t run = q - p;
    if (run >= 10 && ends(q, end)) {
        *value_end = q;
        return "<num>";
    }
    if (run >= 4 && century(p)) {
        if (run == 8 && month_day(p + 4, p + 6) && ends(q, end)) {
            *value_end = q;
            return "<date>";
        }
        if (run == 4 && is(p + 4, end, '-') && digits(p + 5, end, 2) && is(p + 7, end, '-') && digits(p + 8, end, 2) && month_day(p + 5, p + 8) &&
            ends(p + 10, end)) {
            *value_end = p + 10;
            return "<date>";
        }
    }
    Ptr h = p;
    int has_digit = 0;
    while (h < end && hexd[*h])
        has_digit |= digit_byte[*h++];
    if (h - p >= 16 && has_digit && ends(h, end)) {
        *value_end = h;
        return "<hex>";
    }
    return NULL;
}

/* Whether `text` is an ASCII str (1), a str beyond ASCII (0: the caller answers None and the
 * Python code decides), or not a str (-1, a TypeError saying what `function` takes). */
static int ascii_text(PyObject *text, const char *function) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "%s() takes str", function);
        return -1;
    }
    if (PyUnicode_READY(text) < 0)
        return -1;
    return PyUnicode_IS_ASCII(text) ? 1 : 0;
}

/* Where mask_ascii's scan stops. A position can start a value only when it holds a day's
 * first letter (an HTTP date), a digit four bytes before a '-' (an ISO time), or three hex
 * digits after a boundary (a uuid, number, date or hex id: each has more); the scan checks
 * every other position in vain. With SSE2 (every x86-64) sixteen positions are told apart at
 * once: masking a 500 x 8 KB session's requests, half of whose bytes are hex digits (JSON
 * words and numbers), went from checking each byte to checking 3% of them
 * (bench_instructions.py mask: 80.3M -> 52.5M). Whether a position qualifies depends on the
 * text alone (never on what was replaced before it), so a window's answer holds after a value
 * inside it is replaced. */
typedef struct {
    Py_ssize_t base; /* the window's first position, as an offset from the text's start */
    unsigned bits;   /* bit i: position base + i qualifies */
} Window;

#if defined(__SSE2__)
#include <emmintrin.h>

/* lo <= v < lo + count, byte by byte (unsigned): 0xFF where it holds. */
static inline __m128i in_range(__m128i v, char lo, char count) {
    __m128i d = _mm_sub_epi8(v, _mm_set1_epi8(lo));
    return _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8((char)(count - 1))), d);
}

static inline __m128i hex_digit(__m128i v) { return _mm_or_si128(in_range(v, '0', 10), in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 6)); }

/* Bit i: p[i] qualifies (see Window). Reads p[-1] to p[19]. */
static inline unsigned qualifying16(Ptr p) {
    __m128i before = _mm_loadu_si128((const __m128i *)(p - 1));
    __m128i at = _mm_loadu_si128((const __m128i *)p);
    __m128i ahead = _mm_loadu_si128((const __m128i *)(p + 4));
    __m128i lower = _mm_set1_epi8(0x20);
    __m128i digit = in_range(at, '0', 10);
    __m128i hex = _mm_or_si128(digit, in_range(_mm_or_si128(at, lower), 'a', 6));
    __m128i after_alnum = _mm_or_si128(in_range(before, '0', 10), in_range(_mm_or_si128(before, lower), 'a', 26));
    __m128i day = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(at, _mm_set1_epi8('M')), _mm_cmpeq_epi8(at, _mm_set1_epi8('T'))),
                               _mm_or_si128(_mm_cmpeq_epi8(at, _mm_set1_epi8('W')),
                                            _mm_or_si128(_mm_cmpeq_epi8(at, _mm_set1_epi8('F')), _mm_cmpeq_epi8(at, _mm_set1_epi8('S')))));
    __m128i time = _mm_and_si128(digit, _mm_cmpeq_epi8(ahead, _mm_set1_epi8('-')));
    /* Every bounded value starts with at least three hex digits: most words and numbers
     * after a boundary in JSON ("apple", 4, 28.47) do not qualify. */
    __m128i hex3 = _mm_and_si128(hex, _mm_and_si128(hex_digit(_mm_loadu_si128((const __m128i *)(p + 1))), hex_digit(_mm_loadu_si128((const __m128i *)(p + 2)))));
    __m128i bounded = _mm_andnot_si128(after_alnum, hex3);
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(day, _mm_or_si128(time, bounded)));
}
#endif

/* The first position at or after p that qualifies (see Window), or end. The text's first
 * byte and its last 19 are each returned as they come: the caller checks them itself. */
static inline Ptr next_start(Ptr p, Ptr start, Ptr end, Window *w) {
#if defined(__SSE2__)
    for (;;) {
        Py_ssize_t at = p - start;
        if (at >= w->base && at < w->base + 16) {
            unsigned rest = w->bits >> (at - w->base);
            if (rest != 0)
                return p + __builtin_ctz(rest);
            p = start + w->base + 16;
            continue;
        }
        if (p == start || end - p < 20)
            return p;
        w->base = at;
        w->bits = qualifying16(p);
    }
#else
    (void)start, (void)end, (void)w;
    return p;
#endif
}

static PyObject *mask_ascii(PyObject *self, PyObject *text) {
    (void)self;
    int ascii = ascii_text(text, "mask_ascii");
    if (ascii <= 0)
        return ascii < 0 ? NULL : Py_NewRef(Py_None);
    Ptr start = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    Ptr end = start + size, p = start, copied = start;
    char *out = NULL; /* made at the first value: the masked text is never longer */
    Py_ssize_t written = 0;
    Window window = {-32, 0};
    while ((p = next_start(p, start, end, &window)) < end) {
        unsigned char c = *p;
        if (!may_start[c]) {
            p++;
            continue;
        }
        const char *name = NULL;
        Ptr value_end = NULL;
        if (digit_byte[c] && (value_end = iso_time(p, end)) != NULL)
            name = "<time>";
        else if (day_start[c] && (value_end = http_date(p, end)) != NULL) /* the other letters start no day: skipped */
            name = "<time>";
        else if (hexd[c] && (p == start || !alnum[p[-1]]))
            name = bounded_value(p, end, &value_end);
        if (name == NULL) {
            p++;
            continue;
        }
        if (out == NULL && (out = PyMem_Malloc((size_t)size)) == NULL)
            return PyErr_NoMemory();
        size_t plain = (size_t)(p - copied), n = strlen(name);
        memcpy(out + written, copied, plain);
        memcpy(out + written + plain, name, n);
        written += (Py_ssize_t)(plain + n);
        p = copied = value_end;
    }
    if (out == NULL) {
        Py_INCREF(text);
        return text;
    }
    memcpy(out + written, copied, (size_t)(end - copied));
    written += end - copied;
    PyObject *masked = PyUnicode_DecodeASCII(out, written, NULL);
    PyMem_Free(out);
    return masked;
}

/* --- SQL ----------------------------------------------------------------------------- */

/* The end of the string literal opened by the quote at s[i], or -1 (see above). */
static Py_ssize_t sql_string(Ptr s, Py_ssize_t n, Py_ssize_t i) {
    unsigned char quote = s[i];
    Py_ssize_t j = i + 1, last_pair = -1;
    while (j < n) {
        unsigned char c = s[j];
        if (c == '\\') {
            if (j + 1 >= n)
                break;
            j += 2;
        } else if (c == quote) {
            if (j + 1 < n && s[j + 1] == quote) {
                last_pair = j;
                j += 2;
            } else
                return j + 1;
        } else
            j++;
    }
    return last_pair >= 0 ? last_pair + 1 : -1;
}

/* The end of the number literal at s[i] (a digit), or -1. */
static Py_ssize_t sql_number(Ptr s, Py_ssize_t n, Py_ssize_t i) {
    unsigned char before = i > 0 ? s[i - 1] : ' ';
    if (s[i] == '0' && i + 1 < n && s[i + 1] == 'x' && !word_byte[before]) {
        Py_ssize_t j = i + 2;
        while (j < n && hexd[s[j]])
            j++;
        if (j > i + 2 && (j == n || !word_byte[s[j]]))
            return j;
    }
    if (word_byte[before] || before == '.' || before == '$')
        return -1;
    Py_ssize_t j = i;
    while (j < n && digit_byte[s[j]])
        j++;
    if (j + 1 < n && s[j] == '.' && digit_byte[s[j + 1]])
        for (j += 1; j < n && digit_byte[s[j]];)
            j++;
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        Py_ssize_t k = j + 1;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        if (k < n && digit_byte[s[k]])
            for (j = k; j < n && digit_byte[s[j]];)
                j++;
    }
    return j < n && (word_byte[s[j]] || s[j] == '.') ? -1 : j;
}

/* The end of the comment at s[i], or -1. */
static Py_ssize_t sql_comment(Ptr s, Py_ssize_t n, Py_ssize_t i) {
    Py_ssize_t j;
    if (s[i] == '/') {
        if (i + 1 >= n || s[i + 1] != '*')
            return -1;
        for (j = i + 2; j + 1 < n; j++)
            if (s[j] == '*' && s[j + 1] == '/')
                return j + 2;
        return -1;
    }
    if (s[i] == '-' && (i + 1 >= n || s[i + 1] != '-'))
        return -1;
    Ptr nl = memchr(s + i, '\n', (size_t)(n - i));
    return nl == NULL ? n : nl - s;
}

enum { KEEP = 0, MASK = 1 }; /* what sql_text_ascii does with literals */

typedef struct {
    char *at;
    Py_ssize_t len;
    int blank; /* a blank is due before the next character (none at the start) */
} Out;

/* Text written as `" ".join(text.split())` writes it. */
static inline void put_text(Out *o, Ptr p, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++) {
        if (blank_byte[p[k]]) {
            o->blank = o->len > 0;
            continue;
        }
        if (o->blank) {
            o->at[o->len++] = ' ';
            o->blank = 0;
        }
        o->at[o->len++] = (char)p[k];
    }
}

/* Text between tokens, which holds no blank (a run of blanks is a token): copied at once. */
static inline void put_plain(Out *o, Ptr p, Py_ssize_t n) {
    if (n <= 0)
        return;
    if (o->blank) {
        o->at[o->len++] = ' ';
        o->blank = 0;
    }
    for (Py_ssize_t k = 0; k < n; k++) /* mostly one or two bytes ("(", ", "): no memcpy call */
        o->at[o->len++] = (char)p[k];
}

static PyObject *sql_text_ascii(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "sql_text_ascii() takes (sql: str, literals: 0 keep or 1 mask)");
        return NULL;
    }
    PyObject *sql = args[0];
    long literals = PyLong_AsLong(args[1]);
    if (literals == -1 && PyErr_Occurred())
        return NULL;
    if (literals != KEEP && literals != MASK) {
        PyErr_Format(PyExc_ValueError, "sql_text_ascii(): literals=%ld is not 0 (keep) or 1 (mask)", literals);
        return NULL;
    }
    int ascii = ascii_text(sql, "sql_text_ascii");
    if (ascii <= 0)
        return ascii < 0 ? NULL : Py_NewRef(Py_None);
    Ptr s = PyUnicode_1BYTE_DATA(sql);
    Py_ssize_t n = PyUnicode_GET_LENGTH(sql);
    /* Never longer than the statement: tokens become one character or stay as they are. */
    Out o = {PyMem_Malloc((size_t)n + 1), 0, 0};
    if (o.at == NULL)
        return PyErr_NoMemory();
    Py_ssize_t i = 0, plain = 0; /* plain: where the text not yet written starts */
    while (i < n) {
        if (!sql_token_start[s[i]]) { /* most bytes start no token */
            i++;
            continue;
        }
        unsigned char c = s[i];
        Py_ssize_t end = -1;
        int literal = 0; /* 1: a string, 2: a number */
        if (c == '\'' || c == '"')
            end = sql_string(s, n, i), literal = 1;
        else if (c == '/' || c == '-' || c == '#')
            end = sql_comment(s, n, i);
        else if (digit_byte[c])
            end = sql_number(s, n, i), literal = 2;
        else if (blank_byte[c])
            for (end = i; end < n && blank_byte[s[end]];)
                end++;
        if (end < 0) {
            i++;
            continue;
        }
        put_plain(&o, s + plain, i - plain);
        if (!literal)
            o.blank = o.len > 0;
        else if (literals == MASK)
            put_text(&o, (Ptr) "?", 1);
        else
            put_text(&o, s + i, end - i);
        i = plain = end;
    }
    put_plain(&o, s + plain, n - plain);
    PyObject *text = PyUnicode_DecodeASCII(o.at, o.len, NULL);
    PyMem_Free(o.at);
    return text;
}

/* --- masked lists ---------------------------------------------------------------------- */

static inline Ptr skip_blanks(Ptr p, Ptr end) {
    while (p < end && blank_byte[*p])
        p++;
    return p;
}

/* The end of the masked list `( ? , ? ... )` (two or more `?`) at p, or NULL. */
static Ptr masked_list(Ptr p, Ptr end) {
    p = skip_blanks(p + 1, end);
    if (!is(p, end, '?'))
        return NULL;
    p++;
    int more = 0;
    for (;;) {
        Ptr q = skip_blanks(p, end);
        if (!is(q, end, ','))
            break;
        q = skip_blanks(q + 1, end);
        if (!is(q, end, '?'))
            break;
        p = q + 1;
        more = 1;
    }
    p = skip_blanks(p, end);
    return more && is(p, end, ')') ? p + 1 : NULL;
}

static inline int collapsed(Ptr p, Ptr end) { return end - p >= 4 && memcmp(p, "(?+)", 4) == 0; }

/* The end of the rows `(?+) , (?+) ...` at p (a `(?+)`), or p + 4 when only one is there. */
static Ptr collapsed_rows(Ptr p, Ptr end) {
    p += 4;
    for (;;) {
        Ptr q = skip_blanks(p, end);
        if (!is(q, end, ','))
            return p;
        q = skip_blanks(q + 1, end);
        if (!collapsed(q, end))
            return p;
        p = q + 4;
    }
}

static PyObject *collapse_lists_ascii(PyObject *self, PyObject *text) {
    (void)self;
    int ascii = ascii_text(text, "collapse_lists_ascii");
    if (ascii <= 0)
        return ascii < 0 ? NULL : Py_NewRef(Py_None);
    Ptr s = PyUnicode_1BYTE_DATA(text), end = s + PyUnicode_GET_LENGTH(text);
    if (memchr(s, '?', (size_t)(end - s)) == NULL) {
        Py_INCREF(text); /* nothing masked: nothing to collapse */
        return text;
    }
    /* Both passes only shrink the text: the first writes into `lists`, the second reads it. */
    unsigned char *lists = PyMem_Malloc((size_t)(end - s) + 1);
    if (lists == NULL)
        return PyErr_NoMemory();
    size_t n = 0;
    for (Ptr p = s; p < end;) {
        Ptr list_end = *p == '(' ? masked_list(p, end) : NULL;
        if (list_end != NULL) {
            memcpy(lists + n, "(?+)", 4);
            n += 4;
            p = list_end;
        } else
            lists[n++] = *p++;
    }
    size_t out = 0;
    for (Ptr p = lists, stop = lists + n; p < stop;) {
        if (*p == '(' && collapsed(p, stop)) {
            memcpy(lists + out, "(?+)", 4);
            out += 4;
            p = collapsed_rows(p, stop);
        } else
            lists[out++] = *p++;
    }
    PyObject *result = PyUnicode_DecodeASCII((const char *)lists, (Py_ssize_t)out, NULL);
    PyMem_Free(lists);
    return result;
}

/* Whether s[0:n] holds the bytes a, b one after the other: memchr finds each a (it looks at
 * many bytes at once; libc's memmem and str's `in` took ~1.5 ns a byte for two bytes here). */
static int has_pair(Ptr s, size_t n, unsigned char a, unsigned char b) {
    for (Ptr p = s, end = s + n; p < end && (p = memchr(p, a, (size_t)(end - p))) != NULL; p++)
        if (p + 1 < end && p[1] == b)
            return 1;
    return 0;
}

static PyObject *comment_marker_ascii(PyObject *self, PyObject *sql) {
    (void)self;
    int ascii = ascii_text(sql, "comment_marker_ascii");
    if (ascii <= 0)
        return ascii < 0 ? NULL : Py_NewRef(Py_None);
    Ptr s = PyUnicode_1BYTE_DATA(sql);
    size_t n = (size_t)PyUnicode_GET_LENGTH(sql);
    if (memchr(s, '#', n) != NULL || has_pair(s, n, '-', '-') || has_pair(s, n, '/', '*'))
        Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

/* The kept bytes of bucket_ascii's last `drop` (a strong reference), as a table by byte. */
static PyObject *bucket_drop;
static unsigned char bucket_keep[256];

static PyObject *bucket_ascii(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "bucket_ascii() takes (text: str, drop: bytes)");
        return NULL;
    }
    PyObject *text = args[0], *drop = args[1];
    int ascii = ascii_text(text, "bucket_ascii");
    if (ascii <= 0)
        return ascii < 0 ? NULL : Py_NewRef(Py_None);
    if (drop != bucket_drop) {
        memset(bucket_keep, 1, sizeof bucket_keep);
        Ptr d = (Ptr)PyBytes_AS_STRING(drop);
        for (Py_ssize_t k = 0; k < PyBytes_GET_SIZE(drop); k++)
            bucket_keep[d[k]] = 0;
        Py_INCREF(drop);
        Py_XSETREF(bucket_drop, drop);
    }
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    Ptr s = PyUnicode_1BYTE_DATA(text);
    unsigned char stack[16384];
    unsigned char *kept = size <= (Py_ssize_t)sizeof stack ? stack : PyMem_Malloc((size_t)size);
    if (kept == NULL)
        return PyErr_NoMemory();
    Py_ssize_t n = 0;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8 /* fuzzy-prep in bench_instructions.py 299.3M -> 293.5M instructions */
#endif
    for (Py_ssize_t i = 0; i < size; i++) { /* without a branch: every byte written, kept ones counted */
        kept[n] = s[i];
        n += bucket_keep[s[i]];
    }
    Py_hash_t hash = _Py_HashBytes(kept, n);
    if (kept != stack)
        PyMem_Free(kept);
    return PyLong_FromSsize_t(hash);
}

static PyMethodDef methods[] = {
    {"mask_ascii", mask_ascii, METH_O,
     "mask_ascii(text) -> text with volatile values as placeholders, or None when text is not ASCII "
     "(see koala_store.wire.normalize.mask_volatile)."},
    {"sql_text_ascii", (PyCFunction)(void (*)(void))sql_text_ascii, METH_FASTCALL,
     "sql_text_ascii(sql, literals) -> SQL with literals kept (0) or masked (1), comments "
     "dropped and blanks collapsed, or None when sql is not ASCII (see koala_store.wire.normalize.normalize_sql)."},
    {"collapse_lists_ascii", collapse_lists_ascii, METH_O,
     "collapse_lists_ascii(text) -> masked SQL with its lists and rows of lists as (?+), or None when text is not "
     "ASCII (see koala_store.wire.normalize._collapse_lists)."},
    {"comment_marker_ascii", comment_marker_ascii, METH_O,
     "comment_marker_ascii(sql) -> whether sql holds --, /* or #, or None when sql is not ASCII "
     "(see koala_store.wire.normalize._Statement.commented)."},
    {"bucket_ascii", (PyCFunction)(void (*)(void))bucket_ascii, METH_FASTCALL,
     "bucket_ascii(text, drop) -> hash of text's bytes without those in drop, or None when text is not ASCII "
     "(see koala_store.wire.normalize.bucket_of)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_normalize",
    .m_doc = "Compiled masking of volatile values and SQL text (koala_store/wire/normalize.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__normalize(void) {
    for (int c = 0; c < 256; c++) {
        digit_byte[c] = c >= '0' && c <= '9';
        hexd[c] = digit_byte[c] || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        alnum[c] = digit_byte[c] || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        word_byte[c] = alnum[c] || c == '_';
        blank_byte[c] = c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
        day_start[c] = c == 'M' || c == 'T' || c == 'W' || c == 'F' || c == 'S';
        may_start[c] = hexd[c] || day_start[c];
        sql_token_start[c] = c == '\'' || c == '"' || c == '/' || c == '-' || c == '#' || digit_byte[c] || blank_byte[c];
    }
    return PyModule_Create(&module);
}
