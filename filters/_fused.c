/* A compiled look in one pass over the pixels (filters.fused is its Python side).
 *
 * filters.compile evaluates a look as a table read at (state + level) per channel, followed by
 * the colour matrices and clamped affine maps of its filter chain ("the tail"), then rounds to
 * 8 bits. numpy does that plane by plane, one pass over memory per operation. This kernel does
 * the same arithmetic, in the same order and in float32 (no fused multiply-add, so results are
 * bit for bit those of filters.compile.execute), block by block: a block's planes stay in the
 * L1 cache, and the operations on them are simple loops the compiler vectorises.
 *
 * Pixels are Pillow's own storage, reached through the Arrow C data interface that Pillow
 * exports: four bytes a pixel (R, G, B and a pad byte), rows back to back in one block.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 256
#define OP_SIZE 10 /* [code, 9 parameters] */
#define OP_MATRIX 0.0f
#define OP_CLAMPED 1.0f

/* The Arrow C data interface's array (https://arrow.apache.org/docs/format/CDataInterface.html):
 * a stable ABI, so it is declared here rather than taken from Arrow's headers. */
struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

typedef struct {
    const uint8_t *u8; /* (3, size) 8-bit table: the whole look, or NULL */
    const float *f32;  /* (3, size) float table, followed by the tail, or NULL: level / 255 */
    Py_ssize_t size;
    const int32_t *states; /* a pixel's state times 256, or NULL: one state */
    const float *ops;
    Py_ssize_t n_ops;
} Look;

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif
/* Reads from the tables stay scalar: AVX2's gather instruction was slower here (AMD EPYC). */
#if defined(__GNUC__) && !defined(__clang__)
#define NOVECTOR __attribute__((noinline, optimize("no-tree-vectorize"))) static
#else
#define NOVECTOR static
#endif
/* The helpers are inlined into each clone, so that they are vectorised for its instruction set. */
#define INLINE static inline __attribute__((always_inline))

/* clamp(M @ rgb, 0, 1) from the planes in[] into out[], a row at a time (each a loop the
 * compiler vectorises); a row equal to an earlier one (as in grayscale(1)) is copied. */
INLINE void matrix(float *const in[3], float *const out[3], int n, const float *restrict m) {
    const float *restrict r = in[0], *restrict g = in[1], *restrict b = in[2];
    for (int row = 0; row < 3; row++) {
        const float m0 = m[3 * row], m1 = m[3 * row + 1], m2 = m[3 * row + 2];
        float *restrict o = out[row];
        int same = -1;
        for (int earlier = 0; earlier < row && same < 0; earlier++)
            if (m[3 * earlier] == m0 && m[3 * earlier + 1] == m1 && m[3 * earlier + 2] == m2)
                same = earlier;
        if (same >= 0) {
            memcpy(o, out[same], n * sizeof(float));
            continue;
        }
        for (int i = 0; i < n; i++) {
            float acc = r[i] * m0;
            acc += g[i] * m1;
            acc += b[i] * m2;
            acc = acc < 0.0f ? 0.0f : acc;
            o[i] = acc > 1.0f ? 1.0f : acc;
        }
    }
}

INLINE void clamped(float *restrict plane, int n, const float *restrict p) {
    const float scale = p[0], offset = p[1], lo = p[2], hi = p[3];
    for (int i = 0; i < n; i++) {
        float v = plane[i] * scale;
        v += offset;
        v = v < lo ? lo : v;
        plane[i] = v > hi ? hi : v;
    }
}

/* A pixel is four bytes, R, G, B and a pad byte: read and written as one 32-bit word (the
 * loops then vectorise without byte shuffles). */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the kernel reads a pixel's bytes as a little-endian word"
#endif
#define RED(p) ((p)&255u)
#define GREEN(p) (((p) >> 8) & 255u)
#define BLUE(p) (((p) >> 16) & 255u)
#define PIXEL(r, g, b) ((r) | (g) << 8 | (b) << 16 | 0xFF000000u)

/* The planes of the identity table (level / 255): a conversion, vectorised. */
INLINE void convert(const uint32_t *restrict src, int n, float *restrict r, float *restrict g,
                    float *restrict b) {
    for (int i = 0; i < n; i++) {
        const uint32_t p = src[i];
        r[i] = (float)(int32_t)RED(p) / 255.0f;
        g[i] = (float)(int32_t)GREEN(p) / 255.0f;
        b[i] = (float)(int32_t)BLUE(p) / 255.0f;
    }
}

/* The planes read from the float table, at (state + level). */
NOVECTOR void gather(const Look *look, const uint32_t *restrict src,
                     const int32_t *restrict states, int n, float *restrict r,
                     float *restrict g, float *restrict b) {
    const float *t0 = look->f32, *t1 = t0 + look->size, *t2 = t1 + look->size;
    for (int i = 0; i < n; i++) {
        const uint32_t p = src[i];
        const int32_t s = states ? states[i] : 0;
        r[i] = t0[s + RED(p)];
        g[i] = t1[s + GREEN(p)];
        b[i] = t2[s + BLUE(p)];
    }
}

INLINE void store(const float *restrict r, const float *restrict g, const float *restrict b,
                  int n, uint32_t *restrict dst) {
    for (int i = 0; i < n; i++) {
        const uint32_t r8 = (uint32_t)(int32_t)(r[i] * 255.0f + 0.5f);
        const uint32_t g8 = (uint32_t)(int32_t)(g[i] * 255.0f + 0.5f);
        const uint32_t b8 = (uint32_t)(int32_t)(b[i] * 255.0f + 0.5f);
        dst[i] = PIXEL(r8, g8, b8);
    }
}

CLONES static void float_block(const Look *look, const uint32_t *src, const int32_t *states,
                               int n, uint32_t *dst) {
    float planes[2][3][BLOCK]; /* the planes, and where a matrix writes its result */
    float *now[3] = {planes[0][0], planes[0][1], planes[0][2]};
    float *next[3] = {planes[1][0], planes[1][1], planes[1][2]};
    if (look->f32)
        gather(look, src, states, n, now[0], now[1], now[2]);
    else
        convert(src, n, now[0], now[1], now[2]);
    for (Py_ssize_t k = 0; k < look->n_ops; k++) {
        const float *op = look->ops + k * OP_SIZE;
        if (op[0] == OP_MATRIX) {
            matrix(now, next, n, op + 1);
            for (int c = 0; c < 3; c++) {
                float *swap = now[c];
                now[c] = next[c];
                next[c] = swap;
            }
        } else {
            for (int c = 0; c < 3; c++)
                clamped(now[c], n, op + 1);
        }
    }
    store(now[0], now[1], now[2], n, dst);
}

CLONES static void table_block(const Look *look, const uint32_t *restrict src,
                               const int32_t *restrict states, int n, uint32_t *restrict dst) {
    const uint8_t *t0 = look->u8, *t1 = t0 + look->size, *t2 = t1 + look->size;
    for (int i = 0; i < n; i++) {
        const uint32_t p = src[i];
        const int32_t s = states ? states[i] : 0;
        dst[i] = PIXEL((uint32_t)t0[s + RED(p)], (uint32_t)t1[s + GREEN(p)],
                       (uint32_t)t2[s + BLUE(p)]);
    }
}

static void run(const Look *look, const uint32_t *src, uint32_t *dst, Py_ssize_t pixels) {
    for (Py_ssize_t start = 0; start < pixels; start += BLOCK) {
        const int n = (int)(pixels - start < BLOCK ? pixels - start : BLOCK);
        const int32_t *states = look->states ? look->states + start : NULL;
        if (look->u8 != NULL)
            table_block(look, src + start, states, n, dst + start);
        else
            float_block(look, src + start, states, n, dst + start);
    }
}

/* The first byte of a Pillow image's pixels, from its exported Arrow array: a fixed-size list
 * of four uint8 a pixel (one child) or one int32 a pixel (no child). */
static uint32_t *pixels_of(PyObject *capsule, Py_ssize_t pixels) {
    struct ArrowArray *array = PyCapsule_GetPointer(capsule, "arrow_array");
    if (array == NULL)
        return NULL;
    if (array->release == NULL || array->length != pixels || array->null_count > 0) {
        PyErr_SetString(PyExc_ValueError, "not an exported picture of the expected size");
        return NULL;
    }
    int64_t offset = array->offset;
    if (array->n_children == 1) {
        struct ArrowArray *child = array->children[0];
        if (child->n_buffers < 2 || child->length < 4 * (offset + pixels)) {
            PyErr_SetString(PyExc_ValueError, "unexpected layout of an exported picture");
            return NULL;
        }
        return (uint32_t *)((uint8_t *)child->buffers[1] + 4 * (child->offset + offset));
    }
    if (array->n_children == 0 && array->n_buffers >= 2)
        return (uint32_t *)array->buffers[1] + offset;
    PyErr_SetString(PyExc_ValueError, "unexpected layout of an exported picture");
    return NULL;
}

CLONES static int within(const int32_t *states, Py_ssize_t n, int32_t top) {
    int32_t lo = 0, hi = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        lo = states[i] < lo ? states[i] : lo;
        hi = states[i] > hi ? states[i] : hi;
    }
    return lo >= 0 && hi <= top;
}

/* A C-contiguous buffer of items of one struct format ("f" float32, "B" uint8, "i" int32). */
static int take(PyObject *obj, Py_buffer *view, const char *format, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return 0;
    if (view->format == NULL || strcmp(view->format, format) != 0) {
        PyErr_Format(PyExc_ValueError, "%s: expected items of format %s", what, format);
        return 0;
    }
    return 1;
}

static PyObject *apply(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *src_capsule, *dst_capsule, *table_obj, *states_obj, *ops_obj;
    Py_ssize_t pixels;
    int is_float;
    Py_buffer table = {0}, states = {0}, ops = {0};
    if (!PyArg_ParseTuple(args, "OOnOpOO", &src_capsule, &dst_capsule, &pixels, &table_obj,
                          &is_float, &states_obj, &ops_obj))
        return NULL;
    PyObject *result = NULL;
    Look look = {0};
    uint32_t *src = pixels_of(src_capsule, pixels), *dst = pixels_of(dst_capsule, pixels);
    if (src == NULL || dst == NULL || !take(ops_obj, &ops, "f", "operations"))
        goto done;
    look.ops = ops.buf;
    look.n_ops = ops.len / (OP_SIZE * 4);
    int malformed = ops.len != look.n_ops * OP_SIZE * 4;
    if (table_obj == Py_None) { /* the identity table */
        look.size = 256;
        malformed |= !is_float || states_obj != Py_None;
    } else {
        if (!take(table_obj, &table, is_float ? "f" : "B", "table"))
            goto done;
        look.size = table.len / (3 * table.itemsize);
        malformed |= look.size < 256 || table.len != 3 * look.size * table.itemsize ||
                     (!is_float && look.n_ops);
        if (is_float)
            look.f32 = table.buf;
        else
            look.u8 = table.buf;
    }
    if (malformed) {
        PyErr_SetString(PyExc_ValueError, "malformed table or operations");
        goto done;
    }
    if (states_obj != Py_None) {
        if (!take(states_obj, &states, "i", "states"))
            goto done;
        if (states.len != pixels * 4) {
            PyErr_Format(PyExc_ValueError, "states: expected %zd of them", pixels);
            goto done;
        }
        look.states = states.buf;
        /* Every index (state + level) must fall inside the table: checked here, once. */
        if (!within(look.states, pixels, (int32_t)(look.size - 256))) {
            PyErr_SetString(PyExc_ValueError, "a state outside the table");
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    run(&look, src, dst, pixels);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    if (table.obj)
        PyBuffer_Release(&table);
    if (ops.obj)
        PyBuffer_Release(&ops);
    if (states.obj)
        PyBuffer_Release(&states);
    return result;
}

static PyMethodDef methods[] = {
    {"apply", apply, METH_VARARGS,
     "apply(src, dst, pixels, table, is_float, states, ops): a compiled look from src's pixels "
     "into dst's (both Arrow array capsules of Pillow RGB images); table None is the identity "
     "(level / 255, as floats)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "filters._fused",
                                    "A compiled look in one pass over the pixels.", -1, methods};

PyMODINIT_FUNC PyInit__fused(void) { return PyModule_Create(&module); }
