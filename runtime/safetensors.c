/* safetensors.c -- mmap a .safetensors file and validate its header.
 *
 * Every number in the header is untrusted: the header length is checked
 * against the file size, each tensor's element count is computed with
 * overflow checks and must match its byte range, and every byte range must
 * lie inside the data region. Only then is a tensor visible to callers.
 */
#include "runtime/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is not a weight file we want to parse. */
#define MAX_HEADER_BYTES ((uint64_t)256 << 20)

int sgl_dtype_size(SglDType dt)
{
    switch (dt) {
    case SGL_DT_F32: return 4;
    case SGL_DT_F16: return 2;
    case SGL_DT_BF16: return 2;
    }
    return 0;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const SglStTensor *)a)->name, ((const SglStTensor *)b)->name);
}

/* Parses one header entry into t (name already set). */
static SglStatus parse_entry(const char *path, const char *name, json_t *v,
                             uint64_t data_len, const uint8_t *data, SglStTensor *t,
                             SglErr *err)
{
    if (!json_is_object(v))
        return sgl_err(err, SGL_E_FORMAT, "%s: tensor %s: header entry is not an object", path, name);
    json_t *jd = json_object_get(v, "dtype");
    json_t *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd))
        return sgl_err(err, SGL_E_FORMAT, "%s: tensor %s: dtype: expected a string", path, name);
    const char *ds = json_string_value(jd);
    if (!strcmp(ds, "F32")) t->dtype = SGL_DT_F32;
    else if (!strcmp(ds, "F16")) t->dtype = SGL_DT_F16;
    else if (!strcmp(ds, "BF16")) t->dtype = SGL_DT_BF16;
    else
        return sgl_err(err, SGL_E_UNSUPPORTED,
                       "%s: tensor %s: dtype %.32s is not supported (F32, F16, BF16)", path, name, ds);
    if (!json_is_array(js) || json_array_size(js) > SGL_ST_MAX_DIMS)
        return sgl_err(err, SGL_E_FORMAT, "%s: tensor %s: shape: expected an array of at most %d integers",
                       path, name, SGL_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(js, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > ((json_int_t)1 << 40))
            return sgl_err(err, SGL_E_FORMAT, "%s: tensor %s: shape[%d]: expected a non-negative integer",
                           path, name, i);
        t->shape[i] = (int64_t)json_integer_value(d);
        if (t->shape[i] != 0 && numel > (UINT64_MAX >> 2) / (uint64_t)t->shape[i])
            return sgl_err(err, SGL_E_FORMAT, "%s: tensor %s: shape is too large", path, name);
        numel *= (uint64_t)t->shape[i];
    }
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return sgl_err(err, SGL_E_FORMAT, "%s: tensor %s: data_offsets: expected [begin, end]", path, name);
    json_int_t b = json_integer_value(json_array_get(jo, 0));
    json_int_t e = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || e < b || (uint64_t)e > data_len)
        return sgl_err(err, SGL_E_FORMAT,
                       "%s: tensor %s: data_offsets [%lld, %lld] outside the data region (%llu bytes)",
                       path, name, (long long)b, (long long)e, (unsigned long long)data_len);
    uint64_t want = numel * (uint64_t)sgl_dtype_size(t->dtype);
    if ((uint64_t)(e - b) != want)
        return sgl_err(err, SGL_E_FORMAT, "%s: tensor %s: %lld bytes in data_offsets, shape needs %llu",
                       path, name, (long long)(e - b), (unsigned long long)want);
    t->data = data + b;
    t->n_bytes = (int64_t)want;
    return SGL_OK;
}

SglStatus sgl_st_init(SglStFile *f, const char *path, SglErr *err)
{
    SglStatus st = SGL_OK;
    int fd = -1;
    json_t *root = NULL;
    memset(f, 0, sizeof *f);

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = sgl_err(err, SGL_E_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = sgl_err(err, SGL_E_IO, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t file_len = (uint64_t)sb.st_size;
    if (file_len < 8) {
        st = sgl_err(err, SGL_E_FORMAT, "%s: file is %llu bytes, too short for a safetensors header",
                     path, (unsigned long long)file_len);
        goto fail;
    }
    f->path = strdup(path);
    if (!f->path) {
        st = sgl_err(err, SGL_E_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    f->map = mmap(NULL, (size_t)file_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        st = sgl_err(err, SGL_E_IO, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    f->map_len = (size_t)file_len;
    const uint8_t *bytes = f->map;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)bytes[i] << (8 * i);
    if (hlen > file_len - 8 || hlen > MAX_HEADER_BYTES) {
        st = sgl_err(err, SGL_E_FORMAT, "%s: header length %llu exceeds the file size (%llu bytes)",
                     path, (unsigned long long)hlen, (unsigned long long)file_len);
        goto fail;
    }
    json_error_t jerr;
    root = json_loadb((const char *)bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        st = sgl_err(err, SGL_E_FORMAT, "%s: header is not a JSON object%s%s", path,
                     root ? "" : ": ", root ? "" : jerr.text);
        goto fail;
    }
    size_t n = json_object_size(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        st = sgl_err(err, SGL_E_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__"))
            continue;
        SglStTensor *t = &f->tensors[f->n_tensors];
        t->name = strdup(key);
        if (!t->name) {
            st = sgl_err(err, SGL_E_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        f->n_tensors++;
        st = parse_entry(path, key, val, file_len - 8 - hlen, bytes + 8 + hlen, t, err);
        if (st != SGL_OK)
            goto fail;
    }
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_tensor);
    json_decref(root);
    close(fd);
    return SGL_OK;

fail:
    json_decref(root);
    if (fd >= 0)
        close(fd);
    sgl_st_deinit(f);
    return st;
}

void sgl_st_deinit(SglStFile *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    if (f->map)
        munmap(f->map, f->map_len);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const SglStTensor *sgl_st_find(const SglStFile *f, const char *name)
{
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0)
            return &f->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}
