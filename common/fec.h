/* SPDX-License-Identifier: MIT */
/* Systematic Reed-Solomon erasure code over GF(2^8) on Intel ISA-L.
 *
 * A block has k source symbols (indices 0..k-1) and may have repair symbols
 * with indices k..254 (k + repair <= 255). Repair row i of the code is row i
 * of the 255 x k Cauchy matrix from gf_gen_cauchy1_matrix(), so any k of the
 * 255 possible symbols reconstruct the block (MDS), and a later pass can send
 * *different* repair indices of the same block.
 *
 * Decoding inverts only the e x e sub-matrix that maps the e lost source
 * symbols to e received repair symbols (DESIGN.md: stock full k x k inversion
 * measured 42 ms per k=200 block, the sub-matrix path 12-660 us), and caches
 * the resulting ISA-L tables per loss pattern.
 */
#ifndef SLUICE_COMMON_FEC_H
#define SLUICE_COMMON_FEC_H

#include <stddef.h>
#include <stdint.h>

#define FEC_MAX_SYMBOLS 255 /* k + number of repair indices */
#define FEC_MAX_K       254

struct fec;

/* Create a codec context (holds the Cauchy matrix and table caches).
 * Not thread-safe: use one context per thread. NULL on allocation failure. */
struct fec *fec_new(void);
void fec_free(struct fec *f);

/* Compute repair symbols first_repair .. first_repair+nrepair-1 for one
 * block; the range wraps inside k..254: out[i] is repair index
 * k + ((first_repair - k + i) mod (255 - k)), and callers must label what they
 * send the same way. first_repair in k..254, nrepair <= 255 - k (0: no-op).
 * src[0..k-1] and out[0..nrepair-1] point to symbols of len bytes.
 * Returns 0, -EINVAL or -ENOMEM. */
__attribute__((warn_unused_result)) int fec_encode(struct fec *f, unsigned k, unsigned first_repair,
                                                   unsigned nrepair, size_t len,
                                                   const uint8_t *const *src, uint8_t *const *out);

/* Reconstruct lost source symbols of one block.
 * sym[0..254]: pointer for each symbol index, NULL where not received.
 * For every source index i < k with sym[i] == NULL, out[i] must point to a
 * writable buffer of len bytes which receives the recovered symbol.
 * Needs at least k received symbols in total (any k of them).
 * Returns 0, -EAGAIN when fewer than k symbols are present, -EINVAL on bad
 * arguments, -ENOMEM. */
__attribute__((warn_unused_result)) int fec_decode(struct fec *f, unsigned k, size_t len,
                                                   const uint8_t *const sym[FEC_MAX_SYMBOLS],
                                                   uint8_t *const out[FEC_MAX_SYMBOLS]);

/* Repair indices for pass p of a block: pass 0 sends k..k+m-1, pass 1 the
 * next m indices, wrapping inside k..254. Returns the first index. */
unsigned fec_repair_start(unsigned k, unsigned m, unsigned pass);

#endif
