/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xhdr: logs HTTP/1.x request lines and configured header fields from XDP, and with responses on, from TC
 * egress, the status of each request's response and the time it took (xhdr_responses(), R24, R25). With
 * request rules (R27-R30, judge() in xhdr_emit()) a request can also be counted instead of logged, sampled,
 * or dropped with the rest of its flow.
 *
 * The rules R1-R30 are in docs/EXTRACTION.md; harness/oracle/reference.py implements them in Python and the
 * tests compare the two. The verdict is XDP_PASS, but for a segment a drop rule matched and the later
 * segments of its flow (R28, R29).
 *
 * How it works: the payload is read 8 bytes at a time straight from the packet, in blocks of 8 words
 * where the frame has them. A header line costs one search for the end of its name (a byte that is not a
 * letter, digit or '-'; the exact tchar test goes on only past a rarer byte), one comparison of the name's
 * words with the configured names (case-folded with a mask), and one search for its end that stops at
 * every control byte (R19). A logged value's first non-blank byte is one short search, its last one word
 * read backwards from the LF. Targets and values are not copied while scanning: the scan records byte
 * ranges, one flat loop copies them into the records and another digests the secrets with SipHash a word at
 * a time, its state in registers. Each record leaves with one bpf_ringbuf_output() of the length it uses.
 *
 * Secrets: the bytes of a hash or auth value are only ever in registers, never stored in a map, so no
 * record and no map can hold them; the scheme of an auth value is copied only when the SP after it is
 * there. A record's method[] is written whole words at a time with zeros after it, and the head of a
 * record is cleared when its request starts. Values are copied a block at a time: what a block copies past
 * its range is overwritten by the record's next range or zeroed before xhdr_values() ends.
 *
 * Shapes forced by the verifier:
 * - It walks every iteration of a bounded loop, and of every loop nested in it. So the scan is a machine
 *   of resumable steps: one step handles the parts of one line (start, name, value or rest) and no part
 *   reads more than XHDR_STEP_WORDS words; a longer part goes on in the next step. The scan program runs
 *   XHDR_STEPS_PER_CALL steps and tail-calls itself, so one program's work is bounded whatever the
 *   limits. The stages: entry (Ethernet to TCP) -> scan -> values (copies) -> hash -> emit. BCC inlines
 *   every function and cannot pass bpf_loop() a callback.
 * - A comparison narrows the range of every register that holds a copy of the compared value, and the
 *   verifier keeps paths apart whose ranges differ. Parser state lives in the scratch map, and offsets
 *   that leave a loop, or enter one, pass through the map (launder()), so the paths out of a loop reach
 *   the code after it in equal states and are pruned instead of multiplying.
 * - Near the end of the view a word is loaded from 8 bytes before the end and shifted (word_at()), so no
 *   loop has a branch for a partial word.
 * - One comparison of a block's end with the frame's end lets the verifier accept the block's eight loads:
 *   it learns the packet's range from the comparison, so the loads inside need no check of their own.
 */
#include <uapi/linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>

#include "xhdr_event.h"
#include "xhdr_cover.h"
#include "xhdr_chunks.h"

/*
 * Byte ranges xhdr_values() copies, per request its target and per slot a value or an auth scheme, and
 * ranges xhdr_hash() digests, per request one per slot. Kept apart, so each stage walks only its own.
 */
#define XHDR_COPIES (XHDR_MAX_REQUESTS * (XHDR_SLOTS + 1))
#define XHDR_DIGESTS (XHDR_MAX_REQUESTS * XHDR_SLOTS)
/* Words one step of the parser looks at, at most (see xhdr_scan()). */
#ifndef XHDR_STEP_WORDS
#define XHDR_STEP_WORDS 8
#endif
/*
 * Steps one packet can need: a step either completes a line, or reads XHDR_STEP_WORDS words of the view
 * in its last part (a long name's first words are read twice), and a request line takes two more.
 */
#define XHDR_STEPS (XHDR_MAX_REQUESTS * (XHDR_MAX_HEADER_LINES + 4) + \
		    2 * (XHDR_MAX_SCAN_BYTES / 8 + 1) / XHDR_STEP_WORDS + 1)
/*
 * Steps per scan invocation: at least 16, and few enough invocations for the largest limits to stay within
 * the 32 tail calls of Linux 5.10 (33 later): the entry program calls the chunk stage or the scan (1), the
 * chunk stage the scan (1), the scan itself up to XHDR_SCAN_CALLS - 1 times, the chunk stage and back once
 * more (2; R20 walks one chunked body per segment after a request), then values, hash and emit (3).
 */
#define XHDR_SCAN_CALLS 25
#ifndef XHDR_STEPS_PER_CALL
#define XHDR_STEPS_PER_CALL ((XHDR_STEPS + XHDR_SCAN_CALLS - 1) / XHDR_SCAN_CALLS > 16 ? \
			     (XHDR_STEPS + XHDR_SCAN_CALLS - 1) / XHDR_SCAN_CALLS : 16)
#endif

/* Words a search or a copy reads after one bounds check when the frame has them all (see search()). */
#define BLOCK_WORDS 8

/* R17, R20: p.body_len of a request whose body is chunked (no Content-Length is this long). */
#define BODY_CHUNKED 0xFFFFFFFFFFFFFFFFULL

/* Words a search over the whole view may step through. */
#define XHDR_VIEW_WORDS (XHDR_MAX_SCAN_BYTES / 8 + 1)

#define ETH_P_8021AD_TAG 0x88A8
#define ETH_P_8021Q_TAG 0x8100
#define IP_FRAGMENT_OFFSET 0x1FFF
/* Covers every frame offset the parser reads: headers at most 255 bytes, then at most 1536 of view. */
#define XHDR_FRAME_MASK 2047

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* "HTTP/1.0" as a little-endian word. */
#define HTTP10 0x302E312F50545448ULL

/*
 * Forgets what the compiler knows about memory, so state is re-read from the scratch map (see the top).
 */
#define forget_memory() asm volatile("" ::: "memory")
/*
 * A frame offset masked in the register that is added to a packet pointer: clang drops a mask it can
 * prove redundant, and older verifiers (5.10) then see an offset without a lower bound.
 */
#define frame_offset(x) ({ __u64 __v = (x); asm volatile("" : "+r"(__v)); __v & XHDR_FRAME_MASK; })

/* What the next step of the parser reads (see xhdr_scan()). */
enum phase {
	PH_METHOD,		/* a request's method */
	PH_TARGET,		/* its target, version and line end */
	PH_LINE,		/* the start of a header line or of the empty line */
	PH_NAME,		/* a field name */
	PH_LONG_NAME,		/* a field name longer than NAME_SEARCH_WORDS words */
	PH_VALUE_START,		/* a logged field value's first byte that is not SP or HT */
	PH_VALUE,		/* its LF */
	PH_VALUE_END,		/* its last byte that is not SP or HT, read backwards from the LF */
	PH_SKIP,		/* the rest of a line that is not logged */
	PH_LINE_CR,		/* R18: a line start after a lone CR that ended the previous segment */
	PH_DONE,
};

#define NOWHERE 0xFFFFFFFFU	/* no frame offset yet */
/* What a part of step() returns instead of the next phase. */
#define STEP_OVER 100		/* the next step goes on (p.phase and p.pos say where) */
#define SCAN_OVER 101		/* stop() was called */
/* Words the cheap search for a name's end reads: a configured name and its colon fit. */
#define NAME_SEARCH_WORDS ((XHDR_NAME_MAX + 1 + 7) / 8)

struct parser {
	__u32 phase;		/* enum phase */
	__u32 pos;		/* frame offset where the next step reads */
	__u32 line;		/* frame offset of the current line (request line: its method) */
	__u32 tstart;		/* frame offset of the target */
	__u32 req;		/* index of the request being read */
	__u32 slot;		/* slot of the value being read */
	__u32 vfirst;		/* the value's first byte that is not SP or HT (its LF when there is none) */
	__u32 vlf;		/* the LF that ends the value, or the view's end */
	__u32 vlf_cr;		/* a CR comes right before that LF */
	__u32 logged;		/* requests to emit, once PH_DONE */
	__u32 copies;		/* ranges recorded for xhdr_values() */
	__u32 digests;		/* ranges recorded for xhdr_hash() */
	__u32 laundry;		/* see launder() */
	__u32 calls;		/* invocations of xhdr_scan() for this packet */
	/* R17: the body of the request being read */
	__u64 body_len;		/* from its Content-Length */
	__u32 lengths;		/* Content-Length lines seen */
	__u32 body_unknown;	/* enum body_unknown bits: where the body ends cannot be known */
	__u32 length_line;	/* the line being read is a Content-Length line */
	__u32 te_line;		/* the line being read is a Transfer-Encoding line (R19) */
	/* R18: a request whose header section goes on in the next segment */
	__u32 segments;		/* segments it was read in before this one */
	__u32 resume;		/* the phase the next segment starts in */
	__u32 seg_start;	/* frame offset where this segment's reading began */
	__u32 prev_cr;		/* the previous segment of the request ended with a CR (R19) */
	__u32 vcont;		/* the value being read goes on from the previous segment */
	__u32 vpend;		/* bytes after that value's last byte that is not SP or HT, at the cut */
	/* R14, R15: what the flow expects once the scan is over */
	__u32 next_mode;	/* enum flow_mode; FLOW_LOST unless the scan ended at a known boundary */
	__u32 next_at;		/* frame offset (from the payload's start) of the next byte to read */
	__u64 next_body;	/* in FLOW_BODY: body bytes after the payload */
	/* R20: a chunked body, walked by xhdr_chunks(); in FLOW_CHUNKED, what the flow keeps of it */
	__u32 walk;		/* enum walk: why xhdr_chunks() runs */
	__u32 walked;		/* a chunked body after a request was walked in this segment */
	__u32 chunk_at;		/* frame offset of the body's next byte */
	__u32 chunk_phase;	/* enum xhdr_chunk_phase */
	__u32 chunk_digits;	/* hex digits of the chunk size read so far */
	__u64 chunk_number;	/* the chunk size read so far, or the data bytes left (XHDR_CH_DATA) */
	/*
	 * R22, R23: a TLS ClientHello, and where the data of the first extension of each type read in this
	 * segment lies (NOWHERE: none)
	 */
	__u32 hello_resumed;	/* it goes on from the flow's last segment */
	__u32 ext_stop;		/* frame offset where its extensions end (or the hello), maybe past the view */
	__u32 ext_read;		/* extensions read, in every segment */
	__u32 ext_paused;	/* R23: the reading stopped at the view's end, at, past or inside an extension's header */
	__u32 head_len;		/* R23: resumed inside an extension's header: the bytes of it the last segment had */
	__u32 head;		/* and those bytes, the first in the lowest byte */
	__u32 tls_found;	/* enum tls_found: the types met, in every segment */
	__u32 sni_at, sni_end;
	__u32 alpn_at, alpn_end;
	__u32 versions_at, versions_end;
};

/* R22: the extension types that give the event a field; only the first of each counts. */
enum tls_found {
	FOUND_SNI = 1,
	FOUND_ALPN = 2,
	FOUND_VERSIONS = 4,
};

/* R17, R20: why the end of a request's body cannot be known (p.body_unknown, flow_state.body_unknown). */
enum body_unknown {
	BODY_BAD_FRAMING = 1,	/* a bad or second Content-Length, both headers, or a second Transfer-Encoding */
	BODY_TE_UNJUDGED = 2,	/* a Transfer-Encoding value not (yet) seen to end in chunked */
};

/* R20: why xhdr_chunks() runs. */
enum walk {
	WALK_NONE,
	WALK_AFTER_REQUEST,	/* the request p.logged - 1 ended at p.chunk_at with a chunked body */
	WALK_SEGMENT_START,	/* the segment starts inside the flow's chunked body */
};

/* Where the payload is, for the stages after the entry program. */
struct packet {
	__u32 view_start;	/* frame offset of the payload */
	__u32 view_end;		/* frame offset after the last byte of the view (R7) */
	__u32 scan_limit;	/* the payload is longer than the view (R7) */
	__u32 payload_end;	/* frame offset after the payload by its IP length (R16), maybe past the frame */
	__u32 seq;		/* sequence number of the payload's first byte */
	__u32 fin;		/* the segment closes its flow once read (R15) */
	__u32 tls;		/* the port carries TLS (R21) */
};

/*
 * A target or value (R9, R13) that xhdr_values() copies into data[] at `dst`, or a value that xhdr_hash()
 * digests into its slot. Frame offsets.
 */
struct value_range {
	__u16 start;
	__u16 end;
	__u16 dst;
	__u8 request;
	__u8 slot;
};

/* A TCP flow (R15): the key of the flows map, so every byte is written for each packet. */
struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 vlan_ids[2];
	__u8 family;
	__u8 vlan_count;
	__u16 zero;		/* a key whose size is a multiple of 4 is hashed a word at a time (jhash2) */
};

/*
 * An event being built, with room for a block copy that ends past its last data byte (see xhdr_values()).
 */
struct record {
	struct xhdr_event ev;
	__u8 slack[8 * BLOCK_WORDS];
};

/* The most requests a packet may hold (max_requests_per_packet): a power of two, so a masked index is in bounds. */
#define JUDGED_REQUESTS 8
_Static_assert(XHDR_MAX_REQUESTS <= JUDGED_REQUESTS, "judge() notes at most JUDGED_REQUESTS requests");

/* R27, R28: where judging the requests of a packet by the rules is (see judge()). */
struct judging {
	__u32 req;		/* the request being judged */
	__u32 rule;		/* the rule being tried */
	__u32 cond;		/* its condition being tested */
	__u32 pos;		/* a contains test: the position it goes on from */
	__u32 withheld;		/* one bit per request whose event is not sent */
	__u32 dropped;		/* a drop rule matched: the segment is dropped */
	__u8 matched[JUDGED_REQUESTS];	/* per request, its rule's place + 1 (0: none matched) */
};

struct xhdr_scratch {
	__u32 unwoken;		/* bytes this CPU wrote to the ring since it last woke the consumer */
	struct packet pk;
	struct parser p;
	struct judging j;
	struct flow flow;
	struct value_range copies[XHDR_COPIES];
	struct value_range digests[XHDR_DIGESTS];
	struct record rec[XHDR_MAX_REQUESTS];
};

/* R15: how a flow's next bytes are read. */
enum flow_mode {
	FLOW_REQUEST,		/* a request starts at `expect` */
	FLOW_BODY,		/* body_left bytes of a body start at `expect` */
	FLOW_HEADERS,		/* a request's header section goes on at `expect` (R18) */
	FLOW_LOST,		/* out of sync: nothing is read until a SYN */
	FLOW_CHUNKED,		/* a chunked body goes on at `expect` (R20) */
	FLOW_ENCRYPTED,		/* a TLS flow past its first bytes: nothing more is read (R21) */
	FLOW_HELLO,		/* a ClientHello goes on at `expect`, its event in `pending` (R23) */
	FLOW_BLOCKED,		/* R29: a drop rule matched one of its requests: every later payload is dropped */
};

/* R25: requests of a flow whose times are kept until their responses come (a power of two). */
#define XHDR_WAITING 4
/* R26: endpoints whose response latencies are counted at once (an LRU map), and the bytes that name one. */
#define XHDR_ENDPOINTS 1024
#define XHDR_ENDPOINT_WORDS 8
/* R26: bucket b counts latencies of 2^(b-1) to 2^b - 1 microseconds (bucket 0: under one), the last also longer. */
#define XHDR_LATENCY_BUCKETS 32

/* What watched_ports says of a destination port (harness/core/program.py writes it). */
enum port_kind {
	PORT_UNWATCHED,
	PORT_HTTP,
	PORT_TLS,		/* R21 */
};

struct flow_state {
	__u64 body_left;	/* FLOW_BODY; FLOW_CHUNKED: the chunk size read so far or the data bytes left */
	__u32 expect;		/* sequence number of the next byte to read */
	__u8 mode;		/* enum flow_mode */
	/* FLOW_HEADERS: the parser state of the request that goes on; its event is in `pending` */
	__u8 resume;		/* enum phase */
	__u8 segments;
	__u8 lengths;
	__u64 body_len;
	__u32 body_unknown;
	__u32 last_cr;		/* the segment ended with a CR (R19) */
	__u8 chunk_phase;	/* FLOW_CHUNKED: enum xhdr_chunk_phase */
	__u8 chunk_digits;	/* FLOW_CHUNKED: hex digits of the chunk size read so far */
	__u8 vslot;		/* FLOW_HEADERS, resume PH_VALUE or PH_VALUE_START: the slot whose value goes on */
	__u16 vpend;		/* FLOW_HEADERS, resume PH_VALUE: see parser.vpend */
	/* FLOW_HELLO (R23): body_left is what the next segment skips before an extension's header */
	__u16 ext_left;		/* the extensions' bytes from that header on */
	__u8 ext_read;
	__u8 tls_found;
	__u8 head_len;		/* the segment ended inside an extension's header: its first 1-3 bytes */
	__u8 head[3];
	/* R24-R26: requests logged since the flow opened, responses seen, the times and endpoints of the last ones */
	__u32 requests;
	__u32 answered;
	__u32 withheld;		/* R28: a bit per waiting request whose event a rule withheld, and its response's */
	__u64 request_ns[XHDR_WAITING];
	__u64 endpoint[XHDR_WAITING];
};

/* R26: an endpoint's name (its path, zero after it) and how many of its responses took how long. */
struct endpoint_latencies {
	__u8 path[8 * XHDR_ENDPOINT_WORDS];
	__u64 count[XHDR_LATENCY_BUCKETS];
};

BPF_ARRAY(watched_ports, __u8, 65536);
BPF_TABLE("lru_hash", struct flow, struct flow_state, flows, XHDR_MAX_FLOWS);
/*
 * R18: the events of requests that go on in their flow's next segment (records never hold secrets). One
 * is only kept between two segments of a header section, so a sixty-fourth of the flows is plenty.
 */
#define XHDR_PENDING (XHDR_MAX_FLOWS / 64 > 16 ? XHDR_MAX_FLOWS / 64 : 16)
BPF_TABLE("lru_hash", struct flow, struct record, pending, XHDR_PENDING);
BPF_ARRAY(names, struct xhdr_names, 1);
BPF_PERCPU_ARRAY(scratch, struct xhdr_scratch, 1);
BPF_PERCPU_ARRAY(counters, struct xhdr_counters, 1);
/* R26: by the hash of the endpoint's path; an endpoint's entry is made when its first request waits. */
BPF_TABLE("lru_hash", __u64, struct endpoint_latencies, latencies, XHDR_ENDPOINTS);
/* R26: where a new endpoint's entry is built, its counts zero. */
BPF_PERCPU_ARRAY(endpoint_scratch, struct endpoint_latencies, 1);
/* R27, R28: the rules, and per rule (by its place in the list) the requests it matched on each CPU */
BPF_ARRAY(rules, struct xhdr_rules, 1);
/* R30: what the values of the headers a rule counts by were, per rule and endpoint (LRU: the busiest stay) */
#define XHDR_AGGREGATES 4096
BPF_TABLE("lru_hash", struct xhdr_aggregate_key, struct xhdr_aggregate, aggregates, XHDR_AGGREGATES);
BPF_PERCPU_ARRAY(aggregate_scratch, struct xhdr_aggregate, 1);
struct rule_hits {
	__u64 count[XHDR_RULES];
};
BPF_PERCPU_ARRAY(rule_hits, struct rule_hits, 1);
BPF_RINGBUF_OUTPUT(events, XHDR_RINGBUF_PAGES);

#ifdef XHDR_COVERAGE
/*
 * Coverage builds only (harness/core/coverage.py): how often each labelled branch ran, per CPU. COVER() looks the
 * map up where it counts, so no stage threads a pointer through and normal builds are not touched at all;
 * the array lookup is inlined by the verifier and the NULL check is one branch that rejoins at once.
 */
struct xhdr_coverage {
	__u64 hits[XHDR_COV_COUNT];
};
BPF_PERCPU_ARRAY(coverage, struct xhdr_coverage, 1);

static __always_inline void cover(__u32 label)
{
	__u32 zero = 0;
	struct xhdr_coverage *c = coverage.lookup(&zero);

	if (c && label < XHDR_COV_COUNT)
		c->hits[label]++;
}
#define COVER(label) cover(XHDR_COV_##label)
#else
#define COVER(label) do { } while (0)
#endif

/* The stage programs, filled in by user space right after loading (harness/core/program.py). */
enum xhdr_stage {
	XHDR_STAGE_SCAN,
	XHDR_STAGE_CHUNKS,
	XHDR_STAGE_VALUES,
	XHDR_STAGE_HASH,
	XHDR_STAGE_EMIT,
	XHDR_STAGE_TLS,
	XHDR_STAGES,
};
BPF_PROG_ARRAY(stages, XHDR_STAGES);

#define EVENT_HEAD_BYTES offsetof(struct xhdr_event, data)

/* The per-packet maps every stage needs; NULL only if a map is missing, which loading rules out. */
struct stage_ctx {
	struct xdp_md *ctx;
	void *data;		/* the frame */
	void *data_end;
	struct xhdr_scratch *sc;
	struct xhdr_names *n;
	struct xhdr_counters *cnt;
};

static __always_inline int stage_maps(struct xdp_md *ctx, struct stage_ctx *m)
{
	__u32 zero = 0;

	m->ctx = ctx;
	m->data = (void *)(long)ctx->data;
	m->data_end = (void *)(long)ctx->data_end;
	m->cnt = counters.lookup(&zero);
	m->sc = scratch.lookup(&zero);
	m->n = names.lookup(&zero);
	return m->cnt && m->sc && m->n;
}

static __always_inline void count(struct xhdr_counters *cnt, enum xhdr_counter which)
{
	cnt->count[which]++;
}

/*
 * Passes x through the scratch map, so the verifier sees an unknown value instead of x's history. The
 * search loops launder their arguments too: a comparison inside a loop narrows the range of every
 * register that holds a copy of the compared value, the caller's included, and each exit from the
 * loop would then carry a different range and be explored on its own.
 */
static __always_inline __u32 launder(struct xhdr_scratch *sc, __u32 x)
{
	sc->p.laundry = x;
	return *(volatile __u32 *)&sc->p.laundry;
}

/* --- Reading the packet ------------------------------------------------------------------------ */

/*
 * The 8 bytes at frame offset a as a little-endian word, those at or past `end` read as zero. Needs
 * a < end, 8 <= end, and end within the frame: near `end` the load moves back to end - 8 and the
 * word is shifted down, so no loop needs a branch for a partial word.
 */
static __always_inline __u64 word_at(struct stage_ctx *m, __u32 a, __u32 end)
{
	__u32 at = a + 8 <= end ? a : end - 8;
	__u8 *p;

	p = m->data + frame_offset(at);
	if ((void *)(p + 8) > m->data_end)
		return 0;
	return *(__u64 *)p >> (((a - at) & 7) * 8);
}

/*
 * Stores w at p, which may be unaligned. clang splits a plain 8-byte store through a byte pointer into eight
 * byte stores with shifts (it cannot know the alignment); BPF itself needs no alignment for map values on
 * the machines the verifier lets run unaligned accesses, so one store instruction does.
 */
static __always_inline void store_word(void *p, __u64 w)
{
	asm volatile("*(u64 *)(%[p] + 0) = %[w]" : : [p] "r"(p), [w] "r"(w) : "memory");
}

/* The byte at frame offset a (0 past the frame's end, which callers rule out). */
static __always_inline __u8 byte_at(struct stage_ctx *m, __u32 a)
{
	__u8 *p = m->data + frame_offset(a);

	if ((void *)(p + 1) > m->data_end)
		return 0;
	return *p;
}

/* The low n bytes of a word (n <= 8). */
static __always_inline __u64 low_bytes(__u32 n)
{
	return n >= 8 ? ~0ULL : (1ULL << (n * 8)) - 1;
}

/* High bit of each byte that is zero; exact for every byte. */
static __always_inline __u64 zero_bytes(__u64 x)
{
	return ~(((x & ~HIGHS) + ~HIGHS) | x) & HIGHS;
}

static __always_inline __u64 bytes_equal(__u64 w, __u8 c)
{
	return zero_bytes(w ^ (ONES * c));
}

/*
 * High bit of the bytes equal to c; only the lowest is sure to be right (a borrow can mark a byte above
 * a match), which is all a search reads, and it costs two operations less than bytes_equal().
 */
static __always_inline __u64 first_equal(__u64 w, __u8 c)
{
	__u64 x = w ^ (ONES * c);

	return (x - ONES) & ~x & HIGHS;
}

/* High bit of each byte below n (n <= 0x80); exact for every byte. */
static __always_inline __u64 bytes_below(__u64 w, __u8 n)
{
	return ~(((w & ~HIGHS) + ONES * (0x80 - n)) | w) & HIGHS;
}

/* Index of the lowest byte whose high bit is set in m (m != 0, only high bits set). */
static __always_inline __u64 lowest_marked(__u64 m)
{
	return (((m & -m) >> 7) * 0x0001020304050607ULL) >> 56;
}

/* One bit per byte: bit j is the high bit of byte j. */
static __always_inline __u32 gather_marks(__u64 m)
{
	return ((m >> 7) * 0x0102040810204080ULL) >> 56;
}

/* Index of the highest byte whose high bit is set in m (m != 0, only high bits set): BPF has no bit scan. */
static __always_inline __u32 highest_marked(struct xhdr_names *n, __u64 m)
{
	return n->highest_bit[gather_marks(m)];
}

static __always_inline __u64 whitespace(__u64 w)
{
	return bytes_equal(w, ' ') | bytes_equal(w, '\t');
}

/*
 * High bit of each byte of y (all below 0x80) that is at least c (c <= 0x80): the sum of two bytes below
 * 0x80 carries into no other byte.
 */
static __always_inline __u64 at_least(__u64 y, __u8 c)
{
	return y + ONES * (0x80 - c);
}

/*
 * High bit of each byte of w that is not a tchar (RFC 9110: "!#$%&'*+-.^_`|~", digits, letters); exact
 * for every byte. Arithmetic on the word instead of a table lookup per byte: this runs on every byte of
 * every field name. The separators between 0x21 and 0x7F are the ranges below; in 0x7B-0x7F the odd
 * bytes ({, }, DEL) are the ones that are not tchar.
 */
static __always_inline __u64 non_tchar(__u64 w)
{
	__u64 y = w & ~HIGHS, separators;

	separators = (at_least(y, 0x22) & ~at_least(y, 0x23)) |	/* " */
		     (at_least(y, 0x28) & ~at_least(y, 0x2A)) |	/* ( ) */
		     (at_least(y, 0x2C) & ~at_least(y, 0x2D)) |	/* , */
		     (at_least(y, 0x2F) & ~at_least(y, 0x30)) |	/* / */
		     (at_least(y, 0x3A) & ~at_least(y, 0x41)) |	/* : ; < = > ? @ */
		     (at_least(y, 0x5B) & ~at_least(y, 0x5E)) |	/* [ \ ] */
		     (at_least(y, 0x7B) & (y << 7));		/* { } DEL */
	return (separators | w | ~at_least(y, 0x21)) & HIGHS;
}

/*
 * High bit of each byte of w that is not a letter, a digit or '-', the bytes nearly every field name is made
 * of; exact for every byte. It costs half of non_tchar(), and a name search that stops at a byte other than
 * the colon goes on with non_tchar() from there (name_part()).
 */
static __always_inline __u64 non_name_common(__u64 w)
{
	__u64 y = w & ~HIGHS, folded = y | (ONES * 0x20);
	__u64 letters = at_least(folded, 'a') & ~at_least(folded, 'z' + 1);
	__u64 digits = at_least(y, '0') & ~at_least(y, '9' + 1);

	return (~(letters | digits | bytes_equal(y, '-')) | w) & HIGHS;
}

/*
 * High bit of each byte of w that is a control byte other than HT: 0x00-0x08, 0x0A-0x1F and 0x7F, the bytes
 * R19's CONTROL_BYTE is about, with the CR and LF that end a line; exact for every byte. With z = y ^ HT,
 * the bytes below 0x20 but HT are those with z in 1..0x1F; y + 1 carries into the high bit only for 0x7F.
 */
static __always_inline __u64 control_bytes(__u64 w)
{
	__u64 y = w & ~HIGHS, z = y ^ (ONES * '\t');

	return (((z + ONES * 0x7F) & ~(z + ONES * 0x60)) | (y + ONES)) & ~w & HIGHS;
}

/*
 * High bit of each byte below 0x20 or equal to 0x7F: control_bytes() with HT among them, in 7 operations
 * instead of 11; exact for every byte. With v = (y + 1) & 0x7F per byte, those are the bytes whose v is at
 * most 0x20 (0x7F wraps to 0) and whose high bit is clear.
 */
static __always_inline __u64 control_or_tab(__u64 w)
{
	__u64 v = ((w & ~HIGHS) + ONES) & ~HIGHS;

	return ~((v + ONES * 0x5F) | w) & HIGHS;
}

/* What a search looks for (see search()). */
enum search_for {
	FIND_LF,		/* R11: the LF that ends a line */
	FIND_CONTROL,		/* R11, R19: a control byte, the CR or LF that ends a line among them */
	FIND_TARGET_END,	/* R9: a byte that cannot be in a target (CTL, SP, DEL) */
	FIND_NON_TCHAR,		/* R9, R12, R13: a byte that is not a tchar, such as the colon after a name */
	FIND_NAME_END,		/* R12: a byte that is not a letter, a digit or '-' (non_name_common()) */
	FIND_SOLID,		/* R13: a byte that is not SP or HT, such as a value's first */
};

/* High bit of each byte of w that the search is for; the lowest marked byte is always right. */
static __always_inline __u64 search_hits(__u64 w, enum search_for what)
{
	switch (what) {
	case FIND_LF:
		return first_equal(w, '\n');
	case FIND_CONTROL:
		return control_or_tab(w);	/* HT too: see confirmed() */
	case FIND_TARGET_END:
		return bytes_below(w, 0x21) | first_equal(w, 0x7F);
	case FIND_NON_TCHAR:
		return non_tchar(w);
	case FIND_NAME_END:
		return non_name_common(w);
	case FIND_SOLID:
		return ~whitespace(w) & HIGHS;
	}
	return 0;
}

/*
 * The marks of search_hits() for word w, made exact: FIND_CONTROL's cheap test also marks HT, which a line
 * rarely holds, so only a word it marks is judged again, exactly. The other searches are exact already.
 */
static __always_inline __u64 confirmed(__u64 w, __u64 hits, enum search_for what)
{
	return what == FIND_CONTROL ? control_bytes(w) : hits;
}

/*
 * The whole word at frame offset a (a + 8 <= end is the caller's check), or 0 when the frame is shorter,
 * which the view's bounds rule out. The search loops read only whole words, so they need neither
 * word_at()'s move back from the end nor its shift.
 */
static __always_inline __u64 whole_word(struct stage_ctx *m, __u64 a)
{
	__u8 *p = m->data + frame_offset(a);

	if ((void *)(p + 8) > m->data_end)
		return 0;
	return *(__u64 *)p;
}

/*
 * The first byte at or after frame offset from that `what` is for, looking at most `words` words. Returns
 * it (before min(from + 8 * words, to)), `to` when the view ended first, or from + 8 * words when the
 * caller goes on from there in its next step (see xhdr_scan()). Whole blocks of BLOCK_WORDS words go first:
 * one comparison with the frame's end lets the verifier accept all their loads, so a word costs a load, the
 * few operations that mark its bytes and a branch. The words after the last whole block are read one by
 * one; a last partial word is read once after them, its bytes past `to` as zero, which every search but
 * FIND_LF marks, so that answer is clamped to `to`. Positions are 64-bit: BPF without alu32 zero-extends
 * every 32-bit result with two shifts. The arguments are laundered: a comparison inside the loop narrows
 * the range of every register holding a copy of the compared value, the caller's included, and each exit
 * from the loop would then carry a different range and be explored on its own.
 */
static __always_inline __u32 search(struct stage_ctx *m, __u32 from, __u32 to, __u32 words, enum search_for what)
{
	__u64 a = launder(m->sc, from), end = launder(m->sc, to), hits, w;
	__u32 k = 0, j;
	__u8 *p;

	for (; k + BLOCK_WORDS <= words; k += BLOCK_WORDS) {
		p = m->data + frame_offset(a);
		if (a + 8 * BLOCK_WORDS > end || (void *)(p + 8 * BLOCK_WORDS) > m->data_end)
			break;
#pragma unroll
		for (j = 0; j < BLOCK_WORDS; j++) {
			w = *(__u64 *)(p + 8 * j);
			hits = search_hits(w, what);
			if (hits && (hits = confirmed(w, hits, what)))
				return a + 8 * j + lowest_marked(hits);
		}
		a += 8 * BLOCK_WORDS;
	}
	for (; k < words; k++) {
		if (a + 8 > end)
			goto partial;
		w = whole_word(m, a);
		hits = search_hits(w, what);
		if (hits && (hits = confirmed(w, hits, what)))
			return a + lowest_marked(hits);
		a += 8;
	}
	return a;
partial:
	if (a >= end)
		return end;
	w = word_at(m, a, end);
	hits = search_hits(w, what);
	if (!hits || !(hits = confirmed(w, hits, what)))
		return end;
	a += lowest_marked(hits);
	return a < end ? a : end;
}

/*
 * R13: one past the last byte in [from, to) that is not SP or HT, reading backwards at most `words` words
 * from `to`; `from` when there is none, or to - 8 * words when the caller goes on from there in its next
 * step. Each load is the 8 bytes that end where the last one began: a value's trailing whitespace is
 * usually none, so this reads one word where tracking it on the way to the LF cost work on every word.
 */
static __always_inline __u32 last_solid(struct stage_ctx *m, __u32 from, __u32 to, __u32 words)
{
	__u64 a = launder(m->sc, to), start = launder(m->sc, from), solid;
	__u32 k;
	__u8 *p;

	for (k = 0; k < words; k++) {
		if (a <= start)
			return start;
		p = m->data + frame_offset(a - 8);	/* the view starts past the headers: a >= 8 */
		if ((void *)(p + 8) > m->data_end)
			return start;
		solid = ~whitespace(*(__u64 *)p) & HIGHS;
		if (a - 8 < start)
			solid &= ~low_bytes(start - (a - 8));	/* bytes before the value are not in it */
		if (solid)
			return a - 8 + highest_marked(m->n, solid) + 1;
		a -= 8;
	}
	return a;
}

/*
 * Records a range to copy (XHDR_MODE_VALUE) or to digest (XHDR_MODE_HASH, XHDR_MODE_AUTH); beyond the arrays
 * (which the limits rule out) it is dropped.
 */
static __always_inline void record_range(struct xhdr_scratch *sc, __u32 start, __u32 end, __u32 dst, __u32 slot,
				      __u8 mode)
{
	struct value_range *rg;
	__u32 r;

	if (mode == XHDR_MODE_VALUE) {
		r = sc->p.copies;
		if (r >= XHDR_COPIES)
			return;
		rg = &sc->copies[r];
		sc->p.copies = r + 1;
	} else {
		r = sc->p.digests;
		if (r >= XHDR_DIGESTS)
			return;
		rg = &sc->digests[r];
		sc->p.digests = r + 1;
	}
	rg->start = start;
	rg->end = end;
	rg->dst = dst;
	rg->request = sc->p.req;
	rg->slot = slot;
}

/* --- Requests: R9-R14 -------------------------------------------------------------------------- */

/* Scanning of the packet is over; `logged` requests are emitted. */
static __always_inline int stop(struct xhdr_scratch *sc, __u32 logged)
{
	sc->p.logged = logged;
	sc->p.phase = PH_DONE;
	return 1;
}

static __always_inline struct record *record_of(struct xhdr_scratch *sc, __u32 req)
{
	__u64 index = req;

	/* Verifiers before 6.8 lose the bound of "previous + 1": check in the register that indexes. */
	asm volatile("" : "+r"(index));
	if (index >= XHDR_MAX_REQUESTS)
		return 0;
	/* and clang would compute the address before the check, from an unchecked copy */
	asm volatile("" : "+r"(index));
	return &sc->rec[index];
}

/* R14: a request begins at frame offset pos; its event starts out empty, method included. */
static __always_inline int start_request(struct xhdr_scratch *sc, __u32 req, __u32 pos)
{
	struct record *rec = record_of(sc, req);

	if (!rec)
		return stop(sc, req);
	__builtin_memset(&rec->ev, 0, EVENT_HEAD_BYTES);
	sc->p.body_len = 0;
	sc->p.lengths = 0;
	sc->p.body_unknown = 0;
	sc->p.segments = 0;
	sc->p.prev_cr = 0;
	sc->p.vcont = 0;
	sc->p.req = req;
	sc->p.pos = pos;
	sc->p.phase = PH_METHOD;
	return 0;
}

/*
 * R11, R14, R17, R20: the empty line ended request req at frame offset end; its body follows, then the next
 * request. Where that starts decides what the flow expects, or the next request is read now.
 */
static __always_inline int request_complete(struct xhdr_scratch *sc, __u32 req, __u32 end)
{
	__u64 next = end + sc->p.body_len;
	__u32 payload_end = sc->pk.payload_end;

	if (sc->p.body_unknown) {
		COVER(BODY_UNKNOWN);
		goto over;	/* the flow is lost: where the body ends is unknown */
	}
	if (sc->p.body_len == BODY_CHUNKED) {
		if (sc->p.walked) {
			COVER(SECOND_CHUNKED_BODY);
			goto over;	/* the flow is lost: one walk per segment (see XHDR_SCAN_CALLS) */
		}
		COVER(CHUNKED_BODY);
		sc->p.walk = WALK_AFTER_REQUEST;
		sc->p.walked = 1;
		sc->p.chunk_at = end;
		sc->p.chunk_phase = XHDR_CH_SIZE_START;
		sc->p.chunk_number = 0;
		sc->p.chunk_digits = 0;
		goto over;	/* xhdr_chunks() walks it and decides what comes next */
	}
	if (next >= payload_end) {
		if (next == payload_end)
			COVER(ENDS_WITH_PAYLOAD);
		else
			COVER(BODY_GOES_ON);
		sc->p.next_mode = next == payload_end ? FLOW_REQUEST : FLOW_BODY;
		sc->p.next_at = payload_end - sc->pk.view_start;
		sc->p.next_body = next - payload_end;
		goto over;
	}
	if (req + 1 >= XHDR_MAX_REQUESTS || next >= sc->pk.view_end || start_request(sc, req + 1, next)) {
		COVER(PIPELINE_LOST);
		goto over;	/* the flow is lost: a request it cannot read now */
	}
	COVER(PIPELINED);
	return STEP_OVER;
over:
	stop(sc, req + 1);
	return SCAN_OVER;
}

/* R9: the method, 1 to 16 tchar then SP, at the start of a request. Returns 1 when the scan is over. */
static __always_inline int method_step(struct stage_ctx *m)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 s = sc->p.pos, end = sc->pk.view_end, limit, q;

	if (s >= end) {
		COVER(NO_METHOD);
		return stop(sc, sc->p.req);
	}
	limit = end < s + XHDR_METHOD_MAX + 1 ? end : s + XHDR_METHOD_MAX + 1;
	q = launder(sc, search(m, s, limit, 3, FIND_NON_TCHAR));
	if (q >= end || q == s || q - s > XHDR_METHOD_MAX || byte_at(m, q) != ' ') {
		COVER(METHOD_BAD);
		return stop(sc, sc->p.req);
	}
	COVER(METHOD);
	sc->p.line = s;
	sc->p.tstart = q + 1;
	sc->p.pos = q + 1;
	sc->p.phase = PH_TARGET;
	return 0;
}

/*
 * R9, R10: the target from the parser's position, then the version and the line end. The event is only
 * written once the request line is known to be logged. Returns 1 when the scan is over.
 */
static __always_inline int target_step(struct stage_ctx *m)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 a = sc->p.pos, end = sc->pk.view_end, req = sc->p.req, s = sc->p.line;
	__u32 q, tstart, tend, tlen, v, avail, after, version = 0, line_end = 0, stored;
	struct record *rec = record_of(sc, req);
	struct xhdr_event *ev;
	__u64 w;
	__u8 c;

	if (!rec)
		return stop(sc, req);
	ev = &rec->ev;
	tend = launder(sc, search(m, a, end, XHDR_STEP_WORDS, FIND_TARGET_END));
	if (tend >= end)
		goto cut;
	if (tend == a + 8 * XHDR_STEP_WORDS) {
		COVER(TARGET_STEP);
		sc->p.pos = tend;	/* no end yet: go on in the next step */
		return 0;
	}
	tstart = sc->p.tstart;
	if (tend == tstart || byte_at(m, tend) != ' ') {
		COVER(TARGET_BAD);
		return stop(sc, req);
	}
	/* Version: exactly HTTP/1.0 or HTTP/1.1, as far as the view shows it. */
	v = tend + 1;
	if (v >= end)
		goto cut;
	avail = end - v;
	w = word_at(m, v, end);
	if ((w ^ HTTP10) & low_bytes(avail < 7 ? avail : 7)) {
		COVER(VERSION_BAD);
		return stop(sc, req);
	}
	if (avail < 8)
		goto cut;
	c = w >> 56;
	if (c == '0') {
		COVER(VERSION_10);
		version = 10;
	} else if (c == '1') {
		COVER(VERSION_11);
		version = 11;
	} else {
		COVER(VERSION_BAD);
		return stop(sc, req);
	}
	after = v + 8;
	if (after >= end)
		goto cut;
	c = byte_at(m, after);
	if (c == '\n') {
		COVER(REQUEST_LINE_LF);
		line_end = after + 1;
		ev->flags |= XHDR_F_BARE_LF;
	} else if (c == '\r') {
		if (after + 1 >= end)
			goto cut;
		if (byte_at(m, after + 1) != '\n') {
			COVER(LINE_END_BAD);
			return stop(sc, req);
		}
		line_end = after + 2;
	} else {
		COVER(LINE_END_BAD);
		return stop(sc, req);
	}
cut:
	/* The method is the tchar run before the SP that starts the target. */
	tstart = launder(sc, sc->p.tstart);
	q = tstart - 1;
	stored = q - s;
	/* The method's words, zero after it: the record's method[] never holds other bytes. */
	*(__u64 *)&ev->method[0] = word_at(m, s, q);
	*(__u64 *)&ev->method[8] = stored > 8 ? word_at(m, s + 8, q) : 0;
	ev->method_len = stored;
	ev->version = version;
	tlen = tend - tstart;
	ev->target_length = tlen;
	stored = tlen;
	if (tlen > XHDR_MAX_TARGET_LEN) {
		COVER(TARGET_TRUNCATED);
		stored = XHDR_MAX_TARGET_LEN;
		ev->flags |= XHDR_F_TARGET_TRUNCATED;
	}
	record_range(sc, tstart, tstart + stored, 0, XHDR_SLOTS, XHDR_MODE_VALUE);
	ev->data_len = stored;
	if (!line_end) {
		COVER(REQUEST_LINE_CUT);
		ev->flags |= XHDR_F_LINE_CUT;	/* R10: no header fields, no HEADERS_CUT */
		return stop(sc, req + 1);
	}
	sc->p.pos = line_end;
	sc->p.phase = PH_LINE;
	return 0;
}

/* Whether the 8 bytes at frame offset a, up to q, are `name` ignoring ASCII case (R12). */
static __always_inline int word_is(struct stage_ctx *m, __u32 a, __u32 q, __u64 name, __u64 fold)
{
	return (word_at(m, a, q) | fold) == name;
}

/* R12: the configured slot whose name is the field name [p, q), or XHDR_SLOTS. */
static __always_inline __u32 match_name(struct stage_ctx *m, __u32 p, __u32 q)
{
	__u32 len = q - p, candidates, s, i;

	/* clang would reuse what body_length_name() learnt of len and drop this bound */
	asm volatile("" : "+r"(len));
	if (len > XHDR_NAME_MAX)
		return XHDR_SLOTS;
	candidates = m->n->len_mask[len];
	if (!candidates)
		return XHDR_SLOTS;	/* most names: no configured name has their length */
#pragma unroll
	for (s = 0; s < XHDR_SLOTS; s++) {
		if (!(candidates & (1 << s)))
			continue;
		/* Same length, so the name's words past the field name are zero: compare only these. */
#pragma unroll
		for (i = 0; i < XHDR_NAME_WORDS; i++) {
			if (p + i * 8 >= q)
				return s;
			if (!word_is(m, p + i * 8, q, m->n->name[s][i], m->n->fold[s][i]))
				break;
		}
		if (i == XHDR_NAME_WORDS)
			return s;
	}
	return XHDR_SLOTS;
}

/* R17: the names that decide a body's length, as match_name() compares them: lower case, with fold masks. */
#define CONTENT_LENGTH_LEN 14
#define CONTENT_LENGTH_0 0x2D746E65746E6F63ULL	/* "content-" */
#define CONTENT_LENGTH_1 0x00006874676E656CULL	/* "length" */
#define CONTENT_LENGTH_FOLD_0 0x0020202020202020ULL
#define CONTENT_LENGTH_FOLD_1 0x0000202020202020ULL
#define TRANSFER_ENCODING_LEN 17
#define TRANSFER_ENCODING_0 0x726566736E617274ULL	/* "transfer" */
#define TRANSFER_ENCODING_1 0x6E69646F636E652DULL	/* "-encodin" */
#define TRANSFER_ENCODING_2 0x0000000000000067ULL	/* "g" */
#define TRANSFER_ENCODING_FOLD_0 0x2020202020202020ULL
#define TRANSFER_ENCODING_FOLD_1 0x2020202020202000ULL
#define TRANSFER_ENCODING_FOLD_2 0x0000000000000020ULL

/*
 * R17: a field name [p, q) that decides the body's length. Transfer-Encoding makes it unknown at once;
 * a Content-Length line is noted, and its value read by finish_value(), as is a Transfer-Encoding value (R19).
 */
static __always_inline void body_length_name(struct stage_ctx *m, struct xhdr_event *ev, __u32 p, __u32 q)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 len = q - p;

	sc->p.length_line = len == CONTENT_LENGTH_LEN &&
			    word_is(m, p, q, CONTENT_LENGTH_0, CONTENT_LENGTH_FOLD_0) &&
			    word_is(m, p + 8, q, CONTENT_LENGTH_1, CONTENT_LENGTH_FOLD_1);
	if (sc->p.length_line && (ev->flags & XHDR_F_TRANSFER_ENCODING)) {
		COVER(CL_AND_TE);
		ev->flags |= XHDR_F_CL_AND_TE;	/* R19 */
		sc->p.body_unknown |= BODY_BAD_FRAMING;
	}
	sc->p.te_line = len == TRANSFER_ENCODING_LEN &&
			 word_is(m, p, q, TRANSFER_ENCODING_0, TRANSFER_ENCODING_FOLD_0) &&
			 word_is(m, p + 8, q, TRANSFER_ENCODING_1, TRANSFER_ENCODING_FOLD_1) &&
			 word_is(m, p + 16, q, TRANSFER_ENCODING_2, TRANSFER_ENCODING_FOLD_2);
	if (sc->p.te_line) {
		COVER(TRANSFER_ENCODING);
		if (ev->flags & XHDR_F_TRANSFER_ENCODING)
			sc->p.body_unknown |= BODY_BAD_FRAMING;	/* R20: a second line */
		ev->flags |= XHDR_F_TRANSFER_ENCODING;
		if (sc->p.lengths) {
			COVER(CL_AND_TE);
			ev->flags |= XHDR_F_CL_AND_TE;	/* R19 */
			sc->p.body_unknown |= BODY_BAD_FRAMING;
		}
		sc->p.body_unknown |= BODY_TE_UNJUDGED;	/* until its whole value ends in chunked */
	}
}

/* High bit of each of the low n bytes of w that is not a decimal digit. */
static __always_inline __u64 non_digits(__u64 w, __u32 n)
{
	return (bytes_below(w, '0') | ~bytes_below(w, '9' + 1)) & HIGHS & low_bytes(n);
}

/* The number that up to 8 decimal digits make, the first digit in the lowest byte (SWAR, no loop). */
static __always_inline __u64 digits_value(__u64 w)
{
	w = (w & 0x0F0F0F0F0F0F0F0FULL) * 2561 >> 8;
	w = (w & 0x00FF00FF00FF00FFULL) * 6553601 >> 16;
	return (w & 0x0000FFFF0000FFFFULL) * 42949672960001ULL >> 32;
}

/*
 * R17: the trimmed Content-Length value [start, end): 1 to 16 decimal digits give the body's length;
 * anything else, or a second Content-Length line, makes it unknown. The digits are shifted so they end
 * at the top of two words, as if zeros led them, and converted without a loop.
 */
static __always_inline void content_length(struct stage_ctx *m, struct xhdr_event *ev, __u32 start, __u32 end)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 len, shift;
	__u64 w0, w1 = 0, bad, high, low;

	start = launder(sc, start);
	end = launder(sc, end);
	len = end - start;
	if (sc->p.lengths++ || len == 0 || len > 16)
		goto bad;	/* a second line, or a value that is empty, too long or cut (end == NOWHERE) */
	w0 = word_at(m, start, end);
	if (len > 8) {
		COVER(CONTENT_LENGTH_LONG);
		w1 = word_at(m, start + 8, end);
	}
	bad = non_digits(w0, len);
	if (len > 8)
		bad |= non_digits(w1, len - 8);
	if (bad)
		goto bad;
	w0 = (w0 - ONES * '0') & low_bytes(len);
	if (len > 8) {
		w1 = (w1 - ONES * '0') & low_bytes(len - 8);
		shift = (16 - len) * 8;
		high = w0 << shift;
		low = shift ? (w1 << shift) | (w0 >> (64 - shift)) : w1;
	} else {
		high = 0;
		low = w0 << ((8 - len) * 8);
	}
	sc->p.body_len = digits_value(high) * 100000000ULL + digits_value(low);
	COVER(CONTENT_LENGTH);
	return;
bad:
	COVER(CONTENT_LENGTH_BAD);
	ev->flags |= XHDR_F_BAD_CONTENT_LENGTH;
	sc->p.body_unknown |= BODY_BAD_FRAMING;
}

#define CHUNKED 0x64656B6E756863ULL		/* "chunked", lower case, in the low 7 bytes */
#define CHUNKED_FOLD 0x20202020202020ULL

/*
 * R19: whether the trimmed Transfer-Encoding value [start, end) ends in the coding "chunked" (any case):
 * its last 7 bytes, after a comma, SP or HT or at its start. One word holds them and the byte before.
 */
static __always_inline int ends_in_chunked(struct stage_ctx *m, __u32 start, __u32 end)
{
	__u32 len = end - start;
	__u64 w;
	__u8 before;

	if (len < 7)
		return 0;
	w = word_at(m, end - (len > 7 ? 8 : 7), end);
	if (len == 7)
		return (w | CHUNKED_FOLD) == CHUNKED;
	before = w;
	return ((w >> 8) | CHUNKED_FOLD) == CHUNKED && (before == ',' || before == ' ' || before == '\t');
}

/* R18: the view ends with the payload, and the request may take one more segment: a cut there goes on. */
static __always_inline int goes_on(struct xhdr_scratch *sc)
{
	return sc->pk.view_end == sc->pk.payload_end && sc->p.segments + 1 < XHDR_MAX_REQUEST_SEGMENTS;
}

/*
 * The view ended before the empty line (R11). When it ended with the payload, the request goes on in the
 * flow's next segment, from `resume` (R18): it is kept, not logged. Otherwise it is logged as cut.
 */
static __always_inline int headers_cut(struct xhdr_scratch *sc, struct xhdr_event *ev, __u32 resume)
{
	if (goes_on(sc)) {
		COVER(HEADERS_KEPT);
		if (resume == PH_LONG_NAME) {
			COVER(NAME_SPLIT);
			ev->flags |= XHDR_F_NAME_SPLIT;
		}
		sc->p.resume = resume;
		sc->p.next_mode = FLOW_HEADERS;
		sc->p.next_at = sc->pk.payload_end - sc->pk.view_start;
		stop(sc, sc->p.req);
		return SCAN_OVER;
	}
	COVER(HEADERS_CUT);
	ev->flags |= XHDR_F_HEADERS_CUT;
	stop(sc, sc->p.req + 1);
	return SCAN_OVER;
}

/* R11: a non-empty line begins; returns SCAN_OVER when the request already has all the lines it may. */
static __always_inline int line_begins(struct xhdr_scratch *sc, struct xhdr_event *ev)
{
	__u32 lines = ev->header_lines;

	if (lines >= XHDR_MAX_HEADER_LINES) {
		COVER(TOO_MANY_HEADERS);
		ev->flags |= XHDR_F_TOO_MANY_HEADERS;
		stop(sc, sc->p.req + 1);
		return SCAN_OVER;
	}
	ev->header_lines = lines + 1;
	return 0;
}

/* R11, R18: a line start after a lone CR that ended the previous segment. */
static __always_inline int cr_part(struct stage_ctx *m, struct xhdr_event *ev)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 p = sc->p.pos;

	if (byte_at(m, p) == '\n') {
		COVER(CR_THEN_LF);
		return request_complete(sc, sc->p.req, p + 1);
	}
	COVER(CR_THEN_OTHER);
	if (line_begins(sc, ev))
		return SCAN_OVER;
	/* a line whose first byte, the CR, is not a tchar; rest_part() finds it was no line's end (R19) */
	ev->flags |= XHDR_F_BAD_LINE;
	return PH_SKIP;
}

/* R11: the start of a header line or of the empty line. Returns the next part (see step()). */
static __always_inline int line_part(struct stage_ctx *m, struct xhdr_event *ev)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 p = sc->p.pos, end = sc->pk.view_end;
	__u64 w;

	if (p >= end)
		return headers_cut(sc, ev, PH_LINE);
	w = word_at(m, p, end);	/* one load for the line's first two bytes */
	if ((w & 0xFF) == '\n') {
		COVER(EMPTY_LINE_LF);
		ev->flags |= XHDR_F_BARE_LF;
		return request_complete(sc, sc->p.req, p + 1);
	}
	if ((w & 0xFF) == '\r') {
		if (p + 1 >= end) {
			COVER(LONE_CR);
			return headers_cut(sc, ev, PH_LINE_CR);	/* a lone CR: unknown, not counted */
		}
		if (((w >> 8) & 0xFF) == '\n') {
			COVER(EMPTY_LINE);
			return request_complete(sc, sc->p.req, p + 2);
		}
	}
	if (line_begins(sc, ev))
		return SCAN_OVER;
	sc->p.line = p;
	return PH_NAME;
}

/* The rest of the line is skipped from frame offset q. */
static __always_inline int skip_from(struct xhdr_scratch *sc, __u32 q)
{
	sc->p.pos = q;
	return PH_SKIP;
}

/*
 * R12: the field name, ended by its first byte that is not a tchar: a colon for a good name; anything
 * else makes the line bad. One search both finds the name and checks it. A name longer than any
 * configured one goes on in PH_LONG_NAME.
 */
static __always_inline int name_part(struct stage_ctx *m, struct xhdr_event *ev)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 line = sc->p.line, end = sc->pk.view_end, q, s;
	__u8 c;

	q = launder(sc, search(m, line, end, NAME_SEARCH_WORDS, FIND_NAME_END));
	if (q < end && q < line + 8 * NAME_SEARCH_WORDS && byte_at(m, q) != ':') {
		/* a rarer tchar such as '_', or the end of a bad name: every byte before q is a tchar */
		COVER(NAME_RARE_BYTE);
		q = launder(sc, search(m, q, end, NAME_SEARCH_WORDS, FIND_NON_TCHAR));
	}
	if (q >= end)
		return headers_cut(sc, ev, PH_LONG_NAME);	/* the view ends inside the name */
	if (q >= line + 8 * NAME_SEARCH_WORDS) {
		COVER(LONG_NAME);
		return PH_LONG_NAME;
	}
	c = byte_at(m, q);
	if (q == line || c != ':') {
		/* obs-fold, empty name, a separator such as '(' in it, no colon, CR or SP before it */
		ev->flags |= XHDR_F_BAD_LINE;
		if (c == ' ' || c == '\t') {
			if (q == line)
				COVER(OBS_FOLD);
			else
				COVER(WS_BEFORE_COLON);
			ev->flags |= q == line ? XHDR_F_OBS_FOLD : XHDR_F_WS_BEFORE_COLON;
		} else {
			COVER(BAD_LINE);
		}
		return skip_from(sc, q);
	}
	body_length_name(m, ev, line, q);
	/* laundered: the slot is a different constant on each path out of match_name() */
	s = launder(sc, match_name(m, line, q));
	if (s < XHDR_SLOTS && (ev->slots[s].flags & XHDR_S_PRESENT)) {
		COVER(NAME_REPEATED);
		ev->slots[s].flags |= XHDR_S_REPEATED;
		s = XHDR_SLOTS;
	} else if (s < XHDR_SLOTS) {
		COVER(NAME_MATCHED);
	}
	if (s >= XHDR_SLOTS && !sc->p.length_line && !sc->p.te_line) {
		COVER(NAME_SKIPPED);
		return skip_from(sc, q);
	}
	sc->p.slot = s;	/* XHDR_SLOTS: a Content-Length or Transfer-Encoding line that fills no slot */
	sc->p.pos = q + 1;
	return PH_VALUE_START;
}

/* R12: a name longer than NAME_SEARCH_WORDS words, checked for tchar from its start. */
static __always_inline int long_name_part(struct stage_ctx *m, struct xhdr_event *ev)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 a = sc->p.phase == PH_LONG_NAME ? sc->p.pos : sc->p.line, end = sc->pk.view_end, q;
	__u8 c;

	q = launder(sc, search(m, a, end, XHDR_STEP_WORDS, FIND_NON_TCHAR));
	if (q >= end)
		return headers_cut(sc, ev, PH_LONG_NAME);
	if (q == a + 8 * XHDR_STEP_WORDS) {
		COVER(LONG_NAME_STEP);
		sc->p.pos = q;
		sc->p.phase = PH_LONG_NAME;
		return STEP_OVER;
	}
	c = byte_at(m, q);
	if (c != ':') {
		COVER(LONG_NAME_BAD);
		ev->flags |= XHDR_F_BAD_LINE;
	}
	if (c == ' ' || c == '\t') {
		COVER(WS_BEFORE_COLON);
		ev->flags |= XHDR_F_WS_BEFORE_COLON;
	}	/* after a run of tchar from the line's start */
	return skip_from(sc, q);	/* too long to be a configured name */
}

/*
 * R13 auth mode: the scheme (1 to 16 tchar, then SP) at the start of the value [start, end), copied to
 * data[] by the values stage like any logged value; nothing of the value past it is ever stored.
 */
static __always_inline void add_scheme(struct stage_ctx *m, struct record *rec, __u32 s, __u32 start,
				       __u32 end)
{
	struct xhdr_event *ev = &rec->ev;
	__u32 limit = end < start + XHDR_SCHEME_MAX + 1 ? end : start + XHDR_SCHEME_MAX + 1;
	__u32 q = launder(m->sc, search(m, start, limit, 3, FIND_NON_TCHAR)), len = q - start, at;

	if (q >= end || len == 0 || len > XHDR_SCHEME_MAX || byte_at(m, q) != ' ') {
		COVER(AUTH_NO_SCHEME);
		return;
	}
	COVER(AUTH_SCHEME);
	at = ev->data_len;
	record_range(m->sc, start, q, at, s, XHDR_MODE_VALUE);
	ev->slots[s].value_off = at;
	ev->slots[s].value_len = len;
	ev->data_len = at + len;
}

/*
 * R13, R18: slot s in value or presence mode gets the bytes [start, stop_at) of its trimmed value, which ends
 * at the LF at frame offset lf (or the view's end). The value may go on from the previous segment (p.vcont:
 * these bytes follow the slot's earlier ones and the p.vpend bytes after them) and into the next one
 * (`more`). Before such a cut its whitespace, and a CR last, are not yet known to be trailing: they are
 * copied after the value and counted in p.vpend, so that more value after them can take them in.
 */
static __always_inline void fill_value(struct stage_ctx *m, struct xhdr_event *ev, __u32 s, __u32 lf,
				       __u32 start, __u32 stop_at, __u8 mode)
{
	struct xhdr_scratch *sc = m->sc;
	struct xhdr_slot *slot = &ev->slots[s & (XHDR_SLOTS - 1)];
	__u32 end = sc->pk.view_end, more = lf >= end && goes_on(sc);
	__u32 len = stop_at - start, pend = end - stop_at, base, have, copy, room;

	if (sc->p.vcont) {
		/* the earlier bytes, then the waiting ones if this part has a byte that is not SP or HT */
		COVER(VALUE_CONTINUED);
		sc->p.vcont = 0;
		base = slot->value_off;
		have = ev->data_len - base;
		if (len || (sc->p.prev_cr && lf != start)) {
			len += slot->length + sc->p.vpend;	/* a CR that did not end the line is such a byte */
		} else {
			len = slot->length;
			pend = sc->p.vpend + end - start;
		}
	} else {
		base = ev->data_len;
		have = 0;
		slot->value_off = base;
	}
	if (more)
		COVER(VALUE_GOES_ON);
	sc->p.vpend = pend;
	slot->length = len;
	slot->flags = lf >= end ? XHDR_S_PRESENT | XHDR_S_CUT : XHDR_S_PRESENT;
	if (mode != XHDR_MODE_VALUE)
		return;
	COVER(VALUE_COPIED);
	slot->value_len = len;
#ifdef XHDR_PLANTED_BUG
	/*
	 * Exists only for the fuzzer's self-test (tests/test_fuzz.py): a deliberate off-by-one that flags a
	 * value of exactly XHDR_MAX_VALUE_LEN bytes as TRUNCATED. No real build defines XHDR_PLANTED_BUG.
	 */
	if (len >= XHDR_MAX_VALUE_LEN) {
#else
	if (len > XHDR_MAX_VALUE_LEN) {
#endif
		COVER(VALUE_TRUNCATED);
		slot->value_len = XHDR_MAX_VALUE_LEN;
		slot->flags |= XHDR_S_TRUNCATED;
	}
	copy = (more ? end : stop_at) - start;
	room = XHDR_MAX_VALUE_LEN - have;
	if (copy > room)
		copy = room;
	record_range(sc, start, start + copy, base + have, s, mode);
	ev->data_len = base + (more ? have + copy : slot->value_len);
}

/*
 * R13: the value of slot p.slot, trimmed to [p.vfirst, stop_at), ends at the LF at frame offset lf (or the
 * view's end). Returns the phase the flow's next segment starts in when the view's end cuts the line
 * (R18): the value goes on, or the rest of the line is skipped.
 */
static __always_inline __u32 finish_value(struct stage_ctx *m, struct record *rec, __u32 lf, __u32 stop_at)
{
	struct xhdr_scratch *sc = m->sc;
	struct xhdr_event *ev = &rec->ev;
	__u32 s = sc->p.slot & (XHDR_SLOTS - 1), end = sc->pk.view_end;
	__u32 start = sc->p.vfirst, len;
	struct xhdr_slot *slot = &ev->slots[s];
	__u8 mode = sc->p.slot < XHDR_SLOTS ? m->n->mode[s] : XHDR_MODE_NONE;

	if (start >= stop_at)
		COVER(VALUE_EMPTY);
	stop_at = stop_at > start ? stop_at : start;
	if (sc->p.length_line)
		content_length(m, ev, start, lf < end ? stop_at : NOWHERE);
	if (sc->p.te_line && lf < end) {
		if (ends_in_chunked(m, start, stop_at)) {
			COVER(TE_CHUNKED);
			sc->p.body_unknown &= ~BODY_TE_UNJUDGED;	/* R20 */
			sc->p.body_len = BODY_CHUNKED;
		} else {
			COVER(TE_NOT_CHUNKED);
			ev->flags |= XHDR_F_TE_NOT_CHUNKED;
		}
	}
	if (sc->p.slot >= XHDR_SLOTS)
		return PH_SKIP;
	if (lf >= end)
		COVER(VALUE_CUT);
	if (mode == XHDR_MODE_VALUE || mode == XHDR_MODE_PRESENCE) {
		fill_value(m, ev, s, lf, start, stop_at, mode);
		/* R18: a value with nothing but whitespace so far starts afresh in the next segment */
		return slot->length || sc->p.vpend ? PH_VALUE : PH_VALUE_START;
	}
	len = stop_at - start;
	slot->length = len;
	slot->flags = lf >= end ? XHDR_S_PRESENT | XHDR_S_CUT : XHDR_S_PRESENT;
	if (mode == XHDR_MODE_HASH || mode == XHDR_MODE_AUTH) {
		COVER(VALUE_HASHED);
		record_range(sc, start, stop_at, 0, s, mode);
		if (mode == XHDR_MODE_AUTH)
			add_scheme(m, rec, s, start, stop_at);
	}
	return PH_SKIP;	/* R18: a secret's rest is not read, so none of it waits in a map */
}

/*
 * R11, R19: the LF that ends the line being read, from frame offset a. The search stops at every control
 * byte; one that is not the line's end (its LF, or a CR right before it) sets CONTROL_BYTE, and the rest of
 * the line is searched for its LF alone, the flag being set. Returns the LF; the view's end when the view
 * ends first, a CR last in it included (its LF may start the next segment, R18); or NOWHERE when the step
 * has read its words, p.pos saying where the next step goes on. *cr says whether a CR comes right before
 * what it returns (the LF, or the view's end): the search saw every byte from a on, and the byte before a is
 * never a CR (a name's end, a value's first byte, a step's end) unless a is where the segment starts
 * (p.prev_cr), so no byte is read twice.
 */
static __always_inline __u32 line_end(struct stage_ctx *m, struct xhdr_event *ev, __u32 a, __u32 *cr)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 end = sc->pk.view_end, c;
	__u64 w;

	*cr = 0;
	c = launder(sc, search(m, a, end, XHDR_STEP_WORDS, FIND_CONTROL));
	if (c >= end)
		return end;
	if (c == a + 8 * XHDR_STEP_WORDS)
		goto more;
	w = word_at(m, c, end);	/* the control byte and the one after it, in one load */
	if ((w & 0xFF) == '\n') {
		*cr = c == sc->p.seg_start && sc->p.prev_cr;
		return c;
	}
	if ((w & 0xFF) == '\r') {
		*cr = 1;
		if (c + 1 >= end)
			return end;
		if (((w >> 8) & 0xFF) == '\n')
			return c + 1;
		*cr = 0;
	}
	COVER(CONTROL_BYTE);
	ev->flags |= XHDR_F_CONTROL_BYTE;
	a = c + 1;
	c = launder(sc, search(m, a, end, XHDR_STEP_WORDS, FIND_LF));
	if (c < end && c == a + 8 * XHDR_STEP_WORDS)
		goto more;
	*cr = byte_at(m, c - 1) == '\r';	/* c - 1: the control byte or after it */
	return c;
more:
	sc->p.pos = c;
	return NOWHERE;
}

/* R13: a logged field value's first byte that is not SP or HT. Returns the next part (see step()). */
static __always_inline int value_start_part(struct stage_ctx *m)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 a = sc->p.pos, end = sc->pk.view_end, first;

	first = launder(sc, search(m, a, end, XHDR_STEP_WORDS, FIND_SOLID));
	sc->p.pos = first;
	if (first == a + 8 * XHDR_STEP_WORDS && first < end) {
		COVER(VALUE_STEP);
		sc->p.phase = PH_VALUE_START;
		return STEP_OVER;
	}
	sc->p.vfirst = first;	/* an LF or CR is not SP or HT: an empty value starts at its line's end */
	return PH_VALUE;
}

/* R13: the value's end once its trailing SP and HT are trimmed; then the line is done. */
static __always_inline int value_end_part(struct stage_ctx *m, struct record *rec)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 a = sc->p.pos, first = sc->p.vfirst, end = sc->pk.view_end, stop_at, lf, resume;

	stop_at = launder(sc, last_solid(m, first, a, XHDR_STEP_WORDS));
	if (stop_at + 8 * XHDR_STEP_WORDS == a && stop_at > first) {
		COVER(VALUE_STEP);
		sc->p.pos = stop_at;
		sc->p.phase = PH_VALUE_END;
		return STEP_OVER;
	}
	lf = sc->p.vlf;
	forget_memory();
	resume = finish_value(m, rec, lf, stop_at);
	if (lf >= end)
		return headers_cut(sc, &rec->ev, resume);
	if (!sc->p.vlf_cr) {
		COVER(VALUE_LF);
		rec->ev.flags |= XHDR_F_BARE_LF;
	}
	sc->p.pos = lf + 1;
	sc->p.phase = PH_LINE;
	return STEP_OVER;
}

/*
 * R12, R13: the rest of a line up to its LF, from a logged value's first byte (PH_VALUE) or past the name of
 * a line that is not logged (PH_SKIP). One part serves both, so the verifier walks line_end() once per step.
 * A value's trailing SP and HT are then read backwards from the LF, a CR right before it not being part of
 * the value. Returns the next part (see step()).
 */
static __always_inline int rest_part(struct stage_ctx *m, struct xhdr_event *ev, int phase)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 a = sc->p.pos, end = sc->pk.view_end, lf, cr;

	if (a == sc->p.seg_start && sc->p.prev_cr && byte_at(m, a) != '\n') {
		COVER(CONTROL_BYTE);
		ev->flags |= XHDR_F_CONTROL_BYTE;	/* R18, R19: the CR that ended the last segment ended no line */
	}
	lf = line_end(m, ev, a, &cr);
	if (lf == NOWHERE) {
		if (phase == PH_VALUE)
			COVER(VALUE_STEP);
		else
			COVER(SKIP_STEP);
		sc->p.phase = phase;
		return STEP_OVER;
	}
	if (phase == PH_VALUE) {
		sc->p.vlf = lf;
		sc->p.vlf_cr = cr;
		sc->p.pos = lf;
		if (cr && lf > sc->p.vfirst) {
			COVER(VALUE_FINAL_CR);
			sc->p.pos = lf - 1;
		}
		return PH_VALUE_END;
	}
	if (lf >= end)
		return headers_cut(sc, ev, PH_SKIP);
	if (!cr) {
		COVER(SKIP_LF);
		ev->flags |= XHDR_F_BARE_LF;	/* an LF first in the segment: the CR was the last of the one before */
	}
	sc->p.pos = lf + 1;
	sc->p.phase = PH_LINE;
	return STEP_OVER;
}

/*
 * One step of the parser: the parts of a header line run one after the other until the line is done or
 * a part has read its XHDR_STEP_WORDS words; the next step goes on where this one stopped. A typical
 * line takes one step. Returns 1 when the scan is over.
 */
static __always_inline int step(struct stage_ctx *m)
{
	struct xhdr_scratch *sc = m->sc;
	struct record *rec = record_of(sc, sc->p.req);
	struct xhdr_event *ev;
	int next = sc->p.phase;

	if (!rec)
		return stop(sc, sc->p.req);
	ev = &rec->ev;
	if (next == PH_METHOD)
		return method_step(m);
	if (next == PH_TARGET)
		return target_step(m);
	if (next == PH_LINE_CR)
		next = cr_part(m, ev);
	if (next == PH_LINE)
		next = line_part(m, ev);
	if (next == PH_NAME)
		next = name_part(m, ev);
	if (next == PH_LONG_NAME)
		next = long_name_part(m, ev);
	if (next == PH_VALUE_START)
		next = value_start_part(m);
	if (next == PH_VALUE || next == PH_SKIP)
		next = rest_part(m, ev, next);
	if (next == PH_VALUE_END)
		next = value_end_part(m, rec);
	return next != STEP_OVER;
}

/* --- Values: copies, and SipHash-2-4 a word at a time with its state in registers ----------------- */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(d)								\
	do {									\
		d.v0 += d.v1; d.v1 = ROTL(d.v1, 13); d.v1 ^= d.v0; d.v0 = ROTL(d.v0, 32); \
		d.v2 += d.v3; d.v3 = ROTL(d.v3, 16); d.v3 ^= d.v2;			\
		d.v0 += d.v3; d.v3 = ROTL(d.v3, 21); d.v3 ^= d.v0;			\
		d.v2 += d.v1; d.v1 = ROTL(d.v1, 17); d.v1 ^= d.v2; d.v2 = ROTL(d.v2, 32); \
	} while (0)

/* SipHash-2-4's state from the extractor's key, one 8-byte word taken in, and the last word and the end. */
#define SIP_START(d, n)								\
	do {									\
		d.v0 = (n)->key[0] ^ 0x736f6d6570736575ULL;			\
		d.v1 = (n)->key[1] ^ 0x646f72616e646f6dULL;			\
		d.v2 = (n)->key[0] ^ 0x6c7967656e657261ULL;			\
		d.v3 = (n)->key[1] ^ 0x7465646279746573ULL;			\
	} while (0)
#define SIP_WORD(d, w)								\
	do {									\
		d.v3 ^= (w);							\
		SIPROUND(d);							\
		SIPROUND(d);							\
		d.v0 ^= (w);							\
	} while (0)
/* `last`: the last 0 to 7 bytes, the length's low byte in the top one. */
#define SIP_END(d, last)							\
	({									\
		SIP_WORD(d, last);						\
		d.v2 ^= 0xFF;							\
		SIPROUND(d);							\
		SIPROUND(d);							\
		SIPROUND(d);							\
		SIPROUND(d);							\
		d.v0 ^ d.v1 ^ d.v2 ^ d.v3;					\
	})

/* The range being worked on; the compiler keeps it in registers. */
struct cursor {
	__u64 v0, v1, v2, v3;	/* SipHash state */
	struct record *rec;
	__u32 a;		/* frame offset of the next word */
	__u32 start, end;
	__u32 dst, slot;
	__u32 request;		/* the record the range belongs to */
};

/* Starts range r of the stage that copies (XHDR_MODE_VALUE) or digests (XHDR_MODE_HASH); 0 when none is left. */
static __always_inline int begin_range(struct stage_ctx *m, __u32 r, struct cursor *d, __u8 kind)
{
	struct value_range *rg;

	if (kind == XHDR_MODE_HASH) {
		if (r >= m->sc->p.digests || r >= XHDR_DIGESTS)
			return 0;
		rg = &m->sc->digests[r];
	} else {
		if (r >= m->sc->p.copies || r >= XHDR_COPIES)
			return 0;
		rg = &m->sc->copies[r];
	}
	d->rec = record_of(m->sc, rg->request);
	if (!d->rec)
		return 0;
	d->slot = rg->slot;
	d->request = rg->request;
	d->dst = rg->dst;
	d->start = rg->start;
	d->end = rg->end;
	d->a = d->start;
	if (kind == XHDR_MODE_HASH)
		SIP_START((*d), m->n);
	return 1;
}

/*
 * R9, R13: copies every logged target and value into its record, straight from the packet. One flat loop
 * steps through the blocks of all ranges (a loop per range inside a loop over ranges would multiply the
 * verifier's work); the ranges are disjoint parts of the view, so the steps are bounded by its words plus
 * the ranges. A block is BLOCK_WORDS words stored whole after one bounds check: the bytes it copies past
 * its range land where the record's next range goes, which overwrites them, or past data_len, which is
 * zeroed at the end, so no byte of the packet outside a logged range stays in the scratch map. Near the
 * frame's end it goes a word at a time, the bytes past the range read as zero. Digests are left to
 * xhdr_hash(), so each loop's body stays small for the verifier.
 */
int xhdr_values(struct xdp_md *ctx)
{
	struct stage_ctx m;
	struct cursor d;
	__u32 step, r, dst, j, last;
	__u8 *p;

	if (!stage_maps(ctx, &m))
		return XDP_PASS;
#ifdef XHDR_PLANTED_SLOWDOWN
	/*
	 * Exists only for the regression gate's self-test (tests/test_bench_gate.py): one extra pass over the
	 * view whose result nobody reads, so `xhdr bench --compare` must report a slowdown. It is here, a stage
	 * every request with a target passes, because the verifier walks the rest of the program after each
	 * exit of the loop, and this stage is small. No real build defines XHDR_PLANTED_SLOWDOWN; the default
	 * build is unchanged.
	 */
	{
		__u32 i, sum = 0, a = m.sc->pk.view_start, end = m.sc->pk.view_end;

		for (i = 0; i < XHDR_MAX_SCAN_BYTES; i++) {
			if (a + i >= end)
				break;
			sum = sum * 31 + m.n->highest_bit[byte_at(&m, a + i)];
			sum ^= m.n->highest_bit[sum & 255];
		}
		asm volatile("" : : "r"(sum));
	}
#endif
	r = launder(m.sc, 0);
	if (!begin_range(&m, r, &d, XHDR_MODE_VALUE))
		goto done;
	for (step = 0; step < XHDR_VIEW_WORDS + XHDR_COPIES; step++) {
		/* laundered: the position differs on every path through the ranges (see launder()) */
		d.a = launder(m.sc, d.a);
		if (d.a < d.end) {
			dst = launder(m.sc, d.dst + d.a - d.start);
			if (dst > sizeof(d.rec->ev.data))
				break;
			p = m.data + frame_offset(d.a);
			if ((void *)(p + 8 * BLOCK_WORDS) <= m.data_end) {
#pragma unroll
				for (j = 0; j < BLOCK_WORDS; j++)
					store_word(&d.rec->ev.data[dst + 8 * j], *(__u64 *)(p + 8 * j));
				d.a += 8 * BLOCK_WORDS;
				continue;
			}
			store_word(&d.rec->ev.data[dst], word_at(&m, d.a, d.end));
			d.a += 8;
			continue;
		}
		r = launder(m.sc, r + 1);
		if (!begin_range(&m, r, &d, XHDR_MODE_VALUE))
			break;
	}
	/*
	 * What the blocks copied past each record's last range. The ranges come in the order of their requests,
	 * so only records 0 to d.request were written; the others are left alone: reading them would bring
	 * lines of the scratch map into the cache that the packet does not otherwise need.
	 */
	last = launder(m.sc, d.request);
#pragma unroll
	for (r = 0; r < XHDR_MAX_REQUESTS; r++) {
		if (r > last)
			continue;	/* not break: clang would make it a loop the verifier cannot bound */
		dst = launder(m.sc, m.sc->rec[r].ev.data_len);
		if (dst > sizeof(d.rec->ev.data))
			continue;
#pragma unroll
		for (j = 0; j < BLOCK_WORDS; j++)
			store_word(&m.sc->rec[r].ev.data[dst + 8 * j], 0);
	}
done:
	if (m.sc->p.digests) {
		COVER(HASH_STAGE);
		stages.call(ctx, XHDR_STAGE_HASH);
	}
	stages.call(ctx, XHDR_STAGE_EMIT);
	return XDP_PASS;
}

/* R13: digests every hash or auth value, straight from the packet, the same way as xhdr_values(). */
int xhdr_hash(struct xdp_md *ctx)
{
	struct stage_ctx m;
	struct cursor d;
	__u32 step, r;
	__u64 w;

	if (!stage_maps(ctx, &m))
		return XDP_PASS;
	r = launder(m.sc, 0);
	if (!begin_range(&m, r, &d, XHDR_MODE_HASH))
		goto done;
	for (step = 0; step < XHDR_VIEW_WORDS + XHDR_DIGESTS; step++) {
		d.a = launder(m.sc, d.a);
		if (d.a + 8 <= d.end) {
			w = word_at(&m, d.a, d.end);
			SIP_WORD(d, w);
			d.a += 8;
			continue;
		} else {
			w = (d.a < d.end ? word_at(&m, d.a, d.end) : 0) | (__u64)(d.end - d.start) << 56;
			d.rec->ev.slots[d.slot & (XHDR_SLOTS - 1)].hash = SIP_END(d, w);
		}
		r = launder(m.sc, r + 1);
		if (!begin_range(&m, r, &d, XHDR_MODE_HASH))
			break;
	}
done:
	stages.call(ctx, XHDR_STAGE_EMIT);
	return XDP_PASS;
}

/* --- Flows: R15, R16 ------------------------------------------------------------------------------ */

/* R15: the flow's state is removed; flows_closed counts states that were there. */
static __always_inline void close_flow(struct stage_ctx *m)
{
	if (flows.delete(&m->sc->flow) == 0) {
		COVER(FLOW_CLOSED);
		count(m->cnt, XHDR_C_FLOWS_CLOSED);
	}
}

/*
 * R15: a SYN (re)opens its flow, a request expected at `expect`. A state that is there already is reset in
 * place: an update allocates a new LRU element, which costs more than the rest of a short request.
 */
static __always_inline struct flow_state *open_flow(struct stage_ctx *m, __u32 expect)
{
	struct flow_state *st = flows.lookup(&m->sc->flow);

	count(m->cnt, XHDR_C_FLOWS_OPENED);
	if (st) {
		COVER(FLOW_REOPENED);
		st->expect = expect;
		st->mode = FLOW_REQUEST;
		st->body_left = 0;
		st->requests = 0;	/* R24: a new connection's requests */
		st->answered = 0;
		return st;
	} else {
		struct flow_state opened = { .expect = expect, .mode = FLOW_REQUEST };

		COVER(FLOW_OPENED);
		flows.update(&m->sc->flow, &opened);
		return flows.lookup(&m->sc->flow);
	}
}

/* R15: a FIN ends the flow once its segment is read. */
static __always_inline void close_if_fin(struct stage_ctx *m)
{
	if (m->sc->pk.fin)
		close_flow(m);
}

/* R15: the flow is out of sync until its next SYN. */
static __always_inline void lose(struct stage_ctx *m, struct flow_state *st)
{
	COVER(FLOW_LOST);
	st->mode = FLOW_LOST;
	count(m->cnt, XHDR_C_FLOWS_LOST);
}

/*
 * R14, R15: once the scan is over, the flow expects what the scan found, or is lost. read_from() already
 * set the state for the usual end, a request right after the payload, so that end needs no second lookup.
 */
static __always_inline void settle_flow(struct stage_ctx *m)
{
	struct xhdr_scratch *sc = m->sc;
	struct flow_state *st;

	if (sc->p.next_mode == FLOW_REQUEST && sc->p.next_at == sc->pk.payload_end - sc->pk.view_start)
		goto closed;
	st = flows.lookup(&sc->flow);
	if (st) {
		if (sc->p.next_mode == FLOW_LOST) {
			lose(m, st);
		} else {
			st->mode = sc->p.next_mode;
			st->expect = sc->pk.seq + sc->p.next_at;
			st->body_left = sc->p.next_body;
			/* R20: where a chunked body that goes on is */
			st->chunk_phase = sc->p.chunk_phase;
			st->chunk_digits = sc->p.chunk_digits;
			/* R18: what the request that goes on needs; its event is kept by xhdr_emit() */
			st->resume = sc->p.resume;
			st->segments = sc->p.segments + 1;
			st->lengths = sc->p.lengths;
			st->body_len = sc->p.body_len;
			st->body_unknown = sc->p.body_unknown;
			st->vslot = sc->p.slot;
			st->vpend = sc->p.vpend;
			if (sc->p.next_mode == FLOW_HEADERS)
				st->last_cr = byte_at(m, sc->pk.payload_end - 1) == '\r';
		}
	}
closed:
	close_if_fin(m);
}

/* A whole record, a word at a time: BPF has no memcpy() to call, and clang would make one of a plain loop. */
static __always_inline void copy_record(struct record *to, struct record *from)
{
	__u64 *dst = (__u64 *)to, *src = (__u64 *)from, w;
	__u32 i;

	for (i = 0; i < sizeof(*to) / 8; i++) {
		w = src[i];
		asm volatile("" : "+r"(w));
		dst[i] = w;
	}
}

/*
 * R18, R23: the event kept for the flow's last segment goes back to record 0, to be read on from frame offset
 * `start`. Returns 0 when it is gone (the pending map is an LRU map).
 */
static __always_inline int take_pending(struct stage_ctx *m, __u32 start)
{
	struct xhdr_scratch *sc = m->sc;
	struct record *kept = pending.lookup(&sc->flow);

	if (!kept) {
		COVER(RESUME_GONE);
		return 0;
	}
	copy_record(&sc->rec[0], kept);
	sc->p.req = 0;
	sc->p.pos = start;
	return 1;
}

/*
 * R18: the request that went on from the flow's last segment is read on from frame offset `start`: its
 * event back in record 0, the parser where the cut left it. Returns 0 when the kept event is gone.
 */
static __always_inline int resume_request(struct stage_ctx *m, struct flow_state *st, __u32 start)
{
	struct xhdr_scratch *sc = m->sc;

	if (!take_pending(m, start))
		return 0;
	COVER(RESUMED);
	sc->p.line = start;
	sc->p.phase = st->resume;
	sc->p.segments = st->segments;
	sc->p.lengths = st->lengths;
	sc->p.body_len = st->body_len;
	sc->p.body_unknown = st->body_unknown;
	sc->p.prev_cr = st->last_cr;
	/* R18: a value that goes on; the line's R17 part was judged when the cut came */
	sc->p.slot = st->vslot;
	sc->p.vpend = st->vpend;
	sc->p.vcont = st->resume == PH_VALUE;
	sc->p.vfirst = start;
	sc->p.length_line = 0;
	sc->p.te_line = 0;
	return 1;
}

/*
 * R23: the ClientHello that went on from the flow's last segment is read on from frame offset `start`, the
 * next extension's header: its event back in record 0. Returns 0 when the kept event is gone.
 */
static __always_inline int resume_hello(struct stage_ctx *m, struct flow_state *st, __u32 start)
{
	struct xhdr_scratch *sc = m->sc;

	if (!take_pending(m, start))
		return 0;
	COVER(TLS_HELLO_RESUMED);
	sc->p.hello_resumed = 1;
	sc->p.head_len = st->head_len;
	sc->p.head = st->head[0] | st->head[1] << 8 | st->head[2] << 16;
	sc->p.ext_stop = start + st->ext_left;
	sc->p.ext_read = st->ext_read;
	sc->p.tls_found = st->tls_found;
	sc->p.segments = st->segments;
	return 1;
}

/*
 * R15, R16: the flow's state `st` decides whether the payload is read and from which frame offset; returns
 * that offset, or 0 when the segment ends here with `outcome` counted.
 */
static __always_inline __u32 read_from(struct stage_ctx *m, struct flow_state *st, __u32 payload_off,
				       __u32 *outcome)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 seq = sc->pk.seq, n = sc->pk.payload_end - payload_off, skip;

	if (!st) {
		COVER(MID_STREAM);
		*outcome = XHDR_C_MID_STREAM;
		return 0;
	}
	if (st->mode == FLOW_LOST) {
		COVER(OUT_OF_SYNC);
		*outcome = XHDR_C_OUT_OF_SYNC;
		return 0;
	}
	if (st->mode == FLOW_ENCRYPTED) {
		COVER(ENCRYPTED);
		*outcome = XHDR_C_ENCRYPTED;
		return 0;
	}
	if (sc->pk.tls ? st->mode != FLOW_REQUEST && st->mode != FLOW_HELLO : st->mode == FLOW_HELLO) {
		COVER(PORT_KIND_CHANGED);
		goto lost;	/* R21: the port moved between ports and tls_ports while the flow was open */
	}
	if ((__s32)(seq + n - st->expect) <= 0) {
		COVER(RETRANSMITTED);
		*outcome = XHDR_C_RETRANSMITTED;
		return 0;
	}
	if ((__s32)(seq - st->expect) > 0) {
		COVER(OUT_OF_ORDER);
		*outcome = XHDR_C_OUT_OF_ORDER;
		return 0;
	}
	skip = st->expect - seq;
	if (skip)
		COVER(OVERLAP);
	if (st->mode == FLOW_CHUNKED) {
		COVER(CHUNKS_AT_START);
		sc->p.walk = WALK_SEGMENT_START;	/* xhdr_chunks() reads on from here */
		sc->p.chunk_at = payload_off + skip;
		sc->p.chunk_phase = st->chunk_phase;
		sc->p.chunk_digits = st->chunk_digits;
		sc->p.chunk_number = st->body_left;
		return payload_off + skip;
	}
	if (st->mode == FLOW_BODY || st->mode == FLOW_HELLO) {
		if (st->body_left >= n - skip) {
			COVER(BODY_SKIPPED);
			st->body_left -= n - skip;
			st->expect = seq + n;
			if (st->mode == FLOW_HELLO) {
				*outcome = XHDR_C_CONTINUED;	/* R23: inside an extension's data */
				return 0;
			}
			if (!st->body_left)
				st->mode = FLOW_REQUEST;
			*outcome = XHDR_C_BODY;
			return 0;
		}
		COVER(BODY_ENDS);
		skip += st->body_left;	/* the state is rewritten below, whatever the scan finds */
	}
	if (payload_off + skip >= sc->pk.view_end) {
		COVER(START_PAST_VIEW);
		goto lost;
	}
	sc->p.seg_start = payload_off + skip;
	if (st->mode == FLOW_HEADERS) {
		if (!resume_request(m, st, payload_off + skip))
			goto lost;
	} else if (st->mode == FLOW_HELLO) {
		if (!resume_hello(m, st, payload_off + skip))
			goto lost;
	} else {
		start_request(sc, 0, payload_off + skip);
	}
	/*
	 * What the flow expects if the payload ends with a request, as it usually does (settle_flow()); a TLS
	 * flow is read once, whatever its first bytes are (R21), unless its ClientHello goes on (hello_goes_on()).
	 */
	st->mode = sc->pk.tls ? FLOW_ENCRYPTED : FLOW_REQUEST;
	st->expect = seq + n;
	st->body_left = 0;
	return payload_off + skip;
lost:
	lose(m, st);
	*outcome = XHDR_C_OUT_OF_SYNC;
	return 0;
}

/* --- Stages ------------------------------------------------------------------------------------ */

/*
 * R8, R14, R15: the requests of the segment are read: the flow expects what the scan found, and the events
 * go on to the values stage (or straight to emit), unless there is none.
 */
static __always_inline void scan_over(struct xdp_md *ctx, struct stage_ctx *m)
{
	settle_flow(m);
	if (m->sc->p.logged == 0 && m->sc->p.next_mode != FLOW_HEADERS) {
		count(m->cnt, XHDR_C_NOT_HTTP);	/* R8 */
		return;
	}
	if (m->sc->p.copies || m->sc->p.digests)
		stages.call(ctx, XHDR_STAGE_VALUES);
	else
		stages.call(ctx, XHDR_STAGE_EMIT);
}

/*
 * R8-R14: runs up to XHDR_STEPS_PER_CALL steps of the parser, then tail-calls itself or moves on. A step
 * handles one part of a line (method, target, line start, name, value, rest of line) and looks at no
 * more than XHDR_STEP_WORDS words; a longer part takes several steps.
 */
int xhdr_scan(struct xdp_md *ctx)
{
	struct stage_ctx m;
	__u32 i;
	int over;

	if (!stage_maps(ctx, &m))
		return XDP_PASS;
	for (i = 0; i < XHDR_STEPS_PER_CALL; i++) {
		forget_memory();
		over = step(&m);
		if (over)
			goto finished;
	}
	if (++m.sc->p.calls < XHDR_SCAN_CALLS) {
		COVER(SCAN_TAIL_CALL);
		stages.call(ctx, XHDR_STAGE_SCAN);
		return XDP_PASS;
	}
	/*
	 * Out of steps, which the step bound rules out: the request being read is dropped and, since no
	 * verdict was reached, the flow is lost rather than left expecting a request (read_from()). Nothing
	 * runs after a tail call that returns: 6.12 rejects reading the spilled map pointers there.
	 */
	COVER(OUT_OF_STEPS);
	stop(m.sc, m.sc->p.req);

finished:
	if (m.sc->p.walk) {
		stages.call(ctx, XHDR_STAGE_CHUNKS);	/* R20: a chunked body, walked before anything else */
		return XDP_PASS;
	}
	scan_over(ctx, &m);
	return XDP_PASS;
}

/* --- Chunked bodies: R20 ------------------------------------------------------------------------ */

/* What a step of the walk came to, besides going on (0). */
enum chunk_walk {
	CHUNKS_END = 1,		/* the body ended right before p.chunk_at */
	CHUNKS_GO_ON,		/* the payload ended inside the body */
	CHUNKS_LOST,		/* a bad byte, a framing byte past the view, or out of steps */
};

/*
 * R20: one step of the walk, the `i`th: a run of chunk data up to the payload's end, or one framing byte,
 * which must be in the view. State lives in p.chunk_*, reloaded every step (see xhdr_chunks()).
 */
static __always_inline int chunk_step(struct stage_ctx *m, __u32 i)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 at = sc->p.chunk_at, end = sc->pk.payload_end, phase = sc->p.chunk_phase;
	__u64 run;
	int next;

	if (at >= end)
		return CHUNKS_GO_ON;
	if (i >= XHDR_CHUNK_STEPS) {
		COVER(CHUNK_STEPS_OVER);
		return CHUNKS_LOST;
	}
	if (phase == XHDR_CH_DATA) {
		COVER(CHUNK_DATA);
		run = end - at;
		if (run >= sc->p.chunk_number) {
			run = sc->p.chunk_number;
			sc->p.chunk_phase = XHDR_CH_DATA_CR;
		}
		sc->p.chunk_number -= run;
		sc->p.chunk_at = at + run;
		return 0;
	}
	if (at >= sc->pk.view_end)
		return CHUNKS_LOST;
	next = xhdr_chunk_byte(phase, byte_at(m, at), &sc->p.chunk_number, &sc->p.chunk_digits);
	sc->p.chunk_at = at + 1;
	if (next < 0)
		return CHUNKS_LOST;
	if (next == XHDR_CH_EXTENSION && phase == XHDR_CH_SIZE)
		COVER(CHUNK_EXTENSION);
	if (next == XHDR_CH_TRAILER && phase == XHDR_CH_TRAILER_START)
		COVER(CHUNK_TRAILER);
	if (next == XHDR_CH_ENDED)
		return CHUNKS_END;
	sc->p.chunk_phase = next;
	return 0;
}

/*
 * R20, R14: a chunked body ended at p.chunk_at, after the request p.logged - 1 of this segment. Returns 1 when
 * the next request is read now (the scan is called), else 0 with p.next_mode saying what the flow expects.
 */
static __always_inline int after_chunks(struct xdp_md *ctx, struct xhdr_scratch *sc)
{
	__u32 at = sc->p.chunk_at;

	if (at == sc->pk.payload_end) {
		COVER(ENDS_WITH_PAYLOAD);
		sc->p.next_mode = FLOW_REQUEST;
		sc->p.next_at = at - sc->pk.view_start;
		return 0;
	}
	if (sc->p.logged >= XHDR_MAX_REQUESTS || at >= sc->pk.view_end || start_request(sc, sc->p.logged, at)) {
		COVER(PIPELINE_LOST);
		return 0;	/* the flow is lost: a request it cannot read now */
	}
	COVER(PIPELINED);
	stages.call(ctx, XHDR_STAGE_SCAN);
	return 1;
}

/*
 * R20, R16: the segment started inside its flow's chunked body. Returns 1 when a request after the body is
 * read (the scan is called), else 0 with the segment's outcome counted and its flow updated.
 */
static __always_inline int chunks_at_start(struct xdp_md *ctx, struct stage_ctx *m, int walked)
{
	struct xhdr_scratch *sc = m->sc;
	struct flow_state *st = flows.lookup(&sc->flow);
	__u32 at = sc->p.chunk_at, outcome = XHDR_C_BODY;

	if (!st) {
		count(m->cnt, XHDR_C_OUT_OF_SYNC);	/* evicted since the entry program looked */
		return 0;
	}
	st->expect = sc->pk.seq + (sc->pk.payload_end - sc->pk.view_start);
	if (walked == CHUNKS_GO_ON) {
		st->body_left = sc->p.chunk_number;
		st->chunk_phase = sc->p.chunk_phase;
		st->chunk_digits = sc->p.chunk_digits;
	} else if (walked == CHUNKS_LOST || (at < sc->pk.payload_end && at >= sc->pk.view_end)) {
		if (walked == CHUNKS_END)
			COVER(START_PAST_VIEW);
		lose(m, st);
		outcome = XHDR_C_OUT_OF_SYNC;
	} else {
		/* R16: what the flow expects if the payload ends with a request, as read_from() sets it */
		st->mode = FLOW_REQUEST;
		st->body_left = 0;
		if (at < sc->pk.payload_end) {
			COVER(BODY_ENDS);
			sc->p.seg_start = at;
			start_request(sc, 0, at);
			stages.call(ctx, XHDR_STAGE_SCAN);
			return 1;
		}
	}
	count(m->cnt, outcome);
	close_if_fin(m);
	return 0;
}

/*
 * R20: walks a chunked body through the segment, at most XHDR_CHUNK_STEPS steps, then reads the request after
 * it (the scan), or settles the flow. One program of its own: the walk is a loop of byte steps, and inlined in
 * the scan's steps it would multiply the verifier's work. The state lives in the scratch map and is reloaded
 * every step behind a compiler barrier, so the verifier sees the same registers at the top of every
 * iteration and prunes the paths of the step before.
 */
int xhdr_chunks(struct xdp_md *ctx)
{
	struct stage_ctx m;
	__u32 i, walk;
	int walked = CHUNKS_LOST;

	if (!stage_maps(ctx, &m))
		return XDP_PASS;
	walk = m.sc->p.walk;
	m.sc->p.walk = WALK_NONE;
	for (i = 0; i <= XHDR_CHUNK_STEPS; i++) {
		forget_memory();
		walked = chunk_step(&m, i);
		if (walked)
			break;
	}
	if (walked == CHUNKS_END)
		COVER(CHUNKS_END);
	else if (walked == CHUNKS_GO_ON)
		COVER(CHUNKS_GO_ON);
	else
		COVER(CHUNKS_BAD);
	if (walk == WALK_SEGMENT_START) {
		chunks_at_start(ctx, &m, walked);
		return XDP_PASS;
	}
	if (walked == CHUNKS_END && after_chunks(ctx, m.sc))
		return XDP_PASS;
	if (walked == CHUNKS_GO_ON) {
		m.sc->p.next_mode = FLOW_CHUNKED;
		m.sc->p.next_at = m.sc->pk.payload_end - m.sc->pk.view_start;
		m.sc->p.next_body = m.sc->p.chunk_number;
	}
	scan_over(ctx, &m);
	return XDP_PASS;
}

/*
 * R26: the endpoint of a logged request: its target's bytes before any '?', at most XHDR_ENDPOINT_WORDS words,
 * written into `path` (zero after them) and hashed a word at a time (FNV-1a's prime over words). The target
 * is read from the record, where xhdr_values() copied it.
 */
static __always_inline __u64 endpoint_of(struct record *rec, __u8 *path)
{
	__u32 len = rec->ev.target_length < XHDR_MAX_TARGET_LEN ? rec->ev.target_length : XHDR_MAX_TARGET_LEN;
	__u64 hash = 0xCBF29CE484222325ULL, w, query;
	__u32 i;

	/* data[] holds at least 8 + 8 * 16 bytes (the smallest limits), so every word read here is inside it. */
#pragma unroll
	for (i = 0; i < XHDR_ENDPOINT_WORDS; i++) {
		w = 0;
		if (8 * i < len) {
			w = *(__u64 *)&rec->ev.data[8 * i] & low_bytes(len - 8 * i);
			query = first_equal(w, '?') & low_bytes(len - 8 * i) & HIGHS;
			if (query) {
				w &= low_bytes(lowest_marked(query));
				len = 8 * i;	/* no word after this one belongs to the path */
			}
		}
		*(__u64 *)&path[8 * i] = w;
		hash = (hash ^ w) * 0x100000001B3ULL;	/* a target has no zero byte: a shorter path differs */
	}
	return hash;
}

/*
 * R24, R26: the `logged` requests of this segment, logged at `now`, wait in their flow's state for their
 * responses (xhdr_responses()), each with its endpoint, whose entry in `latencies` is made if there is none.
 * The state is there unless a FIN closed the flow, whose requests then wait for nothing.
 */
static __always_inline void await_responses(struct stage_ctx *m, __u32 logged, __u64 now)
{
	struct flow_state *st = flows.lookup(&m->sc->flow);
	struct endpoint_latencies *named;
	__u32 r, zero = 0, slot;
	__u64 endpoint;

	named = endpoint_scratch.lookup(&zero);
	if (!st || !named)
		return;
	for (r = 0; r < XHDR_MAX_REQUESTS; r++) {
		struct record *rec = record_of(m->sc, r);	/* bounded where the verifier reads it */

		if (r >= logged || !rec)
			break;
		endpoint = endpoint_of(rec, named->path);
		if (!latencies.lookup(&endpoint))
			latencies.insert(&endpoint, named);	/* another CPU's new entry is not replaced */
		slot = st->requests & (XHDR_WAITING - 1);
		st->request_ns[slot] = now;
		st->endpoint[slot] = endpoint;
		if (m->sc->j.withheld & (1 << r))
			st->withheld |= 1 << slot;
		else
			st->withheld &= ~(1 << slot);
		st->requests++;
	}
}

/* --- Rules: R27-R29 ------------------------------------------------------------------------------ */

/*
 * R27: the conditions and the contains tests in a rule set, and the bytes of a field a contains test looks at
 * (harness/core/rules.py checks them).
 */
#define XHDR_CONDITIONS 16
#define XHDR_CONTAINS 4
#define XHDR_CONTAINS_SPAN 128
/* Positions a step of a contains test tries. */
#define CONTAINS_STEP 16
/*
 * Steps judging one packet can take (judge()): per request, one per condition tested (a failed one ends its
 * rule), the further steps of the contains tests, and the one that records its rule or finds none.
 */
#define XHDR_JUDGE_STEPS (XHDR_MAX_REQUESTS * (XHDR_CONDITIONS + \
			  XHDR_CONTAINS * (XHDR_CONTAINS_SPAN / CONTAINS_STEP - 1) + 1))

/* A condition's field in a record: its offset from the event's start, the bytes held, its length before any limit. */
struct field_bytes {
	__u32 at;
	__u32 held;
	__u32 whole;
};

/* R27: where the field a condition names is in the event; 0 when the request has none (an absent header). */
static __always_inline int field_of(struct stage_ctx *m, struct xhdr_event *ev, __u32 field, struct field_bytes *f)
{
	struct xhdr_slot *slot;

	if (field == XHDR_FIELD_METHOD) {
		f->at = offsetof(struct xhdr_event, method);
		f->held = ev->method_len;
		f->whole = ev->method_len;
		return 1;
	}
	f->at = offsetof(struct xhdr_event, data);
	if (field == XHDR_FIELD_TARGET) {
		f->whole = ev->target_length;
		f->held = ev->target_length < XHDR_MAX_TARGET_LEN ? ev->target_length : XHDR_MAX_TARGET_LEN;
		return 1;
	}
	if (field >= XHDR_SLOTS || m->n->mode[field & (XHDR_SLOTS - 1)] != XHDR_MODE_VALUE)
		return 0;
	slot = &ev->slots[field & (XHDR_SLOTS - 1)];
	if (!(slot->flags & XHDR_S_PRESENT))
		return 0;
	f->at += slot->value_off;
	f->held = slot->value_len;
	f->whole = slot->length;
	return 1;
}

/*
 * The record's bytes from offset `at` on, for a comparison that reads 32 bytes: NULL past the event, which
 * the fields rule out; the record's slack holds what a read past the event's end takes in.
 */
static __always_inline __u8 *record_bytes(struct record *rec, __u32 at)
{
	__u64 offset = at;

	asm volatile("" : "+r"(offset));	/* checked in the register that indexes, as in record_of() */
	if (offset > sizeof(struct xhdr_event))
		return 0;
	asm volatile("" : "+r"(offset));
	return (__u8 *)rec + offset;
}

/* Whether the pattern's bytes (masked words, at most XHDR_PATTERN_WORDS) are the first at p. */
static __always_inline int pattern_at(__u8 *p, struct xhdr_condition *c, __u32 words)
{
	__u64 differ = 0;
	__u32 i;

#pragma unroll
	for (i = 0; i < XHDR_PATTERN_WORDS; i++)
		if (i < words)
			differ |= (*(__u64 *)(p + 8 * i) ^ c->pattern[i]) & c->mask[i];
	return !differ;
}

/*
 * R27: a contains test's step: whether its pattern (two words at most) starts at one of the next
 * CONTAINS_STEP positions from p, of which `left` are positions it may start at.
 */
static __always_inline int contains_step(__u8 *p, struct xhdr_condition *c, __u32 left)
{
	__u32 k;

#pragma unroll
	for (k = 0; k < CONTAINS_STEP; k++)
		if (k < left && pattern_at(p + k, c, 2))
			return 1;
	return 0;
}

/* R27: the rule's name goes last in data[], which has room for it whatever the request holds. */
static __always_inline void name_the_rule(struct xhdr_event *ev, struct xhdr_rule *rule)
{
	__u32 at = ev->data_len, i;

	if (at > XHDR_MAX_TARGET_LEN + XHDR_SLOTS * XHDR_MAX_VALUE_LEN)
		return;	/* which the limits on what data[] holds rule out */
#pragma unroll
	for (i = 0; i < XHDR_RULE_NAME_MAX / 8; i++)
		store_word(&ev->data[at + 8 * i], rule->name[i]);
	ev->rule_off = at;
	ev->rule_len = rule->name_len;
	ev->data_len = at + rule->name_len;
}

/* R28: request r matched rule k: counted, and its action decides whether its event goes out. */
static __always_inline void matched(struct judging *j, struct xhdr_event *ev, struct xhdr_rule *rule, __u32 k,
				    __u32 r)
{
	__u32 every = rule->every, zero = 0;
	struct rule_hits *hits = rule_hits.lookup(&zero);
	__u64 before = 0;

	if (hits)
		before = hits->count[k & (XHDR_RULES - 1)]++;
	name_the_rule(ev, rule);
	ev->action = rule->action;
	if (rule->action == XHDR_ACTION_COUNT ||
	    (rule->action == XHDR_ACTION_SAMPLE && every && before % every)) {
		COVER(RULE_WITHHOLDS);
		j->withheld |= 1 << (r & 31);
	} else if (rule->action == XHDR_ACTION_DROP) {
		COVER(RULE_DROPS);
		j->dropped = 1;
	} else {
		COVER(RULE_LOGS);
	}
}

/* R30: SipHash-2-4 of the `len` bytes of a record at offset `at` (a logged value), with the extractor's key. */
static __always_inline __u64 logged_siphash(struct xhdr_names *n, struct record *rec, __u32 at, __u32 len)
{
	struct cursor d;
	__u64 offset = at, w;
	__u32 i;
	__u8 *p;

	/* checked in the register that indexes (as in record_of()): every word read below is in the record */
	asm volatile("" : "+r"(offset));
	if (offset > sizeof(struct record) - XHDR_MAX_VALUE_LEN - 8 || len > XHDR_MAX_VALUE_LEN)
		return 0;
	asm volatile("" : "+r"(offset));
	p = (__u8 *)rec + offset;
	SIP_START(d, n);
	for (i = 0; i < XHDR_MAX_VALUE_LEN / 8; i++) {
		if (8 * i + 8 > len)
			break;
		w = *(__u64 *)(p + 8 * i);
		SIP_WORD(d, w);
	}
	w = (*(__u64 *)(p + (len & ~7U)) & low_bytes(len & 7)) | (__u64)len << 56;
	return SIP_END(d, w);
}

/*
 * R30: a rule that counts by headers counts the request it matched once per such header, in the `aggregates`
 * entry of (rule, endpoint, header, value), made if there is none. The entry is built in a per-CPU map: the
 * endpoint's path and the value's first bytes, for display.
 */
static __always_inline void count_values(struct stage_ctx *m, struct record *rec, struct xhdr_rule *rule)
{
	struct xhdr_aggregate_key key = {};
	struct xhdr_aggregate *entry, *counted;
	struct xhdr_slot *slot;
	__u32 zero = 0, b, s, i, len;
	__u64 shown;
	__u8 *p;

	entry = aggregate_scratch.lookup(&zero);
	if (!entry || !rule->count_by[0])
		return;
	COVER(RULE_COUNTS_VALUES);
	key.rule = rule->key;
	key.endpoint = endpoint_of(rec, entry->path);
#pragma unroll
	for (b = 0; b < XHDR_COUNT_BY; b++) {
		s = rule->count_by[b];
		if (!s || s > XHDR_SLOTS)
			continue;
		s = (s - 1) & (XHDR_SLOTS - 1);
		slot = &rec->ev.slots[s];
		entry->present = (slot->flags & XHDR_S_PRESENT) && m->n->mode[s] == XHDR_MODE_VALUE;
		len = entry->present ? slot->value_len : 0;
		key.slot = s;
		key.value = entry->present ? logged_siphash(m->n, rec, offsetof(struct xhdr_event, data) + slot->value_off, len) : 0;
		entry->count = 1;
		entry->length = entry->present ? slot->length : 0;
#pragma unroll
		for (i = 0; i < XHDR_SHOWN_VALUE / 8; i++) {
			p = record_bytes(rec, offsetof(struct xhdr_event, data) + slot->value_off + 8 * i);
			shown = 8 * i < len && p ? *(__u64 *)p & low_bytes(len - 8 * i) : 0;
			*(__u64 *)&entry->shown[8 * i] = shown;
		}
		counted = aggregates.lookup(&key);
		if (counted) {
			__sync_fetch_and_add(&counted->count, 1);
		} else if (aggregates.insert(&key, entry)) {
			counted = aggregates.lookup(&key);	/* another CPU made it meanwhile */
			if (counted)
				__sync_fetch_and_add(&counted->count, 1);
		}
	}
}

/* The next request is judged from its first rule. */
static __always_inline void next_request(struct judging *j, __u32 r)
{
	j->req = r + 1;
	j->rule = 0;
	j->cond = 0;
	j->pos = 0;
}

/*
 * R27, R28: each of the `logged` requests is matched against the rules in order, the first whose conditions
 * all hold being its rule. One flat loop of steps, its place kept in sc->j and laundered (see launder()):
 * a step tests one condition, or CONTAINS_STEP positions of a contains test, or records a request's rule, so
 * the verifier walks a bounded number of small steps instead of nested loops. It walks every step on
 * every path that reaches the loop's head with a state of its own: the actions are taken after the loop, and
 * each branch in a step ends in a short tail. Paths that branch and join again inside a step cost more than
 * they look: a branch-free test that clang sees through (x != 0) becomes branches, 2^8 paths for 8 positions.
 */
static __always_inline void judge(struct stage_ctx *m, struct xhdr_rules *set, __u32 logged)
{
	struct judging *j = &m->sc->j;
	__u32 step, r, k, c, pos, span, positions;
	struct xhdr_condition *cond;
	struct xhdr_rule *rule;
	struct field_bytes f;
	struct record *rec;
	__u8 *p;

	__builtin_memset(j->matched, 0, sizeof(j->matched));	/* withheld and dropped: xhdr_emit() cleared them */
	next_request(j, -1);
	for (step = 0; step < XHDR_JUDGE_STEPS; step++) {
		forget_memory();
		r = launder(m->sc, j->req);
		rec = record_of(m->sc, r);
		if (r >= logged || !rec)
			break;
		k = launder(m->sc, j->rule);
		if (k >= set->count || k >= XHDR_RULES) {
			next_request(j, r);	/* no rule matched */
			continue;
		}
		rule = &set->rule[k & (XHDR_RULES - 1)];
		c = launder(m->sc, j->cond);
		if (c >= rule->conditions || c >= XHDR_RULE_CONDITIONS) {
			j->matched[r & (JUDGED_REQUESTS - 1)] = k + 1;	/* acted on after the loop */
			next_request(j, r);
			continue;
		}
		cond = &rule->cond[c & (XHDR_RULE_CONDITIONS - 1)];
		if (!field_of(m, &rec->ev, cond->field, &f) || f.held < cond->len)
			goto fails;
		if (cond->match == XHDR_MATCH_CONTAINS) {
			span = f.held < XHDR_CONTAINS_SPAN ? f.held : XHDR_CONTAINS_SPAN;
			if (span < cond->len)
				goto fails;
			positions = span - cond->len + 1;
			pos = launder(m->sc, j->pos);
			p = record_bytes(rec, f.at + pos);
			if (!p || pos >= positions)
				goto fails;
			if (contains_step(p, cond, positions - pos))
				goto holds;
			if (pos + CONTAINS_STEP >= positions)
				goto fails;	/* no position left: this step ends the test (XHDR_JUDGE_STEPS counts on it) */
			COVER(RULE_CONTAINS_STEP);
			j->pos = pos + CONTAINS_STEP;
			continue;
		}
		if (cond->match == XHDR_MATCH_EXACT && f.whole != cond->len)
			goto fails;
		p = record_bytes(rec, f.at);
		if (p && pattern_at(p, cond, XHDR_PATTERN_WORDS))
			goto holds;
fails:
		j->rule = k + 1;	/* the next rule, from its first condition */
		j->cond = 0;
		j->pos = 0;
		continue;
holds:
		j->cond = c + 1;
		j->pos = 0;
	}
	/* R28: the actions, out of the loop, so that the verifier walks them once, not on every step. */
#pragma unroll
	for (r = 0; r < XHDR_MAX_REQUESTS; r++) {
		__u64 place = j->matched[r];

		if (r >= logged || !place)
			continue;
		place -= 1;
		/* checked in the register that indexes, as in record_of() */
		asm volatile("" : "+r"(place));
		if (place >= XHDR_RULES)
			continue;
		asm volatile("" : "+r"(place));
		matched(j, &m->sc->rec[r].ev, &set->rule[place], place, r);
		count_values(m, &m->sc->rec[r], &set->rule[place]);
	}
}

/* R29: the flow is blocked: its state says so from now on, made anew if a FIN in the segment removed it. */
static __always_inline void block_flow(struct stage_ctx *m)
{
	struct flow_state blocked = { .mode = FLOW_BLOCKED };

	flows.update(&m->sc->flow, &blocked);
	count(m->cnt, XHDR_C_DROPPED);
}

/*
 * R8: one ring-buffer record per request found, with the flow's addresses; with rules (R27-R29), those
 * the rules let out, and the segment dropped when a drop rule matched.
 */
int xhdr_emit(struct xdp_md *ctx)
{
	struct stage_ctx m;
	struct xhdr_rules *set;
	struct flow *flow;
	__u32 r, logged, size, unwoken, zero = 0;
	__u64 wakeup, now;

	if (!stage_maps(ctx, &m))
		return XDP_PASS;
	flow = &m.sc->flow;
	logged = m.sc->p.logged;
	m.sc->j.withheld = 0;
	m.sc->j.dropped = 0;
	set = rules.lookup(&zero);
	if (set && set->count && logged && !m.sc->pk.tls)
		judge(&m, set, logged);
	/* All requests are counted before any event, so readers waiting for events == requests see no gap. */
	if (m.sc->pk.tls && logged)
		count(m.cnt, XHDR_C_TLS_HELLO);	/* R21 */
	else if (logged)
		m.cnt->count[XHDR_C_HTTP_REQUEST] += logged;
	else
		count(m.cnt, XHDR_C_CONTINUED);	/* R18: only a request that goes on */
	now = bpf_ktime_get_ns();
	for (r = 0; r < XHDR_MAX_REQUESTS; r++) {
		struct xhdr_event *ev = &m.sc->rec[r].ev;

		if (r >= logged)
			break;
		if (m.sc->j.withheld & (1 << r)) {
			count(m.cnt, XHDR_C_EVENTS_WITHHELD);	/* R28 */
			continue;
		}
		if (m.sc->j.dropped)
			ev->flags |= XHDR_F_DROPPED;
		ev->timestamp_ns = now;
		ev->ifindex = ctx->ingress_ifindex;
		ev->family = flow->family;
		__builtin_memcpy(ev->saddr, flow->saddr, sizeof(ev->saddr));
		__builtin_memcpy(ev->daddr, flow->daddr, sizeof(ev->daddr));
		ev->sport = flow->sport;
		ev->dport = flow->dport;
		ev->vlan_ids[0] = flow->vlan_ids[0];
		ev->vlan_ids[1] = flow->vlan_ids[1];
		ev->vlan_count = flow->vlan_count;
		ev->request_index = r;
		if (m.sc->pk.scan_limit)
			ev->flags |= XHDR_F_SCAN_LIMIT;
		size = ev->data_len;
		if (size > sizeof(ev->data))
			size = sizeof(ev->data);
		/*
		 * Waking the consumer for every event costs more than the whole extraction, and a consumer
		 * sharing its CPUs with the server finds its caches cold at every wakeup: the bigger its batch,
		 * the less it costs per event. A CPU wakes it once it has written names.wake_bytes, records and
		 * their headers; readers also wait with a short timeout, which reads what stays below.
		 */
		unwoken = m.sc->unwoken + BPF_RINGBUF_HDR_SZ + XHDR_EVENT_FIXED_BYTES + size;
		wakeup = BPF_RB_NO_WAKEUP;
		if (unwoken >= m.n->wake_bytes) {
			wakeup = BPF_RB_FORCE_WAKEUP;
			unwoken = 0;
		}
		m.sc->unwoken = unwoken;
		if (events.ringbuf_output(ev, XHDR_EVENT_FIXED_BYTES + size, wakeup) == 0) {
			count(m.cnt, XHDR_C_EVENTS);
		} else {
			COVER(EVENT_LOST);
			count(m.cnt, XHDR_C_EVENTS_LOST);
		}
	}
	if (m.sc->j.dropped) {
		COVER(SEGMENT_DROPPED);
		block_flow(&m);	/* R28, R29: nothing of the segment reaches the service, nor of the flow's next ones */
		return XDP_DROP;
	}
	if (m.n->responses && logged && !m.sc->pk.tls)
		await_responses(&m, logged, now);
	/* R18, R23: a request or ClientHello that goes on in the flow's next segment keeps its event until then. */
	if ((m.sc->p.next_mode == FLOW_HEADERS || m.sc->p.next_mode == FLOW_HELLO) && !m.sc->pk.fin) {
		struct record *rec = record_of(m.sc, logged);

		if (rec) {
			COVER(KEPT_FOR_NEXT);
			pending.update(flow, rec);
		}
	}
	return XDP_PASS;
}

/* --- TLS: R21-R23 -------------------------------------------------------------------------------- */

#define TLS_HANDSHAKE 22
#define TLS_CLIENT_HELLO 1
#define TLS_RANDOM_BYTES 32
#define TLS_SESSION_ID_MAX 32
#define TLS_MAX_EXTENSIONS 32
#define TLS_MAX_VERSIONS 8
#define TLS_EXT_SERVER_NAME 0
#define TLS_EXT_ALPN 16
#define TLS_EXT_SUPPORTED_VERSIONS 43
#define TLS_HOST_NAME 0
/*
 * A TLS event's SNI and ALPN bytes are appended to data[] in the order the extensions come, which a hello
 * over several segments may not know in advance; these slots say where each is (value_off, value_len).
 */
#define TLS_SLOT_SNI 0
#define TLS_SLOT_ALPN 1

/* The big-endian 2-byte integer at frame offset a; a + 2 within the view is the caller's check. */
static __always_inline __u32 be16_at(struct stage_ctx *m, __u32 a)
{
	return (__u32)byte_at(m, a) << 8 | byte_at(m, a + 1);
}

/*
 * R22: the record and handshake headers and the ClientHello's fixed fields, from frame offset a. Returns
 * the offset after its compression methods, or NOWHERE when the bytes are not a ClientHello. Each field is
 * checked against the hello's end and the view's end before it is read. p.ext_stop is the hello's end
 * until the extensions' length says more; tls_version is the legacy_version until supported_versions does.
 */
static __always_inline __u32 hello_fields(struct stage_ctx *m, struct xhdr_event *ev, __u32 a)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 end = sc->pk.view_end, hello_len, hello, limit, p, n;

	if (a + 9 > end)
		return NOWHERE;
	if (byte_at(m, a) != TLS_HANDSHAKE || byte_at(m, a + 1) != 3 || byte_at(m, a + 2) > 4 ||
	    byte_at(m, a + 5) != TLS_CLIENT_HELLO)
		return NOWHERE;
	hello_len = (__u32)byte_at(m, a + 6) << 16 | be16_at(m, a + 7);
	if (hello_len + 4 > be16_at(m, a + 3))
		return NOWHERE;	/* a hello spread over several records is not read */
	hello = a + 9;
	sc->p.ext_stop = hello + hello_len;
	limit = hello + hello_len < end ? hello + hello_len : end;
	p = hello + 2 + TLS_RANDOM_BYTES;
	if (p + 1 > limit)
		return NOWHERE;
	n = byte_at(m, p);	/* session id */
	if (n > TLS_SESSION_ID_MAX)
		return NOWHERE;
	p += 1 + n;
	if (p + 2 > limit)
		return NOWHERE;
	n = be16_at(m, p);	/* cipher suites */
	if (n < 2 || (n & 1))
		return NOWHERE;
	p += 2 + n;
	if (p + 1 > limit)
		return NOWHERE;
	n = byte_at(m, p);	/* compression methods */
	if (n < 1)
		return NOWHERE;
	p += 1 + n;
	if (p > limit)
		return NOWHERE;
	ev->tls_version = be16_at(m, hello);
	return p;
}

static __always_inline void bad_extensions(struct xhdr_event *ev)
{
	COVER(TLS_BAD_EXTENSIONS);
	ev->flags |= XHDR_T_BAD_EXTENSIONS;
}

/*
 * R22: the extensions' length at frame offset ext, right after the fixed fields. Returns 1 with p.pos at
 * the first extension's header and p.ext_stop where the extensions end (the smaller of their length's end
 * and the hello's), or 0 when none is read: no extensions, one byte where their length goes, or that
 * length past the view (p.ext_stop then stays the hello's end, which makes HELLO_CUT).
 */
static __always_inline int extensions_start(struct stage_ctx *m, struct xhdr_event *ev, __u32 ext)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 hello_end = sc->p.ext_stop, ext_end;

	if (ext >= hello_end)
		return 0;
	if (ext + 2 > hello_end) {
		bad_extensions(ev);
		return 0;
	}
	if (ext + 2 > sc->pk.view_end)
		return 0;
	ext_end = ext + 2 + be16_at(m, ext);
	if (ext_end < hello_end)
		sc->p.ext_stop = ext_end;
	sc->p.pos = ext + 2;
	return 1;
}

/*
 * R22: the extension of `type` whose data is [data, next) was read; the first of each wanted type is noted,
 * and the reading goes on after it.
 */
static __always_inline void note_extension(struct xhdr_scratch *sc, __u32 type, __u32 data, __u32 next)
{
	__u32 found = sc->p.tls_found;

	sc->p.ext_read++;
	if (type == TLS_EXT_SERVER_NAME && !(found & FOUND_SNI)) {
		sc->p.tls_found = found | FOUND_SNI;
		sc->p.sni_at = data;
		sc->p.sni_end = next;
	} else if (type == TLS_EXT_ALPN && !(found & FOUND_ALPN)) {
		sc->p.tls_found = found | FOUND_ALPN;
		sc->p.alpn_at = data;
		sc->p.alpn_end = next;
	} else if (type == TLS_EXT_SUPPORTED_VERSIONS && !(found & FOUND_VERSIONS)) {
		sc->p.tls_found = found | FOUND_VERSIONS;
		sc->p.versions_at = data;
		sc->p.versions_end = next;
	}
	sc->p.pos = next;
}

/*
 * R22, R23: reads extensions from frame offset p.pos up to p.ext_stop and the view's end, noting where the
 * data of the first server_name, ALPN and supported_versions extension lies (p.tls_found and p.ext_read
 * count every segment of the hello). Its state lives in the scratch map, reloaded each iteration: the
 * verifier then sees every iteration start alike, whichever extensions came before. One iteration more
 * than TLS_MAX_EXTENSIONS, so the one after the last extension allowed is judged like any other.
 */
static __always_inline void read_extensions(struct stage_ctx *m, struct xhdr_event *ev)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 i, e, stop, end, data, next;

	for (i = 0; i <= TLS_MAX_EXTENSIONS; i++) {
		forget_memory();
		e = launder(sc, sc->p.pos);
		stop = sc->p.ext_stop;
		end = sc->pk.view_end;
		if (e >= stop)
			return;
		if (sc->p.ext_read >= TLS_MAX_EXTENSIONS) {
			if (e < end) {
				COVER(TLS_TOO_MANY_EXTENSIONS);
				ev->flags |= XHDR_T_TOO_MANY_EXTENSIONS;
			}
			return;
		}
		if (e + 4 > stop)
			goto bad;
		if (e + 4 > end) {
			sc->p.ext_paused = 1;	/* at the view's end, or inside a header: R23 */
			return;
		}
		data = e + 4;
		next = data + be16_at(m, e + 2);
		if (next > stop)
			goto bad;
		note_extension(sc, be16_at(m, e), data, next);
	}
	return;
bad:
	bad_extensions(ev);
}

/*
 * R23: the extension header the last segment ended inside (p.head_len of its bytes kept), finished with this
 * segment's first bytes; returns whether the extensions are read on after it. A segment too short to finish
 * it ends the reading, as a view that ends does (R22).
 */
static __always_inline int finish_header(struct stage_ctx *m, struct xhdr_event *ev)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 e = sc->p.pos, kept = sc->p.head_len, data, next, i;
	__u64 header = 0;

	if (kept == 0 || kept > 3)
		return 1;
	data = e + 4 - kept;
	if (data > sc->pk.view_end)
		return 0;
	COVER(TLS_HEADER_FINISHED);
	/* the header's four bytes in the order they came, the first in the highest byte */
#pragma unroll
	for (i = 0; i < 4; i++)
		header = header << 8 | (i < kept ? (sc->p.head >> (8 * i)) & 0xFF : byte_at(m, e + i - kept));
	next = data + (header & 0xFFFF);
	if (next > sc->p.ext_stop) {
		bad_extensions(ev);
		return 0;
	}
	note_extension(sc, header >> 16, data, next);
	return 1;
}

/* R22: bytes [from, from + len) of the frame go after the event's data so far, where slot s says. */
static __always_inline void keep_bytes(struct xhdr_scratch *sc, struct xhdr_event *ev, __u32 s, __u32 from,
				       __u32 len)
{
	__u32 at = ev->data_len;

	ev->slots[s].value_off = at;
	ev->slots[s].value_len = len;
	if (len)
		record_range(sc, from, from + len, at, XHDR_SLOTS, XHDR_MODE_VALUE);
	ev->data_len = at + len;
}

/* R22: the server name, from the first entry of the server_name extension, for the values stage to copy. */
static __always_inline void hello_sni(struct stage_ctx *m, struct xhdr_event *ev)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 d = launder(sc, sc->p.sni_at), end = sc->pk.view_end, list_end, name, len, stored;

	if (d == NOWHERE || d + 5 > end)
		return;
	list_end = d + 2 + be16_at(m, d);
	if (list_end > sc->p.sni_end || d + 5 > list_end || byte_at(m, d + 2) != TLS_HOST_NAME)
		return;
	len = be16_at(m, d + 3);
	name = d + 5;
	if (name + len > list_end || name + len > end)
		return;
	COVER(TLS_SNI);
	stored = len;
	if (len > XHDR_MAX_TARGET_LEN) {
		COVER(TLS_SNI_TRUNCATED);
		stored = XHDR_MAX_TARGET_LEN;
		ev->flags |= XHDR_T_SNI_TRUNCATED;
	}
	ev->target_length = len;
	keep_bytes(sc, ev, TLS_SLOT_SNI, name, stored);
}

/* R22: the ALPN list, kept raw; user space reads the names from it. */
static __always_inline void hello_alpn(struct stage_ctx *m, struct xhdr_event *ev)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 d = launder(sc, sc->p.alpn_at), end = sc->pk.view_end, len, stored;

	if (d == NOWHERE || d + 2 > end)
		return;
	len = be16_at(m, d);
	if (d + 2 + len > sc->p.alpn_end || d + 2 + len > end)
		return;
	COVER(TLS_ALPN);
	stored = len;
	if (len > XHDR_MAX_VALUE_LEN) {
		COVER(TLS_ALPN_TRUNCATED);
		stored = XHDR_MAX_VALUE_LEN;
		ev->flags |= XHDR_T_ALPN_TRUNCATED;
	}
	ev->alpn_length = len;
	keep_bytes(sc, ev, TLS_SLOT_ALPN, d + 2, stored);
}

/* R22: the highest version supported_versions offers that is not GREASE, when there is one. */
static __always_inline void hello_version(struct stage_ctx *m, struct xhdr_event *ev)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 d = launder(sc, sc->p.versions_at), end = sc->pk.view_end, n, k, v, best = 0;

	if (d == NOWHERE || d + 1 > end)
		return;
	n = byte_at(m, d);
	if ((n & 1) || d + 1 + n > sc->p.versions_end || d + 1 + n > end)
		return;
	COVER(TLS_VERSIONS);
#pragma unroll
	for (k = 0; k < TLS_MAX_VERSIONS; k++) {
		if (2 * k + 2 > n)
			break;
		v = be16_at(m, d + 1 + 2 * k);
		if ((v & 0x0F0F) == 0x0A0A && (v >> 8) == (v & 0xFF)) {	/* RFC 8701's 0x0A0A, 0x1A1A, ... */
			COVER(TLS_GREASE);
			continue;
		}
		if (v > best)
			best = v;
	}
	if (best)
		ev->tls_version = best;
}

/*
 * R23: whether the hello goes on in the flow's next segment: the reading stopped at the view's end, right
 * before an extension's header, inside one or inside an extension's data, and the view is the whole payload.
 * The flow then keeps where the next header is (or the first bytes of the one the view ends in);
 * xhdr_emit() keeps the event.
 */
static __always_inline int hello_goes_on(struct stage_ctx *m, struct xhdr_event *ev)
{
	struct xhdr_scratch *sc = m->sc;
	__u32 next = sc->p.pos, end = sc->pk.view_end;
	struct flow_state *st;

	if (!sc->p.ext_paused || !goes_on(sc))
		return 0;
	st = flows.lookup(&sc->flow);
	if (!st)
		return 0;
	COVER(TLS_HELLO_GOES_ON);
	if ((sc->p.sni_at != NOWHERE && sc->p.sni_end > end) ||
	    (sc->p.alpn_at != NOWHERE && sc->p.alpn_end > end) ||
	    (sc->p.versions_at != NOWHERE && sc->p.versions_end > end)) {
		COVER(TLS_SPLIT_EXTENSION);
		ev->flags |= XHDR_T_SPLIT_EXTENSION;
	}
	st->mode = FLOW_HELLO;
	if (next < end) {
		/* inside a header: its first bytes wait in the flow for the rest (finish_header()) */
		COVER(TLS_HEADER_SPLIT);
		st->head_len = end - next;
		st->head[0] = byte_at(m, next);
		st->head[1] = next + 1 < end ? byte_at(m, next + 1) : 0;
		st->head[2] = next + 2 < end ? byte_at(m, next + 2) : 0;
		next = end;
	} else {
		st->head_len = 0;
	}
	st->body_left = next - sc->pk.payload_end;
	st->ext_left = sc->p.ext_stop - next;
	st->ext_read = sc->p.ext_read;
	st->tls_found = sc->p.tls_found;
	st->segments = sc->p.segments + 1;
	sc->p.next_mode = FLOW_HELLO;
	return 1;
}

/*
 * R21-R23: the first bytes of a TLS flow, from p.pos: a ClientHello makes one event of kind TLS, whose SNI
 * and ALPN list the values stage copies; anything else is counted as not TLS. read_from() has already put
 * the flow in FLOW_ENCRYPTED mode, which stays unless the hello goes on. A hello that goes on from the
 * last segment (p.hello_resumed) is read on from its next extension.
 */
int xhdr_tls(struct xdp_md *ctx)
{
	struct xhdr_event *ev;
	struct stage_ctx m;
	__u32 ext;

	if (!stage_maps(ctx, &m))
		return XDP_PASS;
	ev = &m.sc->rec[0].ev;
	m.sc->p.sni_at = NOWHERE;
	m.sc->p.alpn_at = NOWHERE;
	m.sc->p.versions_at = NOWHERE;
	m.sc->p.ext_paused = 0;
	if (m.sc->p.hello_resumed) {
		if (finish_header(&m, ev))
			read_extensions(&m, ev);
	} else {
		ext = launder(m.sc, hello_fields(&m, ev, m.sc->p.pos));
		if (ext == NOWHERE) {
			COVER(NOT_TLS);
			count(m.cnt, XHDR_C_NOT_TLS);
			close_if_fin(&m);
			return XDP_PASS;
		}
		COVER(TLS_HELLO);
		ev->kind = XHDR_KIND_TLS;
		m.sc->p.ext_read = 0;
		m.sc->p.tls_found = 0;
		if (extensions_start(&m, ev, ext))
			read_extensions(&m, ev);
	}
	hello_sni(&m, ev);
	hello_alpn(&m, ev);
	hello_version(&m, ev);
	if (hello_goes_on(&m, ev)) {
		m.sc->p.logged = 0;
	} else {
		if (m.sc->p.ext_stop > m.sc->pk.view_end) {
			COVER(TLS_HELLO_CUT);
			ev->flags |= XHDR_T_HELLO_CUT;
		}
		m.sc->p.logged = 1;
	}
	close_if_fin(&m);
	if (m.sc->p.copies)
		stages.call(ctx, XHDR_STAGE_VALUES);
	else
		stages.call(ctx, XHDR_STAGE_EMIT);
	return XDP_PASS;
}

/* The frame's length when it is below `below`, found by comparing packet pointers (no helper on 5.10). */
static __always_inline __u32 frame_length(struct xdp_md *ctx, struct xhdr_scratch *sc, __u32 below)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = 0, step, next;

#pragma unroll
	for (step = 1024; step; step >>= 1) {
		next = launder(sc, len + step);
		if (next < below && data + frame_offset(next) <= data_end)
			len = next;
	}
	return len;
}

/* Where read_layers() found the TCP header and the payload; frame offsets. */
struct layers {
	__u32 l4_off;
	__u32 payload_off;
	__u32 ip_end;		/* after the payload by its IP length, maybe past the frame */
};

/*
 * R1-R6: Ethernet, up to two VLAN tags, IPv4 or IPv6, and a whole TCP header. Fills the flow's addresses and
 * VLAN tags (not its ports), swapped when `reply` says the frame goes from the flow's server to its client
 * (R24). Returns XHDR_C_TCP_WATCHED when there is a TCP header to read, else the counter that ends the frame.
 */
static __always_inline __u32 read_layers(void *data, void *data_end, struct flow *flow, struct layers *l,
					 int reply)
{
	struct ethhdr *eth = data;
	struct tcphdr *tcp;
	__u32 ip_end, l4_off, payload_off, i;
	__u32 l3_off = sizeof(struct ethhdr);
	__u8 *client, *server;
	__u16 proto;

	/* R1, R2 */
	if ((void *)(eth + 1) > data_end)
		return XHDR_C_MALFORMED;
	proto = eth->h_proto;
	flow->vlan_count = 0;
	flow->zero = 0;
	flow->vlan_ids[0] = 0;
	flow->vlan_ids[1] = 0;
#pragma unroll
	for (i = 0; i < 2; i++) {
		__u16 *tag = data + l3_off;

		if (proto != bpf_htons(ETH_P_8021Q_TAG) && proto != bpf_htons(ETH_P_8021AD_TAG))
			break;
		if ((void *)(tag + 2) > data_end)
			return XHDR_C_MALFORMED;
		COVER(VLAN);
		flow->vlan_ids[i] = bpf_ntohs(tag[0]) & 0x0FFF;
		flow->vlan_count = i + 1;
		proto = tag[1];
		l3_off += 4;
	}
	if (proto == bpf_htons(ETH_P_8021Q_TAG) || proto == bpf_htons(ETH_P_8021AD_TAG))
		return XHDR_C_VLAN_TOO_DEEP;
	client = reply ? flow->daddr : flow->saddr;
	server = reply ? flow->saddr : flow->daddr;

	/* R3, R4, R5 */
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + l3_off;
		__u32 ihl_bytes, tot_len;

		if ((void *)(ip + 1) > data_end)
			return XHDR_C_MALFORMED;
		ihl_bytes = ip->ihl * 4;
		tot_len = bpf_ntohs(ip->tot_len);
		if (ip->version != 4 || ihl_bytes < sizeof(*ip) || tot_len < ihl_bytes)
			return XHDR_C_MALFORMED;
		if (data + l3_off + ihl_bytes > data_end)
			return XHDR_C_MALFORMED;
		if (bpf_ntohs(ip->frag_off) & IP_FRAGMENT_OFFSET)
			return XHDR_C_LATER_FRAGMENT;
		if (ip->protocol != IPPROTO_TCP)
			return XHDR_C_NOT_TCP;
		flow->family = 4;
		__builtin_memset(flow->saddr, 0, sizeof(flow->saddr));
		__builtin_memset(flow->daddr, 0, sizeof(flow->daddr));
		__builtin_memcpy(client, &ip->saddr, 4);
		__builtin_memcpy(server, &ip->daddr, 4);
		ip_end = l3_off + tot_len;
		l4_off = l3_off + ihl_bytes;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l3_off;
		__u8 next;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return XHDR_C_MALFORMED;
		COVER(IPV6);
		next = ip6->nexthdr;
		if (next == 0 || next == 43 || next == 44 || next == 50 || next == 51 || next == 60 ||
		    next == 135 || next == 139 || next == 140)
			return XHDR_C_IPV6_EXT_HEADER;
		if (next != IPPROTO_TCP)
			return XHDR_C_NOT_TCP;
		flow->family = 6;
		__builtin_memcpy(client, &ip6->saddr, 16);
		__builtin_memcpy(server, &ip6->daddr, 16);
		ip_end = l3_off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		l4_off = l3_off + sizeof(*ip6);
	} else {
		return XHDR_C_NOT_IP;
	}

	/* R6: the TCP header must fit before the IP end and before the frame's end. */
	tcp = data + l4_off;
	if ((void *)(tcp + 1) > data_end || l4_off + sizeof(*tcp) > ip_end)
		return XHDR_C_MALFORMED;
	payload_off = l4_off + tcp->doff * 4;
	if (tcp->doff < 5 || payload_off > ip_end || data + payload_off > data_end)
		return XHDR_C_MALFORMED;
	l->l4_off = l4_off;
	l->payload_off = payload_off;
	l->ip_end = ip_end;
	return XHDR_C_TCP_WATCHED;
}

/* R1-R6: Ethernet, VLAN, IP and TCP; hands a watched, non-empty payload to the scan stage. */
int xhdr_extract(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct flow_state *st = 0;
	struct stage_ctx m;
	struct layers l;
	struct flow *flow;
	struct tcphdr *tcp;
	__u32 ip_end, payload_off, port, view_end, outcome;
	__u8 *watched;

	if (!stage_maps(ctx, &m))
		return XDP_PASS;
	flow = &m.sc->flow;
	count(m.cnt, XHDR_C_PACKETS);
	outcome = read_layers(data, data_end, flow, &l, 0);
	if (outcome != XHDR_C_TCP_WATCHED) {
		count(m.cnt, outcome);
		return XDP_PASS;
	}
	tcp = data + frame_offset(l.l4_off);
	if ((void *)(tcp + 1) > data_end)
		return XDP_PASS;	/* read_layers() ruled it out; the verifier needs it said here */
	payload_off = l.payload_off;
	ip_end = l.ip_end;
	port = bpf_ntohs(tcp->dest);
	watched = watched_ports.lookup(&port);
	if (!watched || *watched == PORT_UNWATCHED) {
		count(m.cnt, XHDR_C_PORT_NOT_WATCHED);
		return XDP_PASS;
	}
	count(m.cnt, XHDR_C_TCP_WATCHED);
	flow->sport = bpf_ntohs(tcp->source);
	flow->dport = port;
	/* R15: the segment's flags act on its flow first. */
	m.sc->pk.seq = bpf_ntohl(tcp->seq);
	m.sc->pk.fin = tcp->fin && !tcp->rst;
	m.sc->pk.tls = *watched == PORT_TLS;
	if (tcp->rst) {
		close_flow(&m);
	} else if (tcp->syn) {
		st = open_flow(&m, m.sc->pk.seq + 1);	/* kept: the payload, if any, needs it */
		m.sc->pk.seq += 1;
	}
	/* R7: the view, within the IP length and within the frame (it may be shorter than its IP length). */
	view_end = ip_end < payload_off + XHDR_MAX_SCAN_BYTES ? ip_end : payload_off + XHDR_MAX_SCAN_BYTES;
	if (data + frame_offset(view_end) > data_end)
		view_end = frame_length(ctx, m.sc, view_end);
	if (view_end <= payload_off) {
		outcome = XHDR_C_NO_PAYLOAD;
		goto segment_done;
	}
	m.sc->pk.view_start = payload_off;
	m.sc->pk.view_end = view_end;
	m.sc->pk.payload_end = ip_end;
	m.sc->pk.scan_limit = ip_end > payload_off + XHDR_MAX_SCAN_BYTES &&
			      data + frame_offset(payload_off + XHDR_MAX_SCAN_BYTES + 1) <= data_end;
	if (m.sc->pk.scan_limit)
		COVER(SCAN_LIMIT);
	m.sc->p.copies = 0;
	m.sc->p.digests = 0;
	m.sc->p.hello_resumed = 0;
	m.sc->p.calls = 0;
	m.sc->p.walk = WALK_NONE;
	m.sc->p.walked = 0;
	m.sc->p.next_mode = FLOW_LOST;
	if (!st)
		st = flows.lookup(flow);	/* after the payload check: bare ACKs need no lookup */
	COVER(TCP_PAYLOAD);
	if (st && st->mode == FLOW_BLOCKED) {
		COVER(BLOCKED);
		count(m.cnt, XHDR_C_BLOCKED);
		return XDP_DROP;	/* R29, whatever the segment holds, a FIN included */
	}
	if (!read_from(&m, st, payload_off, &outcome))
		goto segment_done;
	if (m.sc->p.walk) {
		stages.call(ctx, XHDR_STAGE_CHUNKS);	/* R20: the segment starts in a chunked body */
		return XDP_PASS;
	}
	stages.call(ctx, m.sc->pk.tls ? XHDR_STAGE_TLS : XHDR_STAGE_SCAN);
	return XDP_PASS;

segment_done:
	count(m.cnt, outcome);
	if (m.sc->pk.fin) {
		if (!st)
			st = flows.lookup(flow);
		if (st && st->mode == FLOW_BLOCKED) {
			COVER(BLOCKED_FIN);
			return XDP_PASS;	/* R29: a FIN leaves a blocked flow blocked */
		}
	}
	close_if_fin(&m);
	return XDP_PASS;
}

/* --- Responses: R24, R25 --------------------------------------------------------------------------- */

/* The bytes of a status line that say what R25 needs: "HTTP/1.1 200 " (or a CR last). */
#define STATUS_LINE_BYTES 13

/*
 * R25: the status code of the status line `line` starts with ("HTTP/1.0" or "HTTP/1.1", SP, three digits,
 * then SP or CR), with its version; 0 when it is no status line.
 */
static __always_inline __u32 status_code(__u8 *line, __u8 *version)
{
	__u64 w = *(__u64 *)line;
	__u32 status = 0, i;
	__u8 c = w >> 56;

	if ((w ^ HTTP10) & 0x00FFFFFFFFFFFFFFULL || (c != '0' && c != '1') || line[8] != ' ')
		return 0;
#pragma unroll
	for (i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9')
			return 0;
		status = status * 10 + line[i] - '0';
	}
	if (line[12] != ' ' && line[12] != '\r')
		return 0;
	*version = c == '0' ? 10 : 11;
	return status;
}

/* R26: the bucket of a latency of `us` microseconds: the number of bits it takes, at most the last bucket. */
static __always_inline __u32 latency_bucket(__u64 us)
{
	__u32 bits = 0, shift;

#pragma unroll
	for (shift = 32; shift; shift >>= 1) {
		if (us >> shift) {
			bits += shift;
			us >>= shift;
		}
	}
	bits += us;	/* us is 0 or 1 here */
	bits = bits < XHDR_LATENCY_BUCKETS ? bits : XHDR_LATENCY_BUCKETS - 1;
	/* Verifiers before 6.12 lose the bound of the select above: a mask in the register that indexes. */
	asm volatile("" : "+r"(bits));
	return bits & (XHDR_LATENCY_BUCKETS - 1);
}

/* A response event is built here: struct xhdr_event's head, a record with no data. */
BPF_PERCPU_ARRAY(response_head, struct xhdr_event, 1);

/*
 * R24, R25: a frame leaving the interface (TC egress). A segment from a watched HTTP port whose payload starts
 * with a final status line answers the oldest request of its flow that has no answer yet: one response event
 * with the status and the request's time. The frame always goes on.
 */
int xhdr_responses(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct endpoint_latencies *counted;
	struct xhdr_counters *cnt;
	struct xhdr_event *ev;
	struct flow_state *st;
	struct flow flow;
	struct layers l;
	struct tcphdr *tcp;
	__u64 line[2] = {}, endpoint;	/* line: words, so the status line is read as one */
	__u8 version = 0, *watched;
	__u32 zero = 0, port, status, n, bucket;

	if (read_layers(data, data_end, &flow, &l, 1) != XHDR_C_TCP_WATCHED)
		return TC_ACT_OK;
	tcp = data + frame_offset(l.l4_off);
	if ((void *)(tcp + 1) > data_end)
		return TC_ACT_OK;
	port = bpf_ntohs(tcp->source);
	watched = watched_ports.lookup(&port);
	if (!watched || *watched != PORT_HTTP)
		return TC_ACT_OK;
	flow.sport = bpf_ntohs(tcp->dest);
	flow.dport = port;
	/* The payload may lie in pages after the linear part (TSO): copied, not read in place. */
	if (l.payload_off + STATUS_LINE_BYTES > l.ip_end ||
	    bpf_skb_load_bytes(skb, l.payload_off, line, STATUS_LINE_BYTES))
		return TC_ACT_OK;
	status = status_code((__u8 *)line, &version);
	if (!status || (status < 200 && status != 101))
		return TC_ACT_OK;	/* no status line, or an interim response: the request waits on */
	cnt = counters.lookup(&zero);
	ev = response_head.lookup(&zero);
	if (!cnt || !ev)
		return TC_ACT_OK;
	st = flows.lookup(&flow);
	if (!st || st->answered == st->requests) {
		count(cnt, XHDR_C_RESPONSES_UNMATCHED);	/* no request waits: not seen, or its flow is gone */
		return TC_ACT_OK;
	}
	n = st->answered++;
	if (st->requests - n > XHDR_WAITING) {
		count(cnt, XHDR_C_RESPONSES_UNMATCHED);	/* its request's time was overwritten by later ones */
		return TC_ACT_OK;
	}
	__builtin_memset(ev, 0, EVENT_HEAD_BYTES);
	ev->kind = XHDR_KIND_RESPONSE;
	ev->timestamp_ns = bpf_ktime_get_ns();
	ev->request_ns = st->request_ns[n & (XHDR_WAITING - 1)];
	endpoint = st->endpoint[n & (XHDR_WAITING - 1)];
	counted = latencies.lookup(&endpoint);
	if (counted) {
		bucket = latency_bucket(ev->timestamp_ns > ev->request_ns ? (ev->timestamp_ns - ev->request_ns) / 1000 : 0);
		__sync_fetch_and_add(&counted->count[bucket], 1);
	}
	if (st->withheld & (1 << (n & (XHDR_WAITING - 1)))) {
		count(cnt, XHDR_C_RESPONSES_WITHHELD);	/* R28: as its request's event, though its latency counts */
		return TC_ACT_OK;
	}
	ev->status = status;
	ev->version = version;
	ev->ifindex = skb->ifindex;
	ev->family = flow.family;
	__builtin_memcpy(ev->saddr, flow.saddr, sizeof(ev->saddr));
	__builtin_memcpy(ev->daddr, flow.daddr, sizeof(ev->daddr));
	ev->sport = flow.sport;
	ev->dport = flow.dport;
	ev->vlan_ids[0] = flow.vlan_ids[0];
	ev->vlan_ids[1] = flow.vlan_ids[1];
	ev->vlan_count = flow.vlan_count;
	if (events.ringbuf_output(ev, XHDR_EVENT_FIXED_BYTES, BPF_RB_NO_WAKEUP) == 0)
		count(cnt, XHDR_C_RESPONSES);
	else
		count(cnt, XHDR_C_EVENTS_LOST);
	return TC_ACT_OK;
}
