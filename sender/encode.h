/* SPDX-License-Identifier: MIT */
/* One block in, its sealed frames out: compress → pad → FEC → frame → seal. */
#ifndef SLUICE_SENDER_ENCODE_H
#define SLUICE_SENDER_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"

struct aead_ctx;

struct encoder {
	struct fec *fec;
	void *zstd; /* ZSTD_CCtx */
	/* zstd back-off: after a block that did not shrink, the next 2^misses - 1
	 * blocks are stored raw without trying (misses at most 4, so at most 15
	 * blocks, about 2.7 MB at MTU 1500); a block that shrinks resets it. */
	unsigned zstd_misses, zstd_skip;
	struct aead_ctx *aead;
	uint64_t session_id;
	uint64_t counter; /* last counter used; frames get ++counter */
	uint16_t S;       /* symbol size */
	uint8_t kmax;     /* source symbols of a full block */
	double fec_pct;   /* inner repair symbols per source symbol, in percent */
	uint8_t group;    /* G: data blocks per outer-code group */
	uint8_t parity;   /* P: outer parity rows per group */
	int compress;
	uint8_t *plain;  /* kmax * S: stored block, zero padded */
	uint8_t *repair; /* 255 * S */
	uint8_t last_k;  /* k of the block enc_block encoded last */
	/* data blocks get at least this many repair symbols (as far as
	 * k + m <= 255 allows); 0: fec_pct alone decides */
	unsigned min_repair;
	/* statistics */
	uint64_t raw_bytes, stored_bytes, blocks_compressed;
};

/* Largest k whose repair count at fec_pct still fits k + m <= 255, capped at
 * 128 (bigger blocks decode slower and gain little). 0 if none fits. */
unsigned enc_pick_k(double fec_pct);

/* Split a total redundancy budget between the outer code (P parity rows per
 * group of G blocks) and the inner per-block code: (1 + P/G)(1 + inner) is
 * at most 1 + total. Independent RS blocks of <= 255 symbols cannot carry
 * 5% random loss on 10% overhead (about 1% of k=128 blocks fail); coupling
 * the blocks of a group with a column code makes that loss routine. */
void enc_split(double total_pct, unsigned group, unsigned *parity, double *inner_pct);
/* Repair symbols for a block of k source symbols. */
unsigned enc_repair_count(unsigned k, double fec_pct);
/* Most frames one block can produce (size of the frames array per block). */
unsigned enc_max_frames(const struct encoder *e);

__attribute__((warn_unused_result)) int enc_init(struct encoder *e, uint16_t symbol_size,
                                                 uint8_t kmax, double total_pct, uint8_t group,
                                                 int compress);
void enc_free(struct encoder *e);

/* One block, coded and ready to be framed (enc_code, enc_frame). src and
 * rep point into the caller's buffers, which must outlive the framing. */
struct coded {
	enum frame_type type;
	uint32_t block;
	struct symhdr sh;
	unsigned k, m, first;
	const uint8_t *src; /* k source symbols: the stored form */
	const uint8_t *rep; /* m repair symbols */
};

/* Compress (when allowed and it shrinks), pad to kmax symbols in row and
 * compute the repair symbols into rep (room for enc_max_frames - k). row
 * may be raw itself when allow_compress is 0. Returns k + m or -errno. */
__attribute__((warn_unused_result)) int enc_code(struct encoder *e, enum frame_type type,
                                                 uint32_t block, const uint8_t *raw, size_t len,
                                                 unsigned pass, int allow_compress, uint8_t *row,
                                                 uint8_t *rep, struct coded *cb);
/* Frame i (0 .. k + m - 1) of a coded block into out
 * (proto_frame_len(type, S) bytes), sealed with the next counter when seal
 * is set. Sealing frames as they go into the transmit queue gives the wire
 * increasing counters and spares a copy. 0 or -errno. */
__attribute__((warn_unused_result)) int enc_frame(struct encoder *e, const struct coded *cb,
                                                  unsigned i, int seal, uint8_t *out);

/* Encode one block of `type` (FRAME_DATA or FRAME_MANIFEST) for the given
 * pass (1-based; each pass emits different repair symbols). Manifest blocks
 * get 100% repair, data blocks fec_pct. The block's stored form, zero padded
 * to kmax * S, is left in row (NULL: an internal buffer). frames[i] are
 * buffers of proto_frame_len(type, S) bytes. When seal is 0 the frames are
 * left as plaintext with counter 0 (the manifest carousel seals copies
 * later with enc_seal_copy). Returns the number of frames, or -errno. */
__attribute__((warn_unused_result)) int enc_block(struct encoder *e, enum frame_type type,
                                                  uint32_t block, const uint8_t *raw, size_t len,
                                                  unsigned pass, int allow_compress, int seal,
                                                  uint8_t *row, uint8_t **frames);

/* Outer parity rows of a group: RS across the first k symbols of the nrows
 * padded rows (k = the longest row's k; beyond it every row is zero, and so
 * is the parity), written to out[0 .. parity-1]. */
__attribute__((warn_unused_result)) int enc_outer(struct encoder *e, uint8_t *const *rows,
                                                  unsigned nrows, unsigned k, uint8_t *const *out);

/* Copy a plaintext frame, give it the next counter and seal the copy. */
__attribute__((warn_unused_result)) int enc_seal_copy(struct encoder *e, const uint8_t *plain,
                                                      uint8_t *out, size_t len);

/* Build and seal a HEARTBEAT or END frame (PROTO_STATUS_FRAME_LEN bytes). */
__attribute__((warn_unused_result)) int enc_status(struct encoder *e, enum frame_type type,
                                                   uint32_t pass, uint32_t passes, uint8_t *out);

#endif
