/*
 * A data function in C: flags every sample whose air quality lies more than `k` standard
 * deviations from its window's mean (score: |z|). It speaks the edge-function ABI 1 by
 * hand, with no libc and no SDK: postcard in, postcard out, one bump arena in linear
 * memory, and the agent's one import, `edge.log`.
 *
 *   clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,-z,stack-size=65536 \
 *         -o zscore.wasm zscore.c
 *   edge-agent check zscore.wasm
 *   edge-agent replay --function zscore.wasm --input samples.csv --param k=2.5
 *
 * What crosses the boundary (postcard: lengths and integers as LEB128 varints, signed ones
 * zigzagged, f32 as 4 little-endian bytes, an enum as its variant's index):
 *   init    Params = [(name, value)]        -> Result<InitInfo { min_window_len }, Error>
 *   execute Window { sensor_id, timestamps, air_quality, temperature, humidity, pressure,
 *                    gas_resistance }        -> Result<[Verdict { is_anomaly, score }], Error>
 * Each answers `ptr << 32 | len` of its answer. Every read is checked against the input's
 * length: a malformed input gets an `Err`, never a read past it.
 */

#include <stddef.h>
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(name)))

__attribute__((import_module("edge"), import_name("log"))) void edge_log(uint32_t level,
                                                                         const char *ptr,
                                                                         uint32_t len);
enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2 };

/* ---- the arena: everything lives from __heap_base up; each `alloc` starts it again,
 * because the host copies an answer out before it asks for the next input. ---- */

extern unsigned char __heap_base;
static uintptr_t arena_top;

static void *arena_take(size_t len) {
  uintptr_t start = (arena_top + 7) & ~(uintptr_t)7;
  uintptr_t end = start + len;
  if (end < start) return 0;
  size_t have = __builtin_wasm_memory_size(0) * 65536;
  if (end > have) {
    size_t pages = (end - have + 65535) / 65536;
    if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return 0;
  }
  arena_top = end;
  return (void *)start;
}

EXPORT("alloc") void *alloc(uint32_t len) {
  arena_top = (uintptr_t)&__heap_base;
  return arena_take(len);
}

EXPORT("dealloc") void dealloc(void *ptr, uint32_t len) { (void)ptr, (void)len; }

EXPORT("edge_abi_version") uint32_t edge_abi_version(void) { return 1; }

/* The one routine clang calls on its own (for copies it turns into calls): with no libc,
 * the module brings it. */
void *memcpy(void *dst, const void *src, size_t len) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (len--) *d++ = *s++;
  return dst;
}

static size_t text_len(const char *text) {
  size_t len = 0;
  while (text[len]) len++;
  return len;
}

/* ---- reading postcard ---- */

typedef struct {
  const unsigned char *at, *end;
  int bad;
} Reader;

static uint64_t read_varint(Reader *r) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->at >= r->end) break;
    unsigned char byte = *r->at++;
    value |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return value;
  }
  r->bad = 1;
  return 0;
}

/* A length prefix, refused when the input cannot hold that many items of `item_size`. */
static size_t read_len(Reader *r, size_t item_size) {
  uint64_t len = read_varint(r);
  if (r->bad || len > (uint64_t)(r->end - r->at) / item_size) {
    r->bad = 1;
    return 0;
  }
  return (size_t)len;
}

static const unsigned char *read_bytes(Reader *r, size_t len) {
  const unsigned char *start = r->at;
  r->at += len; /* read_len checked that len bytes remain */
  return start;
}

static float read_f32(const unsigned char *p) {
  uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                  (uint32_t)p[3] << 24;
  float value;
  __builtin_memcpy(&value, &bits, 4);
  return value;
}

/* ---- writing postcard ---- */

typedef struct {
  unsigned char *start, *at;
} Writer;

static void write_varint(Writer *w, uint64_t value) {
  do {
    unsigned char byte = value & 0x7f;
    value >>= 7;
    *w->at++ = byte | (value ? 0x80 : 0);
  } while (value);
}

static uint64_t answer(Writer *w) {
  return (uint64_t)(uintptr_t)w->start << 32 | (uint64_t)(w->at - w->start);
}

/* `Err(Error { message })`, from up to three pieces of text. */
static uint64_t error(const char *a, const unsigned char *b, size_t b_len, const char *c) {
  size_t a_len = text_len(a), c_len = text_len(c);
  size_t len = a_len + b_len + c_len;
  Writer w = {arena_take(len + 16), 0};
  if (!w.start) __builtin_trap();
  w.at = w.start;
  write_varint(&w, 1);
  write_varint(&w, len);
  memcpy(w.at, a, a_len), w.at += a_len;
  memcpy(w.at, b, b_len), w.at += b_len;
  memcpy(w.at, c, c_len), w.at += c_len;
  return answer(&w);
}

static int same(const unsigned char *text, size_t len, const char *word) {
  size_t i = 0;
  for (; i < len && word[i]; i++)
    if (text[i] != (unsigned char)word[i]) return 0;
  return i == len && !word[i];
}

/* A positive decimal such as `3`, `2.5` or `.75`; -1 for anything else. */
static double parse_positive(const unsigned char *text, size_t len) {
  double value = 0, scale = 1;
  int digits = 0, point = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = text[i];
    if (ch == '.' && !point) {
      point = 1;
    } else if (ch >= '0' && ch <= '9') {
      digits++;
      if (point) scale /= 10, value += (ch - '0') * scale;
      else value = value * 10 + (ch - '0');
    } else {
      return -1;
    }
  }
  return digits && value > 0 ? value : -1;
}

/* ---- the function ---- */

static double threshold = 3.0; /* kept from `init` for every window that follows */

enum { MIN_WINDOW_LEN = 8 };

EXPORT("init") uint64_t init(const unsigned char *input, uint32_t len) {
  Reader r = {input, input + len, 0};
  threshold = 3.0;
  size_t count = read_len(&r, 2);
  for (size_t i = 0; i < count && !r.bad; i++) {
    size_t name_len = read_len(&r, 1);
    const unsigned char *name = read_bytes(&r, name_len);
    size_t value_len = read_len(&r, 1);
    const unsigned char *value = read_bytes(&r, value_len);
    if (r.bad) break;
    if (!same(name, name_len, "k"))
      return error("unknown parameter `", name, name_len, "` (known: k)");
    threshold = parse_positive(value, value_len);
    if (threshold < 0)
      return error("parameter `k`: cannot use `", value, value_len, "`: not a positive number");
  }
  if (r.bad) return error("parameters do not decode", 0, 0, "");
  static const char said[] = "z-score function ready";
  edge_log(LOG_INFO, said, sizeof said - 1);
  Writer w = {arena_take(16), 0};
  if (!w.start) __builtin_trap();
  w.at = w.start;
  write_varint(&w, 0);
  write_varint(&w, MIN_WINDOW_LEN);
  return answer(&w);
}

EXPORT("execute") uint64_t execute(const unsigned char *input, uint32_t len) {
  Reader r = {input, input + len, 0};
  read_bytes(&r, read_len(&r, 1)); /* sensor_id */
  size_t samples = read_len(&r, 1);
  for (size_t i = 0; i < samples && !r.bad; i++) read_varint(&r); /* timestamps */
  size_t values = read_len(&r, 4);
  const unsigned char *air_quality = read_bytes(&r, values * 4);
  if (r.bad) return error("input does not decode", 0, 0, "");
  if (values != samples) return error("air quality is not one value per sample", 0, 0, "");

  double sum = 0;
  for (size_t i = 0; i < values; i++) sum += read_f32(air_quality + i * 4);
  double mean = values ? sum / values : 0, squares = 0;
  for (size_t i = 0; i < values; i++) {
    double d = read_f32(air_quality + i * 4) - mean;
    squares += d * d;
  }
  double deviation = values ? __builtin_sqrt(squares / values) : 0;

  /* Ok, the count, then per verdict: the flag and `Some(score)`. */
  if (values > (SIZE_MAX - 16) / 6) return error("window too long", 0, 0, "");
  Writer w = {arena_take(16 + values * 6), 0};
  if (!w.start) __builtin_trap();
  w.at = w.start;
  write_varint(&w, 0);
  write_varint(&w, values);
  size_t flagged = 0;
  for (size_t i = 0; i < values; i++) {
    double d = read_f32(air_quality + i * 4) - mean;
    float z = deviation > 0 ? (float)(__builtin_fabs(d) / deviation) : 0.0f;
    int anomaly = z > threshold;
    flagged += anomaly;
    *w.at++ = (unsigned char)anomaly;
    *w.at++ = 1;
    uint32_t bits;
    __builtin_memcpy(&bits, &z, 4);
    for (int b = 0; b < 4; b++) *w.at++ = (unsigned char)(bits >> (8 * b));
  }
  if (flagged * 4 > values) {
    static const char said[] = "more than a quarter of the window flagged";
    edge_log(LOG_WARN, said, sizeof said - 1);
  }
  return answer(&w);
}
