/* The buffers of a call, one rule for every entry point (CPU _multi and flat, the grad_sq_sum
 * helpers, the GPU optimizer's creation and rebinding):
 *   - every pointer is aligned to its element size (a misaligned load faults on the GPU and is
 *     undefined behaviour in C);
 *   - every buffer's byte size, numel * element size, is at most 2^57 bytes and its end fits the
 *     address space (checked before any multiplication can wrap);
 *   - no two buffers that the step writes overlap, nor a written one with a read one; buffers that
 *     are only read (grads without zero_grads) may coincide.
 * All checked before anything runs; a failure names the tensor and slot (both of them for an
 * overlap). */
#include <stdlib.h>

#include "internal.h"

/* No 64-bit platform maps more than 2^57 bytes of virtual memory into a process (x86-64 with
 * 5-level paging: 2^56 for user space; AArch64: 2^52; NVIDIA GPUs: 2^49), so a buffer of more
 * bytes cannot exist, whatever its address: checked before numel * elem can wrap. */
#define FOPT_MAX_BUFFER_BYTES ((uint64_t)1 << 57)

size_t fopt_dtype_bytes(fopt_dtype dt)
{
    return dt == FOPT_FLOAT32 ? 4 : 2;
}

fopt_status fopt_pointer_aligned(const void *p, size_t align, const char *what)
{
    if ((uintptr_t)p % align != 0)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "%s (%p) is not aligned to its %zu-byte elements", what, p, align);
    return FOPT_SUCCESS;
}

bool fopt_buffer_fits(const void *p, size_t numel, size_t elem)
{
    return (uint64_t)numel <= FOPT_MAX_BUFFER_BYTES / elem && (uintptr_t)p <= UINTPTR_MAX - numel * elem;
}

fopt_status fopt_buffer_range(const void *p, size_t numel, size_t elem, size_t tensor,
                              const char *what, bool written, fopt_range *out)
{
    if ((uintptr_t)p % elem != 0)
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "tensor %zu: %s (%p) is not aligned to its %zu-byte elements", tensor, what,
                         p, elem);
    if (!fopt_buffer_fits(p, numel, elem))
        return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                         "tensor %zu: %s: numel %zu of %zu-byte elements at %p does not fit the "
                         "address space (a buffer holds at most 2^57 bytes)", tensor, what, numel,
                         elem, p);
    *out = (fopt_range){(uintptr_t)p, (uintptr_t)p + numel * elem, tensor, what, written};
    return FOPT_SUCCESS;
}

static int range_cmp(const void *a, const void *b)
{
    const fopt_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* After sorting by begin, a range overlaps an earlier one it may not share memory with exactly
 * when it begins before the furthest end among them: of every earlier range when it is written,
 * of the earlier written ones when it is read. */
bool fopt_ranges_overlap(fopt_range *r, size_t count, fopt_range *a, fopt_range *b)
{
    qsort(r, count, sizeof *r, range_cmp);
    const fopt_range *any = NULL, *wrote = NULL; /* the furthest-reaching so far */
    for (size_t i = 0; i < count; i++) {
        if (r[i].end == r[i].begin)
            continue;
        const fopt_range *other = r[i].written ? any : wrote;
        if (other && r[i].begin < other->end) {
            *a = *other;
            *b = r[i];
            return true;
        }
        if (!any || r[i].end > any->end)
            any = &r[i];
        if (r[i].written && (!wrote || r[i].end > wrote->end))
            wrote = &r[i];
    }
    return false;
}

fopt_status fopt_ranges_disjoint(fopt_range *r, size_t count)
{
    fopt_range a, b;
    if (!fopt_ranges_overlap(r, count, &a, &b))
        return FOPT_SUCCESS;
    return fopt_fail(FOPT_ERROR_INVALID_VALUE,
                     "buffers overlap: tensor %zu's %s and tensor %zu's %s share memory (the step "
                     "writes %s)", a.tensor, a.what, b.tensor, b.what,
                     a.written && b.written ? "both" : "one of them");
}
