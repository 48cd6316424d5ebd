/* SPDX-License-Identifier: GPL-2.0 */
/*
 * R20, chunked bodies: the phases of the walk and the step from one framing byte to the next, shared by the
 * extractor (bpf/xhdr.c) and the C baseline (bench/baselines/capture.c), which must read bodies alike.
 * harness/oracle/reference.py states the same rule on its own, and the tests hold both to it.
 */
#ifndef XHDR_CHUNKS_H
#define XHDR_CHUNKS_H

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define XHDR_CHUNK_STEPS 256		/* framing bytes and runs of data one walk reads in one segment */
#define XHDR_CHUNK_SIZE_MAX_DIGITS 16	/* hex digits of a chunk size */

/* What the next byte of a chunked body must be. */
enum xhdr_chunk_phase {
	XHDR_CH_SIZE_START,	/* the first hex digit of a chunk size */
	XHDR_CH_SIZE,		/* another hex digit, ';' or CR */
	XHDR_CH_EXTENSION,	/* any byte but LF, up to a CR */
	XHDR_CH_SIZE_LF,
	XHDR_CH_DATA,		/* the chunk's data, whatever its bytes: skipped, not read */
	XHDR_CH_DATA_CR,
	XHDR_CH_DATA_LF,
	XHDR_CH_TRAILER_START,	/* CR (the empty line), or the first byte of a trailer line */
	XHDR_CH_TRAILER,	/* any byte but LF, up to a CR */
	XHDR_CH_TRAILER_LF,
	XHDR_CH_END_LF,		/* the LF of the empty line that ends the body */
	XHDR_CH_ENDED,		/* past that LF */
};

/* The value of a hex digit, or -1 for any other byte. */
static __always_inline int xhdr_hex_value(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * The phase after framing byte c in `phase` (XHDR_CH_ENDED after the body's last), or -1 where the grammar
 * breaks. A chunk size accumulates in *number with *digits hex digits; both start at 0 for each chunk.
 */
static __always_inline int xhdr_chunk_byte(__u32 phase, __u8 c, __u64 *number, __u32 *digits)
{
	int digit = xhdr_hex_value(c);

	switch (phase) {
	case XHDR_CH_SIZE_START:
	case XHDR_CH_SIZE:
		if (digit >= 0) {
			if (*digits >= XHDR_CHUNK_SIZE_MAX_DIGITS)
				return -1;
			*number = *number << 4 | digit;
			*digits += 1;
			return XHDR_CH_SIZE;
		}
		if (phase == XHDR_CH_SIZE_START)
			return -1;
		if (c == ';')
			return XHDR_CH_EXTENSION;
		return c == '\r' ? XHDR_CH_SIZE_LF : -1;
	case XHDR_CH_EXTENSION:
		return c == '\r' ? XHDR_CH_SIZE_LF : c == '\n' ? -1 : XHDR_CH_EXTENSION;
	case XHDR_CH_SIZE_LF:
		if (c != '\n')
			return -1;
		return *number ? XHDR_CH_DATA : XHDR_CH_TRAILER_START;
	case XHDR_CH_DATA_CR:
		return c == '\r' ? XHDR_CH_DATA_LF : -1;
	case XHDR_CH_DATA_LF:
		*digits = 0;
		return c == '\n' ? XHDR_CH_SIZE_START : -1;
	case XHDR_CH_TRAILER_START:
		return c == '\r' ? XHDR_CH_END_LF : c == '\n' ? -1 : XHDR_CH_TRAILER;
	case XHDR_CH_TRAILER:
		return c == '\r' ? XHDR_CH_TRAILER_LF : c == '\n' ? -1 : XHDR_CH_TRAILER;
	case XHDR_CH_TRAILER_LF:
		return c == '\n' ? XHDR_CH_TRAILER_START : -1;
	case XHDR_CH_END_LF:
		return c == '\n' ? XHDR_CH_ENDED : -1;
	}
	return -1;
}

#endif /* XHDR_CHUNKS_H */
