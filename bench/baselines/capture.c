// SPDX-License-Identifier: GPL-2.0
/*
 * capture: the user-space baseline the XDP extractor is measured against.
 *
 * What a performance engineer would write instead of XDP: an AF_PACKET socket with a TPACKET_V3
 * memory-mapped ring (no copy per packet into user space, one poll() per block), a classic BPF
 * filter so only TCP to the watched ports is copied, and a parser in plain C that implements the
 * rules of docs/EXTRACTION.md (R1-R19) exactly as harness/oracle/reference.py reads them: a flow table
 * (open addressing, at most -F flows, CLOCK eviction as the kernel's LRU map evicts) follows each
 * TCP flow from its SYN, skips bodies by Content-Length, carries a header section cut by the end
 * of a segment into the next one and flags the bytes other parsers read differently. Every request found is written as one line (see
 * print_event(); bench/baselines/__init__.py reads and writes the same format), so tests can
 * compare it field by field with the reference.
 *
 * Usage:
 *   capture [options] ring IFNAME   capture until SIGINT/SIGTERM, -c packets or -t seconds
 *   capture [options] file PATH     parse frames stored as (u32 length, bytes) records, in order
 *   capture [options] bench PATH N  parse the first frame of PATH N times, print ns per parse
 * Options: -p PORT (repeatable), -H NAME=MODE (value|hash|auth|presence, repeatable, in slot
 * order), -k KEYHEX (16 bytes), -L max_header_lines, -V max_value_len, -T max_target_len,
 * -S max_scan_bytes, -R max_requests, -G max_request_segments, -F max_flows, -c PACKETS,
 * -t SECONDS, -f FILTER (tcpdump -ddd text), -q (count requests, print nothing per request).
 * -c stops once packets seen plus packets dropped reach the count.
 * On exit (ring and file modes) it prints "stats packets=N requests=N drops=N" on stderr, followed
 * by every counter of docs/EXTRACTION.md as " name=N" (the extractor's counters, summed over the
 * frames; events_lost stays 0); "ready" once the ring is bound.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/types.h>
/* The flag, mode and counter values are the extractor's own, so both write the same lines. */
#include "xhdr_event.h"
#include "xhdr_chunks.h"

#define MAX_PORTS 16
#define MAX_RULES 8
#define NAME_MAX_LEN 32
#define METHOD_MAX 16
#define SCHEME_MAX 16
#define MAX_REQUESTS 8
#define VALUE_MAX 256
#define TARGET_MAX 512
#define FRAME_MAX 65536
#define MIN_FLOWS 16
#define MAX_FLOWS (1 << 18)
#define MAX_SEGMENTS 64
#define LENGTH_MAX_DIGITS 16		/* R17: digits of a Content-Length value */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define NO_NEXT UINT64_MAX

struct config {
	uint16_t ports[MAX_PORTS];
	int nports;
	char names[MAX_RULES][NAME_MAX_LEN + 1];
	size_t name_len[MAX_RULES];
	int modes[MAX_RULES];
	int nrules;
	size_t max_header_lines, max_value_len, max_target_len, max_scan_bytes, max_requests;
	size_t max_segments, max_flows;
	uint64_t k0, k1;
};

/* A TCP flow (R15), the key of the flow table: every byte is written for each frame. */
struct flow {
	uint8_t saddr[16], daddr[16];	/* IPv4 uses the first four bytes */
	uint16_t sport, dport;
	uint16_t vlan_ids[2];
	uint8_t family;
	uint8_t vlan_count;
	uint16_t zero[3];
};

_Static_assert(sizeof(struct flow) == 48, "the flow key is hashed as six words");

/* What R1-R6 found in a frame for a watched port. */
struct segment {
	struct flow flow;
	uint8_t tcp_flags;
	uint32_t seq;
	const uint8_t *payload;
	size_t present;		/* payload bytes in the frame (R6) */
	size_t length;		/* n of R16: the payload's length by the IP header */
};

/* R18: where the end of a segment fell in a header section, and so how the next one goes on. */
enum cut {
	CUT_NONE,
	CUT_LINE_START,		/* at a line start: nothing is lost */
	CUT_LONE_CR,		/* after a CR that starts a line: the empty line if an LF comes next */
	CUT_NAME,		/* inside a field name, all tchar so far: the rest is checked, not matched */
	CUT_REST,		/* in a value (its slot has CUT) or a skipped line: its rest is skipped */
	CUT_VALUE,		/* in a value or presence slot's value: its rest is more of it */
};

struct slot {
	uint8_t flags;
	size_t length;
	uint64_t hash;
	size_t value_len;
	uint8_t value[VALUE_MAX];
};

struct request {
	const uint8_t *method, *target;
	size_t method_len, target_seen;
	int version;
	int line_cut;
	unsigned int flags;
	size_t header_lines;
	uint64_t content_length;	/* R17: from the first Content-Length line, when valid */
	unsigned int length_lines;	/* R17: Content-Length lines seen */
	unsigned int te_lines;		/* R20: Transfer-Encoding lines seen */
	int chunked;			/* R20: the last one's whole value ends in chunked */
	int cut;			/* R18: enum cut */
	int last_cr;			/* R19: the segment that cut it ended with a CR */
	size_t segments;		/* R18: segments its header section was read in, this one included */
	/* R18, CUT_VALUE: the slot whose value goes on, and the bytes after its last one not SP or HT */
	int split;
	size_t pend;
	size_t have;			/* bytes of slot->value used: the value, then up to pend of those */
	struct slot slots[MAX_RULES];	/* the last member: only cfg.nrules are used */
};

/* R15: how a flow's next bytes are read. */
enum flow_mode {
	MODE_REQUEST,		/* a request starts at expect */
	MODE_BODY,		/* body_left bytes of a body start at expect */
	MODE_HEADERS,		/* the header section of the kept request goes on at expect (R18) */
	MODE_LOST,		/* nothing is read until a SYN */
	MODE_CHUNKED,		/* a chunked body goes on at expect (R20) */
};

/* R20: where a chunked body is: the size read so far, or the data bytes left in XHDR_CH_DATA. */
struct chunking {
	int phase;		/* enum xhdr_chunk_phase */
	__u32 digits;
	__u64 number;
};

struct flow_state {
	struct flow key;
	uint64_t hash;
	uint64_t body_left;	/* MODE_BODY */
	struct chunking chunks;	/* MODE_CHUNKED */
	uint64_t ticket;	/* MODE_HEADERS: the kept request's, in pending[kept] */
	uint32_t kept;
	uint32_t expect;	/* sequence number of the next byte to read */
	uint8_t live;
	uint8_t mode;		/* enum flow_mode */
	uint8_t used;		/* CLOCK: looked up since the hand last passed */
};

/*
 * R18: a request whose header section goes on in its flow's next segment, with copies of the bytes
 * its pointers showed. As in the extractor, these are few: a sixty-fourth of the flows, at least 16.
 */
struct pending {
	uint64_t ticket;	/* 0: free */
	struct request req;
	uint8_t method[METHOD_MAX];
	uint8_t target[TARGET_MAX];
};

static struct config cfg = {
	.max_header_lines = 32, .max_value_len = 128, .max_target_len = 128,
	.max_scan_bytes = 1536, .max_requests = 4, .max_segments = 8, .max_flows = 65536,
};
static uint8_t tchar[256], target_char[256];
static volatile sig_atomic_t stop;
static unsigned long long counts[XHDR_C_COUNT];
static int quiet;

static const char *const counter_names[XHDR_C_COUNT] = {
	[XHDR_C_PACKETS] = "packets", [XHDR_C_MALFORMED] = "malformed",
	[XHDR_C_VLAN_TOO_DEEP] = "vlan_too_deep", [XHDR_C_NOT_IP] = "not_ip",
	[XHDR_C_LATER_FRAGMENT] = "later_fragment", [XHDR_C_IPV6_EXT_HEADER] = "ipv6_ext_header",
	[XHDR_C_NOT_TCP] = "not_tcp", [XHDR_C_PORT_NOT_WATCHED] = "port_not_watched",
	[XHDR_C_TCP_WATCHED] = "tcp_watched", [XHDR_C_NO_PAYLOAD] = "no_payload",
	[XHDR_C_NOT_HTTP] = "not_http", [XHDR_C_HTTP_REQUEST] = "http_request",
	[XHDR_C_EVENTS] = "events", [XHDR_C_EVENTS_LOST] = "events_lost",
	[XHDR_C_MID_STREAM] = "mid_stream", [XHDR_C_OUT_OF_SYNC] = "out_of_sync",
	[XHDR_C_RETRANSMITTED] = "retransmitted", [XHDR_C_OUT_OF_ORDER] = "out_of_order",
	[XHDR_C_BODY] = "body", [XHDR_C_FLOWS_OPENED] = "flows_opened",
	[XHDR_C_FLOWS_CLOSED] = "flows_closed", [XHDR_C_FLOWS_LOST] = "flows_lost",
	[XHDR_C_CONTINUED] = "continued", [XHDR_C_TLS_HELLO] = "tls_hello",
	[XHDR_C_NOT_TLS] = "not_tls", [XHDR_C_ENCRYPTED] = "encrypted",	/* this baseline reads no TLS */
	[XHDR_C_EVENTS_WITHHELD] = "events_withheld", [XHDR_C_DROPPED] = "dropped",
	[XHDR_C_BLOCKED] = "blocked",	/* nor rules (R27-R29): these stay 0 */
	[XHDR_C_RESPONSES_WITHHELD] = "responses_withheld",
};

/* --- SipHash-2-4, 64-bit output (R13) ------------------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

static uint64_t siphash24(const uint8_t *data, size_t len)
{
	uint64_t v0 = cfg.k0 ^ 0x736f6d6570736575ULL, v1 = cfg.k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = cfg.k0 ^ 0x6c7967656e657261ULL, v3 = cfg.k1 ^ 0x7465646279746573ULL;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, whole = len - len % 8;

	for (i = 0; i < whole; i += 8) {
		memcpy(&m, data + i, 8);	/* x86_64: little-endian, as the key words */
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (i = 0; i < len % 8; i++)
		b |= (uint64_t)data[whole + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* --- Frames: R1-R6 --------------------------------------------------------------------------- */

static uint16_t u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int watched(uint16_t port)
{
	int i;

	for (i = 0; i < cfg.nports; i++)
		if (cfg.ports[i] == port)
			return 1;
	return 0;
}

static int ipv6_extension(uint8_t next)
{
	switch (next) {
	case 0: case 43: case 44: case 50: case 51: case 60: case 135: case 139: case 140:
		return 1;
	}
	return 0;
}

/*
 * R1-R6: fills the segment of a TCP frame to a watched port and returns XHDR_C_TCP_WATCHED, or
 * returns the outcome counter that ends the frame.
 */
static int read_layers(const uint8_t *f, size_t len, struct segment *seg)
{
	struct flow *flow = &seg->flow;
	size_t off = 14, l4, ip_end, declared, hl, total;
	uint16_t type;

	if (len < 14)
		return XHDR_C_MALFORMED;
	memset(flow, 0, sizeof(*flow));
	type = u16(f + 12);
	while ((type == 0x8100 || type == 0x88a8) && flow->vlan_count < 2) {
		if (len < off + 4)
			return XHDR_C_MALFORMED;
		flow->vlan_ids[flow->vlan_count++] = u16(f + off) & 0x0fff;
		type = u16(f + off + 2);
		off += 4;
	}
	if (type == 0x8100 || type == 0x88a8)
		return XHDR_C_VLAN_TOO_DEEP;
	if (type == 0x0800) {
		if (len < off + 20 || f[off] >> 4 != 4)
			return XHDR_C_MALFORMED;
		hl = (f[off] & 0x0f) * 4;
		total = u16(f + off + 2);
		if (hl < 20 || len < off + hl || total < hl)
			return XHDR_C_MALFORMED;
		if (u16(f + off + 6) & 0x1fff)
			return XHDR_C_LATER_FRAGMENT;
		if (f[off + 9] != 6)
			return XHDR_C_NOT_TCP;
		flow->family = 4;
		memcpy(flow->saddr, f + off + 12, 4);
		memcpy(flow->daddr, f + off + 16, 4);
		l4 = off + hl;
		declared = off + total;
	} else if (type == 0x86dd) {
		if (len < off + 40 || f[off] >> 4 != 6)
			return XHDR_C_MALFORMED;
		if (ipv6_extension(f[off + 6]))
			return XHDR_C_IPV6_EXT_HEADER;
		if (f[off + 6] != 6)
			return XHDR_C_NOT_TCP;
		flow->family = 6;
		memcpy(flow->saddr, f + off + 8, 16);
		memcpy(flow->daddr, f + off + 24, 16);
		l4 = off + 40;
		declared = off + 40 + u16(f + off + 4);
	} else {
		return XHDR_C_NOT_IP;
	}
	ip_end = declared < len ? declared : len;	/* Ethernet padding is never payload */
	if (l4 + 20 > ip_end)
		return XHDR_C_MALFORMED;
	hl = (f[l4 + 12] >> 4) * 4;
	if (hl < 20 || l4 + hl > ip_end)
		return XHDR_C_MALFORMED;
	flow->sport = u16(f + l4);
	flow->dport = u16(f + l4 + 2);
	if (!watched(flow->dport))
		return XHDR_C_PORT_NOT_WATCHED;
	seg->seq = u32(f + l4 + 4);
	seg->tcp_flags = f[l4 + 13];
	seg->payload = f + l4 + hl;
	seg->present = ip_end - l4 - hl;
	seg->length = declared - l4 - hl;
	return XHDR_C_TCP_WATCHED;
}

/* --- Flows: R15 ------------------------------------------------------------------------------ */

/*
 * Open addressing with linear probing, at most cfg.max_flows entries in twice as many slots (so a
 * probe is short), removal by backward shift (no tombstones). When the table is full, a new flow
 * evicts one the CLOCK hand finds not used since it last passed: an approximation of the kernel's
 * LRU map, and as there an evicted flow is as if never seen.
 */
static struct flow_state *flows;
static size_t flow_mask, nflows, clock_hand;
static uint64_t hash_seed;
static struct pending *pendings;
static size_t npending, pending_hand;
static uint64_t next_ticket = 1;

static uint64_t flow_hash(const struct flow *key)
{
	uint64_t w[6], h = hash_seed;
	int i;

	memcpy(w, key, sizeof(w));
	for (i = 0; i < 6; i++) {
		h = (h ^ w[i]) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	return h;
}

static struct flow_state *flow_find(const struct flow *key, uint64_t h)
{
	size_t i = h & flow_mask;

	for (;; i = (i + 1) & flow_mask) {
		struct flow_state *e = &flows[i];

		if (!e->live)
			return NULL;
		if (e->hash == h && !memcmp(&e->key, key, sizeof(*key))) {
			e->used = 1;
			return e;
		}
	}
}

/* R18: the kept request of a flow in MODE_HEADERS, or NULL when it was evicted since. */
static struct pending *kept_request(const struct flow_state *st)
{
	struct pending *p = &pendings[st->kept];

	return st->mode == MODE_HEADERS && p->ticket == st->ticket ? p : NULL;
}

static void forget_kept(struct flow_state *st)
{
	struct pending *p = kept_request(st);

	if (p)
		p->ticket = 0;
}

static void flow_remove(size_t i)
{
	size_t j = i;

	forget_kept(&flows[i]);
	for (;;) {
		j = (j + 1) & flow_mask;
		if (!flows[j].live)
			break;
		/* the entry at j may fill the hole at i unless its home lies in (i, j] */
		if (((j - flows[j].hash) & flow_mask) >= ((j - i) & flow_mask)) {
			flows[i] = flows[j];
			i = j;
		}
	}
	flows[i].live = 0;
	nflows--;
}

static void flow_evict(void)
{
	for (;; clock_hand = (clock_hand + 1) & flow_mask) {
		struct flow_state *e = &flows[clock_hand];

		if (!e->live)
			continue;
		if (!e->used) {
			flow_remove(clock_hand);
			return;
		}
		e->used = 0;
	}
}

/* R15: a SYN (re)opens its flow, a request expected at `expect`; returns its state. */
static struct flow_state *flow_open(struct flow_state *st, const struct flow *key, uint64_t h,
				    uint32_t expect)
{
	size_t i;

	if (st) {
		forget_kept(st);
	} else {
		if (nflows == cfg.max_flows)
			flow_evict();
		for (i = h & flow_mask; flows[i].live; i = (i + 1) & flow_mask)
			;
		st = &flows[i];
		st->key = *key;
		st->hash = h;
		st->live = 1;
		st->used = 1;
		nflows++;
	}
	st->expect = expect;
	st->mode = MODE_REQUEST;
	st->body_left = 0;
	counts[XHDR_C_FLOWS_OPENED]++;
	return st;
}

/* R15: the flow is out of sync until its next SYN. */
static void lose(struct flow_state *st)
{
	forget_kept(st);
	st->mode = MODE_LOST;
	counts[XHDR_C_FLOWS_LOST]++;
}

static int init_flows(void)
{
	size_t slots = 1;

	while (slots < 2 * cfg.max_flows)
		slots <<= 1;
	flow_mask = slots - 1;
	npending = cfg.max_flows / 64 > 16 ? cfg.max_flows / 64 : 16;
	flows = calloc(slots, sizeof(*flows));
	pendings = calloc(npending, sizeof(*pendings));
	if (getrandom(&hash_seed, sizeof(hash_seed), 0) != sizeof(hash_seed))
		hash_seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
	return flows && pendings ? 0 : -1;
}

/* --- Requests: R9-R14, R17-R19 ------------------------------------------------------------- */

static size_t run_length(const uint8_t *v, size_t n, size_t start, const uint8_t *class, size_t limit)
{
	size_t i = start;

	while (i < n && i - start < limit && class[v[i]])
		i++;
	return i - start;
}

/* R9, R10: the request line at start; returns the next position, 0 when cut, -1 when not a request. */
static long request_line(const uint8_t *v, size_t n, size_t start, struct request *req)
{
	static const char http1[] = "HTTP/1.";
	size_t space, tend, s, seen, i, after;

	space = start + run_length(v, n, start, tchar, METHOD_MAX);
	if (space == start || space == n || v[space] != ' ')
		return -1;
	req->method = v + start;
	req->method_len = space - start;
	tend = space + 1 + run_length(v, n, space + 1, target_char, n);
	req->target = v + space + 1;
	req->target_seen = tend - space - 1;
	req->version = 0;
	req->line_cut = 1;
	if (tend == n)
		return 0;
	if (v[tend] != ' ' || tend == space + 1)
		return -1;
	s = tend + 1;
	seen = n - s < 8 ? n - s : 8;
	for (i = 0; i < seen; i++) {
		if (i < 7 ? v[s + i] != (uint8_t)http1[i] : v[s + i] != '0' && v[s + i] != '1')
			return -1;
	}
	if (seen < 8)
		return 0;
	req->version = v[s + 7] == '0' ? 10 : 11;
	after = s + 8;
	if (after == n || (after + 1 == n && v[after] == '\r'))
		return 0;
	req->line_cut = 0;
	if (v[after] == '\n') {
		req->flags |= XHDR_F_BARE_LF;	/* R19 */
		return (long)after + 1;
	}
	if (v[after] == '\r' && v[after + 1] == '\n')
		return (long)after + 2;
	return -1;
}

static int slot_of(const uint8_t *name, size_t len)
{
	int i;

	for (i = 0; i < cfg.nrules; i++)
		if (cfg.name_len[i] == len && !strncasecmp(cfg.names[i], (const char *)name, len))
			return i;
	return -1;
}

/* R13: one more occurrence of a configured header. */
static void fill(struct slot *slot, int mode, const uint8_t *value, size_t len, int cut)
{
	size_t end;

	if (slot->flags & XHDR_S_REPEATED)
		return;
	if (slot->flags & XHDR_S_PRESENT) {
		slot->flags |= XHDR_S_REPEATED;
		return;
	}
	slot->flags = XHDR_S_PRESENT | (cut ? XHDR_S_CUT : 0);
	slot->length = len;
	if (mode == XHDR_MODE_VALUE) {
		slot->value_len = len < cfg.max_value_len ? len : cfg.max_value_len;
		memcpy(slot->value, value, slot->value_len);
		if (len > cfg.max_value_len)
			slot->flags |= XHDR_S_TRUNCATED;
	} else if (mode == XHDR_MODE_HASH || mode == XHDR_MODE_AUTH) {
		slot->hash = siphash24(value, len);
		if (mode == XHDR_MODE_AUTH) {
			end = run_length(value, len, 0, tchar, SCHEME_MAX);
			if (end && end < len && value[end] == ' ') {
				memcpy(slot->value, value, end);
				slot->value_len = end;
			}
		}
	}
}

/*
 * R17: what a field line tells about the body's length, configured or not. A value cut before its
 * LF (`cut`) cannot be trusted. R19: both names in one request are CL_AND_TE.
 */
static void body_field(struct request *req, const uint8_t *name, size_t name_len,
		      const uint8_t *value, size_t len, int cut)
{
	uint64_t length = 0;
	size_t i;

	if (name_len == 17 && !strncasecmp((const char *)name, "transfer-encoding", 17)) {
		req->flags |= XHDR_F_TRANSFER_ENCODING;
		req->te_lines++;
		if (req->length_lines)
			req->flags |= XHDR_F_CL_AND_TE;
		/* R19: judged only on a value seen to its LF; the last coding is "chunked" after , SP or HT */
		req->chunked = !cut && len >= 7 && !strncasecmp((const char *)value + len - 7, "chunked", 7) &&
			       (len == 7 || value[len - 8] == ',' || value[len - 8] == ' ' ||
				value[len - 8] == '\t');
		if (!cut && !req->chunked)
			req->flags |= XHDR_F_TE_NOT_CHUNKED;
		return;
	}
	if (name_len != 14 || strncasecmp((const char *)name, "content-length", 14))
		return;
	if (req->flags & XHDR_F_TRANSFER_ENCODING)
		req->flags |= XHDR_F_CL_AND_TE;
	if (req->length_lines++ || cut || !len || len > LENGTH_MAX_DIGITS)
		goto bad;
	for (i = 0; i < len; i++) {
		if (value[i] < '0' || value[i] > '9')
			goto bad;
		length = length * 10 + (value[i] - '0');
	}
	req->content_length = length;
	return;
bad:
	req->flags |= XHDR_F_BAD_CONTENT_LENGTH;
}

/*
 * R19: the byte right after the run of `run` tchar a line starts with (`before`: the previous
 * segment held the run's start). SP or HT there is obs-fold when the run is empty, else whitespace
 * before the colon.
 */
static unsigned int ambiguity(uint8_t c, size_t run, int before)
{
	if (c != ' ' && c != '\t')
		return 0;
	return run || before ? XHDR_F_WS_BEFORE_COLON : XHDR_F_OBS_FOLD;
}

/*
 * R19: CONTROL_BYTE for a control byte other than HT in the len bytes of a line (without its LF) that is
 * not its end: a CR last in them is that end, or, when the view cut the line there, judged with the next
 * segment (R18).
 */
static unsigned int control_byte(const uint8_t *line, size_t len)
{
	size_t i;

	if (len && line[len - 1] == '\r')
		len--;
	for (i = 0; i < len; i++)
		if ((line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7F)
			return XHDR_F_CONTROL_BYTE;
	return 0;
}

/*
 * R18: the `count` bytes at `from` of a value that goes on, after its last byte not SP or HT (whitespace, a
 * CR last), which more value would take in, wait after it in slot->value.
 */
static void keep_pending(struct request *req, const uint8_t *from, size_t count)
{
	struct slot *slot = &req->slots[req->split];
	size_t n = count < cfg.max_value_len - req->have ? count : cfg.max_value_len - req->have;

	if (cfg.modes[req->split] != XHDR_MODE_VALUE)
		return;
	memcpy(slot->value + req->have, from, n);
	req->have += n;
}

/*
 * R13, R18: the rest of a value that the previous segment's end cut, `len` bytes from `line` up to its
 * LF (`cut`: the view's end).
 */
static void value_goes_on(struct request *req, const uint8_t *line, size_t len, int cut)
{
	struct slot *slot = &req->slots[req->split];
	size_t solid, total, n;

	while (!slot->length && !req->pend && len && (*line == ' ' || *line == '\t')) {
		line++;			/* nothing but whitespace so far: the value has not started */
		len--;
	}
	solid = len;
	if (solid && line[solid - 1] == '\r')
		solid--;			/* before the LF, or last in the view: see R13 and R18 */
	while (solid && (line[solid - 1] == ' ' || line[solid - 1] == '\t'))
		solid--;
	if (solid || (req->last_cr && (cut || len))) {
		total = slot->length + req->pend + solid;	/* the waiting bytes are inside the value */
		req->pend = 0;
	} else {
		total = slot->length;
		solid = 0;
	}
	slot->length = total;
	slot->flags = XHDR_S_PRESENT | (cut ? XHDR_S_CUT : 0);
	if (cfg.modes[req->split] == XHDR_MODE_VALUE) {
		n = solid < cfg.max_value_len - req->have ? solid : cfg.max_value_len - req->have;
		memcpy(slot->value + req->have, line, n);
		req->have += n;
		slot->value_len = total < cfg.max_value_len ? total : cfg.max_value_len;
		if (total > cfg.max_value_len)
			slot->flags |= XHDR_S_TRUNCATED;
	}
	if (cut) {
		req->pend += len - solid;
		keep_pending(req, line + solid, len - solid);
	}
}

/*
 * R12, R13, R17, R19: one non-empty header line; returns where the next line starts (n when the view
 * cuts the line, with req->cut saying where, R18).
 */
static size_t field_line(const uint8_t *v, size_t n, size_t start, struct request *req)
{
	const uint8_t *line = v + start, *lf = memchr(line, '\n', n - start), *colon, *val;
	size_t len = lf ? (size_t)(lf - line) : n - start, name_len, i, vlen;
	size_t next = lf ? (size_t)(lf - v) + 1 : n;
	int cut = !lf, bad = 0, index, fills;

	colon = memchr(line, ':', len);
	name_len = colon ? (size_t)(colon - line) : len;
	for (i = 0; i < name_len; i++)
		if (!tchar[line[i]])
			break;
	if (lf && lf[-1] != '\r')
		req->flags |= XHDR_F_BARE_LF;	/* R19; the line's first byte is not its LF */
	req->flags |= control_byte(line, len);
	if (i < name_len) {
		bad = 1;			/* obs-fold, whitespace or CR before the colon */
		req->flags |= ambiguity(line[i], i, 0);
	}
	else if (!colon)
		bad = !cut;			/* a colon-less line is bad once its LF is seen */
	else if (name_len == 0)
		bad = 1;
	if (bad)
		req->flags |= XHDR_F_BAD_LINE;
	if (bad || !colon) {
		if (cut)
			req->cut = bad ? CUT_REST : CUT_NAME;
		return next;
	}
	val = colon + 1;
	vlen = len - name_len - 1;
	if (vlen && val[vlen - 1] == '\r')
		vlen--;
	while (vlen && (*val == ' ' || *val == '\t')) {
		val++;
		vlen--;
	}
	while (vlen && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
		vlen--;
	index = slot_of(line, name_len);
	fills = index >= 0 && !(req->slots[index].flags & XHDR_S_PRESENT);
	if (index >= 0)
		fill(&req->slots[index], cfg.modes[index], val, vlen, cut);
	body_field(req, line, name_len, val, vlen, cut);
	if (cut)
		req->cut = CUT_REST;	/* a hash or auth slot (CUT), a Content-Length line or a skipped line */
	if (cut && fills && (cfg.modes[index] == XHDR_MODE_VALUE || cfg.modes[index] == XHDR_MODE_PRESENCE)) {
		req->cut = CUT_VALUE;
		req->split = index;
		req->pend = (size_t)(line + len - (val + vlen));
		req->have = req->slots[index].value_len;
		keep_pending(req, val + vlen, req->pend);
	}
	return next;
}

/*
 * R18: the rest of a line the previous segment's end split; returns where the next line starts (n
 * when the view cuts it again). The rest of a name is checked, never matched. R19: an LF first in
 * the segment ends in CR LF only if the previous segment ended with the CR.
 */
static size_t rest_of_line(const uint8_t *v, size_t n, size_t start, struct request *req, int cut)
{
	const uint8_t *line = v + start, *lf = memchr(line, '\n', n - start), *colon;
	size_t len = lf ? (size_t)(lf - line) : n - start, name_len, i;

	if (lf && !(lf > line ? lf[-1] == '\r' : req->last_cr))
		req->flags |= XHDR_F_BARE_LF;
	if (req->last_cr && start < n && *line != '\n')
		req->flags |= XHDR_F_CONTROL_BYTE;	/* R19: the CR that ended the last segment ended no line */
	req->flags |= control_byte(line, len);
	if (cut == CUT_NAME) {
		req->flags |= XHDR_F_NAME_SPLIT;
		colon = memchr(line, ':', len);
		name_len = colon ? (size_t)(colon - line) : len;
		for (i = 0; i < name_len; i++)
			if (!tchar[line[i]])
				break;
		if (i < name_len)
			req->flags |= ambiguity(line[i], i, 1);	/* the name began before */
		if (i < name_len || (!colon && lf)) {
			req->flags |= XHDR_F_BAD_LINE;	/* a non-tchar (CR too) before the colon, or the LF */
			cut = CUT_REST;
		} else if (colon) {
			cut = CUT_REST;
		}
	}
	if (cut == CUT_VALUE)
		value_goes_on(req, line, len, !lf);
	if (!lf) {
		req->cut = cut;
		return n;
	}
	return (size_t)(lf - v) + 1;
}

/*
 * R11, R18: the header section from pos (a request the previous segment cut goes on where req->cut
 * says); returns where it ends, or -1 when TOO_MANY_HEADERS stopped it or the view ended inside it
 * (then req->cut says where).
 */
static long header_section(const uint8_t *v, size_t n, size_t pos, struct request *req)
{
	int resume = req->cut;

	req->cut = CUT_NONE;
	if (resume == CUT_LONE_CR) {
		if (v[pos] == '\n')
			return (long)pos + 1;	/* the lone CR and this LF are the empty line */
		if (req->header_lines == cfg.max_header_lines) {
			req->flags |= XHDR_F_TOO_MANY_HEADERS;
			return -1;
		}
		req->header_lines++;
		/* a line whose first byte, the CR, is not a tchar; rest_of_line() finds it was no line's end */
		req->flags |= XHDR_F_BAD_LINE;
		pos = rest_of_line(v, n, pos, req, CUT_REST);
	} else if (resume == CUT_NAME || resume == CUT_REST || resume == CUT_VALUE) {
		pos = rest_of_line(v, n, pos, req, resume);
	}
	while (req->cut == CUT_NONE) {
		if (pos == n) {
			req->cut = CUT_LINE_START;
			break;
		}
		if (v[pos] == '\r') {
			if (pos + 1 == n) {
				req->cut = CUT_LONE_CR;	/* an unknown line, not counted (R11) */
				break;
			}
			if (v[pos + 1] == '\n')
				return (long)pos + 2;
		} else if (v[pos] == '\n') {
			req->flags |= XHDR_F_BARE_LF;	/* R19: the empty line is an LF alone */
			return (long)pos + 1;
		}
		if (req->header_lines == cfg.max_header_lines) {
			req->flags |= XHDR_F_TOO_MANY_HEADERS;
			return -1;
		}
		req->header_lines++;
		pos = field_line(v, n, pos, req);
	}
	return -1;
}

/* A request before its request line is read: what print_event() and the parser read, zeroed. */
static void new_request(struct request *req)
{
	int i;

	memset(req, 0, offsetof(struct request, slots));
	req->segments = 1;
	for (i = 0; i < cfg.nrules; i++) {
		req->slots[i].flags = 0;
		req->slots[i].length = 0;
		req->slots[i].hash = 0;
		req->slots[i].value_len = 0;
	}
}

static void copy_request(struct request *to, const struct request *from)
{
	memcpy(to, from, offsetof(struct request, slots) + cfg.nrules * sizeof(struct slot));
}

/* R17, R20: whether where the request's body ends cannot be known. */
static int body_unknown(const struct request *req)
{
	if (req->flags & (XHDR_F_BAD_CONTENT_LENGTH | XHDR_F_CL_AND_TE | XHDR_F_TE_NOT_CHUNKED) ||
	    req->te_lines > 1)
		return 1;
	return (req->flags & XHDR_F_TRANSFER_ENCODING) && !req->chunked;
}

/*
 * R20: walks a chunked body from payload offset `at` of a payload of n bytes whose view is v[0..len).
 * Returns the offset right after the body (*ch in XHDR_CH_ENDED), n with *ch saying where it goes on when the
 * payload ends inside it, or NO_NEXT when the flow is lost.
 */
static uint64_t walk_chunks(const uint8_t *v, size_t len, size_t n, size_t at, struct chunking *ch)
{
	uint64_t run;
	int step, next;

	for (step = 0; at < n; step++) {
		if (step == XHDR_CHUNK_STEPS)
			return NO_NEXT;
		if (ch->phase == XHDR_CH_DATA) {
			run = n - at < ch->number ? n - at : ch->number;
			at += run;
			ch->number -= run;
			if (!ch->number)
				ch->phase = XHDR_CH_DATA_CR;
			continue;
		}
		if (at >= len)
			return NO_NEXT;	/* a framing byte past the view */
		next = xhdr_chunk_byte(ch->phase, v[at++], &ch->number, &ch->digits);
		if (next < 0)
			return NO_NEXT;
		ch->phase = next;
		if (next == XHDR_CH_ENDED)
			return at;
	}
	return n;
}

/*
 * R8, R10, R14, R17, R18: the requests of the view v[0..len) from start, at most cfg.max_requests;
 * reqs[0] is already the request the flow's previous segment cut when `resumed`. Returns how many
 * to log. *next is where the request after them starts, a payload offset at or past n (the
 * payload's length by its IP header), or NO_NEXT when the flow is lost or, with *kept set, when
 * reqs[count] goes on in the next segment.
 */
static int scan(const uint8_t *v, size_t len, size_t n, size_t start, int resumed,
		struct request *reqs, uint64_t *next, int *kept, struct chunking *chunks)
{
	size_t pos = start;
	uint64_t after;
	int count = 0, walked = 0;
	long end;

	*next = NO_NEXT;
	*kept = 0;
	for (;;) {
		struct request *req = &reqs[count];

		if (!resumed) {
			new_request(req);
			end = request_line(v, len, pos, req);
			if (end < 0)
				return count;		/* R8 (not_http) or R14: the flow is lost */
			if (end == 0)
				return count + 1;	/* R10: LINE_CUT, no fields; the flow is lost */
			pos = (size_t)end;
		}
		resumed = 0;
		end = header_section(v, len, pos, req);
		if (end < 0 && req->cut != CUT_NONE) {
			if (len == n && req->segments < cfg.max_segments) {
				*kept = 1;		/* R18: the payload's end cut it; it goes on */
				req->last_cr = v[len - 1] == '\r';	/* R19 */
				return count;
			}
			req->flags |= XHDR_F_HEADERS_CUT;
		}
		count++;
		if (end < 0 || body_unknown(req))
			return count;	/* R14: cut, too many headers, or a body of unknown length */
		if (req->flags & XHDR_F_TRANSFER_ENCODING) {
			if (walked++)
				return count;	/* R20: one chunked body per segment is walked */
			*chunks = (struct chunking){ .phase = XHDR_CH_SIZE_START };
			after = walk_chunks(v, len, n, (size_t)end, chunks);
			if (after == NO_NEXT)
				return count;
		} else {
			after = (uint64_t)end + req->content_length;
		}
		if (after >= n) {
			*next = after;	/* the body goes past the payload, or both end there */
			return count;
		}
		if (after >= len || (size_t)count == cfg.max_requests)
			return count;
		pos = (size_t)after;
	}
}

/* --- Output: one line per request (bench/baselines/events.py parses it) ------------------------ */

static void put_hex(FILE *out, const uint8_t *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	if (!len) {
		putc_unlocked('-', out);
		return;
	}
	for (i = 0; i < len; i++) {
		putc_unlocked(digits[data[i] >> 4], out);
		putc_unlocked(digits[data[i] & 15], out);
	}
}

static void print_event(FILE *out, const struct flow *flow, const struct request *req, int index,
			unsigned int extra)
{
	char saddr[INET6_ADDRSTRLEN], daddr[INET6_ADDRSTRLEN];
	int af = flow->family == 4 ? AF_INET : AF_INET6, i;
	size_t kept = req->target_seen < cfg.max_target_len ? req->target_seen : cfg.max_target_len;
	unsigned int flags = req->flags | extra;

	if (req->target_seen > cfg.max_target_len)
		flags |= XHDR_F_TARGET_TRUNCATED;
	if (req->line_cut)
		flags |= XHDR_F_LINE_CUT;
	inet_ntop(af, flow->saddr, saddr, sizeof(saddr));
	inet_ntop(af, flow->daddr, daddr, sizeof(daddr));
	fprintf(out, "E %d %s %s %u %u ", flow->family, saddr, daddr, flow->sport, flow->dport);
	if (flow->vlan_count == 0)
		fputs("-", out);
	for (i = 0; i < flow->vlan_count; i++)
		fprintf(out, i ? ",%u" : "%u", flow->vlan_ids[i]);
	fprintf(out, " %d ", index);
	put_hex(out, req->method, req->method_len);
	putc_unlocked(' ', out);
	put_hex(out, req->target, kept);
	fprintf(out, " %zu %d %u %zu", req->target_seen, req->version, flags, req->header_lines);
	for (i = 0; i < cfg.nrules; i++) {
		const struct slot *s = &req->slots[i];

		fprintf(out, " %u,%zu,", s->flags, s->length);
		put_hex(out, s->value, s->value_len);
		fprintf(out, ",%016llx", (unsigned long long)s->hash);
	}
	putc_unlocked('\n', out);
}

/* R18: keeps *req until the flow's next segment, in the flow's pending entry if it has one. */
static void keep(struct flow_state *st, const struct request *req)
{
	struct pending *p = kept_request(st);
	size_t target = req->target_seen < cfg.max_target_len ? req->target_seen : cfg.max_target_len;
	int i;

	for (i = 0; !p && i < 8; i++) {	/* a free entry if one is near the hand, else the hand's */
		p = &pendings[pending_hand];
		pending_hand = (pending_hand + 1) % npending;
		if (p->ticket && i < 7)
			p = NULL;
	}
	copy_request(&p->req, req);
	memcpy(p->method, req->method, req->method_len);
	memcpy(p->target, req->target, target);
	p->ticket = next_ticket++;
	st->kept = (uint32_t)(p - pendings);
	st->ticket = p->ticket;
}

/* R18: the kept request back in *req, its bytes in buffers that last until the frame is printed. */
static void resume(const struct pending *p, struct request *req)
{
	static uint8_t method[METHOD_MAX], target[TARGET_MAX];

	copy_request(req, &p->req);
	memcpy(method, p->method, req->method_len);
	memcpy(target, p->target, req->target_seen < cfg.max_target_len ? req->target_seen :
	       cfg.max_target_len);
	req->method = method;
	req->target = target;
	req->segments++;
}

/*
 * R16, R14, R18: the payload of a segment of flow st (NULL: no state); returns the outcome
 * counter, with *count requests in reqs to log.
 */
static int read_payload(struct flow_state *st, const struct segment *seg, struct request *reqs,
			int *count)
{
	uint32_t s = seg->seq + !!(seg->tcp_flags & TCP_SYN), n = (uint32_t)seg->length;
	size_t view_len = seg->present < cfg.max_scan_bytes ? seg->present : cfg.max_scan_bytes;
	struct pending *p = NULL;
	struct chunking chunks;
	uint64_t skip, next;
	int kept;

	*count = 0;
	if (!st)
		return XHDR_C_MID_STREAM;
	if (st->mode == MODE_LOST)
		return XHDR_C_OUT_OF_SYNC;
	if ((int32_t)(s + n - st->expect) <= 0)
		return XHDR_C_RETRANSMITTED;
	if ((int32_t)(s - st->expect) > 0)
		return XHDR_C_OUT_OF_ORDER;
	skip = (uint32_t)(st->expect - s);	/* 0 <= skip < n */
	if (st->mode == MODE_CHUNKED) {
		chunks = st->chunks;
		skip = walk_chunks(seg->payload, view_len, n, (size_t)skip, &chunks);
		if (skip == NO_NEXT)
			goto lost;
		if (skip == n) {	/* the body goes on, or ends with the payload */
			st->mode = chunks.phase == XHDR_CH_ENDED ? MODE_REQUEST : MODE_CHUNKED;
			st->chunks = chunks;
			st->expect = s + n;
			return XHDR_C_BODY;
		}
	}
	if (st->mode == MODE_BODY) {
		skip += st->body_left;
		if (skip >= n) {	/* the body reaches the payload's end: it consumes it */
			st->body_left = skip - n;
			st->expect = s + n;
			st->mode = st->body_left ? MODE_BODY : MODE_REQUEST;
			return XHDR_C_BODY;
		}
	}
	if (skip >= view_len)
		goto lost;
	if (st->mode == MODE_HEADERS) {
		p = kept_request(st);
		if (!p)
			goto lost;	/* the kept event is gone */
		resume(p, &reqs[0]);
	}
	chunks.phase = XHDR_CH_ENDED;	/* scan() says otherwise when a chunked body goes on */
	*count = scan(seg->payload, view_len, n, (size_t)skip, p != NULL, reqs, &next, &kept, &chunks);
	if (kept) {
		keep(st, &reqs[*count]);
		st->mode = MODE_HEADERS;
		st->expect = s + n;
	} else {
		forget_kept(st);
		if (next == NO_NEXT) {
			lose(st);
		} else if (next == n && chunks.phase != XHDR_CH_ENDED) {
			st->mode = MODE_CHUNKED;	/* R20 */
			st->chunks = chunks;
			st->expect = s + n;
		} else {
			st->mode = next > n ? MODE_BODY : MODE_REQUEST;
			st->body_left = next - n;
			st->expect = s + n;
		}
	}
	if (*count)
		return XHDR_C_HTTP_REQUEST;
	return kept ? XHDR_C_CONTINUED : XHDR_C_NOT_HTTP;
lost:
	lose(st);
	return XHDR_C_OUT_OF_SYNC;
}

/* One frame, arrival to extracted fields: R1-R19, then the log lines unless quiet. */
static int handle_frame(const uint8_t *frame, size_t len, int print)
{
	static struct request reqs[MAX_REQUESTS];
	struct flow_state *st;
	struct segment seg;
	int outcome, count = 0, i;
	uint64_t h;

	counts[XHDR_C_PACKETS]++;
	outcome = read_layers(frame, len, &seg);
	if (outcome != XHDR_C_TCP_WATCHED) {
		counts[outcome]++;
		return 0;
	}
	counts[XHDR_C_TCP_WATCHED]++;
	h = flow_hash(&seg.flow);
	st = flow_find(&seg.flow, h);
	if (seg.tcp_flags & TCP_RST) {
		if (st) {
			flow_remove((size_t)(st - flows));
			counts[XHDR_C_FLOWS_CLOSED]++;
			st = NULL;
		}
	} else if (seg.tcp_flags & TCP_SYN) {
		st = flow_open(st, &seg.flow, h, seg.seq + 1);
	}
	if (seg.present)
		outcome = read_payload(st, &seg, reqs, &count);
	else
		outcome = XHDR_C_NO_PAYLOAD;
	if (outcome == XHDR_C_HTTP_REQUEST) {
		counts[XHDR_C_HTTP_REQUEST] += count;
		counts[XHDR_C_EVENTS] += count;
	} else {
		counts[outcome]++;
	}
	if (seg.tcp_flags & TCP_FIN && st) {
		flow_remove((size_t)(st - flows));
		counts[XHDR_C_FLOWS_CLOSED]++;
	}
	if (print)
		for (i = 0; i < count; i++)
			print_event(stdout, &seg.flow, &reqs[i], i,
				    seg.present > cfg.max_scan_bytes ? XHDR_F_SCAN_LIMIT : 0);
	return count;
}

static void print_stats(unsigned long long drops)
{
	int i;

	fprintf(stderr, "stats packets=%llu requests=%llu drops=%llu", counts[XHDR_C_PACKETS],
		counts[XHDR_C_HTTP_REQUEST], drops);
	for (i = XHDR_C_PACKETS + 1; i < XHDR_C_COUNT; i++)
		fprintf(stderr, " %s=%llu", counter_names[i], counts[i]);
	fputc('\n', stderr);
}

/* --- Capture: TPACKET_V3 ring ------------------------------------------------------------------ */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int parse_filter(const char *text, struct sock_filter *code, int max)
{
	int count, i, n;
	unsigned int c, jt, jf, k;

	if (sscanf(text, "%d%n", &count, &n) != 1 || count <= 0 || count > max)
		return -1;
	text += n;
	for (i = 0; i < count; i++) {
		if (sscanf(text, " , %u %u %u %u%n", &c, &jt, &jf, &k, &n) != 4)
			return -1;
		text += n;
		code[i] = (struct sock_filter){ (uint16_t)c, (uint8_t)jt, (uint8_t)jf, k };
	}
	return count;
}

static unsigned long long drops(int fd)
{
	struct tpacket_stats_v3 st;
	socklen_t len = sizeof(st);

	if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len))
		return 0;
	return st.tp_drops;	/* reading resets the kernel's counters */
}

static int capture(const char *ifname, const char *filter, unsigned long long max_packets, double seconds)
{
	struct tpacket_req3 req = {
		.tp_block_size = 1 << 20, .tp_block_nr = 32, .tp_frame_size = 2048,
		.tp_retire_blk_tov = 10,
	};
	int fd, version = TPACKET_V3, one = 1, block = 0;
	unsigned long long dropped = 0;
	struct sock_filter code[256];
	struct sock_fprog prog;
	struct sockaddr_ll addr = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	static uint8_t tagged[FRAME_MAX + 4];
	struct timespec t0, now;
	uint8_t *ring;

	req.tp_frame_nr = req.tp_block_size / req.tp_frame_size * req.tp_block_nr;
	addr.sll_ifindex = (int)if_nametoindex(ifname);
	if (!addr.sll_ifindex) {
		fprintf(stderr, "capture: no interface %s here\n", ifname);
		return 1;
	}
	fd = socket(AF_PACKET, SOCK_RAW, 0);	/* no protocol yet: nothing queued before the filter */
	if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one))) {
		fprintf(stderr, "capture: AF_PACKET socket: %s\n", strerror(errno));
		return 1;
	}
	if (filter) {
		prog.len = (unsigned short)parse_filter(filter, code, 256);
		prog.filter = code;
		if ((short)prog.len <= 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog))) {
			fprintf(stderr, "capture: bad filter: %s\n", strerror(errno));
			return 1;
		}
	}
	if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req))) {
		fprintf(stderr, "capture: PACKET_RX_RING: %s\n", strerror(errno));
		return 1;
	}
	ring = mmap(NULL, (size_t)req.tp_block_size * req.tp_block_nr, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_LOCKED, fd, 0);
	if (ring == MAP_FAILED) {
		fprintf(stderr, "capture: mmap: %s\n", strerror(errno));
		return 1;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		fprintf(stderr, "capture: bind %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	fprintf(stderr, "ready\n");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop && (!max_packets || counts[XHDR_C_PACKETS] + dropped < max_packets)) {
		struct tpacket_block_desc *desc = (void *)(ring + (size_t)block * req.tp_block_size);
		struct tpacket3_hdr *hdr;
		struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLERR };
		unsigned int i;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (seconds > 0 && now.tv_sec - t0.tv_sec + (now.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
			break;
		if (!(__atomic_load_n(&desc->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
			if (poll(&pfd, 1, 100) == 0)
				dropped += drops(fd);	/* idle: a count that drops ends here */
			continue;
		}
		hdr = (void *)((uint8_t *)desc + desc->hdr.bh1.offset_to_first_pkt);
		for (i = 0; i < desc->hdr.bh1.num_pkts; i++) {
			const uint8_t *data = (uint8_t *)hdr + hdr->tp_mac;
			size_t len = hdr->tp_snaplen;

			if (hdr->tp_status & TP_STATUS_VLAN_VALID && len >= 12 && len <= FRAME_MAX) {
				/* The kernel took the outer tag off; put it back where the frame had it. */
				uint16_t tpid = hdr->tp_status & TP_STATUS_VLAN_TPID_VALID ?
						hdr->hv1.tp_vlan_tpid : ETH_P_8021Q;

				memcpy(tagged, data, 12);
				tagged[12] = tpid >> 8;
				tagged[13] = tpid & 0xff;
				tagged[14] = hdr->hv1.tp_vlan_tci >> 8;
				tagged[15] = hdr->hv1.tp_vlan_tci & 0xff;
				memcpy(tagged + 16, data + 12, len - 12);
				data = tagged;
				len += 4;
			}
			handle_frame(data, len, !quiet);
			hdr = (void *)((uint8_t *)hdr + hdr->tp_next_offset);
		}
		__atomic_store_n(&desc->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		block = (block + 1) % (int)req.tp_block_nr;
		dropped += drops(fd);
		if (!quiet)
			fflush(stdout);
	}
	dropped += drops(fd);
	fflush(stdout);
	print_stats(dropped);
	return 0;
}

/* --- Offline modes ------------------------------------------------------------------------------ */

static int read_frame(FILE *in, uint8_t *frame, size_t *len)
{
	uint32_t n;

	if (fread(&n, 4, 1, in) != 1 || n > FRAME_MAX || fread(frame, 1, n, in) != n)
		return -1;
	*len = n;
	return 0;
}

static int from_file(const char *path, long repeat)
{
	static uint8_t frame[FRAME_MAX];
	struct timespec t0, t1;
	FILE *in = fopen(path, "rb");
	size_t len;
	long i;

	if (!in) {
		fprintf(stderr, "capture: cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (repeat <= 0) {
		while (!read_frame(in, frame, &len))
			handle_frame(frame, len, 1);
		fflush(stdout);
		print_stats(0);
		return 0;
	}
	if (read_frame(in, frame, &len)) {
		fprintf(stderr, "capture: %s holds no frame\n", path);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < repeat; i++) {
		handle_frame(frame, len, 0);
		__asm__ volatile("" : : "r"(frame) : "memory");	/* keep every parse */
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.3f %llu\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / repeat,
	       counts[XHDR_C_HTTP_REQUEST]);
	return 0;
}

/* --- Command line ---------------------------------------------------------------------------------- */

static int add_rule(const char *arg)
{
	static const char *const modes[] = { NULL, "value", "hash", "auth", "presence" };
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	int m;

	if (cfg.nrules == MAX_RULES || !len || len > NAME_MAX_LEN)
		return -1;
	memcpy(cfg.names[cfg.nrules], arg, len);
	cfg.name_len[cfg.nrules] = len;
	cfg.modes[cfg.nrules] = XHDR_MODE_VALUE;
	if (eq) {
		for (m = 1; m <= 4; m++)
			if (!strcmp(eq + 1, modes[m]))
				break;
		if (m > 4)
			return -1;
		cfg.modes[cfg.nrules] = m;
	}
	cfg.nrules++;
	return 0;
}

static int set_key(const char *hex)
{
	uint8_t key[16];
	int i;

	if (strlen(hex) != 32)
		return -1;
	for (i = 0; i < 16; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &key[i]) != 1)
			return -1;
	memcpy(&cfg.k0, key, 8);
	memcpy(&cfg.k1, key + 8, 8);
	return 0;
}

static void tables(void)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	int b;

	for (b = 0; b < 256; b++) {
		tchar[b] = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
			   (b && strchr(extra, b));
		target_char[b] = (b >= 0x21 && b <= 0x7e) || b >= 0x80;
	}
}

int main(int argc, char **argv)
{
	unsigned long long max_packets = 0;
	const char *filter = NULL;
	double seconds = 0;
	int opt;

	tables();
	while ((opt = getopt(argc, argv, "p:H:k:L:V:T:S:R:G:F:c:t:f:q")) != -1) {
		switch (opt) {
		case 'p':
			if (cfg.nports == MAX_PORTS)
				return 2;
			cfg.ports[cfg.nports++] = (uint16_t)atoi(optarg);
			break;
		case 'H':
			if (add_rule(optarg)) {
				fprintf(stderr, "capture: bad header rule %s; use NAME=value|hash|auth|presence\n",
					optarg);
				return 2;
			}
			break;
		case 'k':
			if (set_key(optarg)) {
				fprintf(stderr, "capture: -k wants 32 hex digits\n");
				return 2;
			}
			break;
		case 'L': cfg.max_header_lines = strtoul(optarg, NULL, 10); break;
		case 'V': cfg.max_value_len = strtoul(optarg, NULL, 10); break;
		case 'T': cfg.max_target_len = strtoul(optarg, NULL, 10); break;
		case 'S': cfg.max_scan_bytes = strtoul(optarg, NULL, 10); break;
		case 'R': cfg.max_requests = strtoul(optarg, NULL, 10); break;
		case 'G': cfg.max_segments = strtoul(optarg, NULL, 10); break;
		case 'F': cfg.max_flows = strtoul(optarg, NULL, 10); break;
		case 'c': max_packets = strtoull(optarg, NULL, 10); break;
		case 't': seconds = atof(optarg); break;
		case 'f': filter = optarg; break;
		case 'q': quiet = 1; break;
		default:
			return 2;
		}
	}
	if (cfg.max_value_len > VALUE_MAX || cfg.max_target_len > TARGET_MAX ||
	    !cfg.max_requests || cfg.max_requests > MAX_REQUESTS ||
	    !cfg.max_segments || cfg.max_segments > MAX_SEGMENTS ||
	    cfg.max_flows < MIN_FLOWS || cfg.max_flows > MAX_FLOWS || !cfg.nports || !cfg.nrules) {
		fprintf(stderr, "capture: limits out of range, or no -p/-H given\n");
		return 2;
	}
	if (init_flows()) {
		fprintf(stderr, "capture: no memory for %zu flows\n", cfg.max_flows);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (optind + 2 == argc && !strcmp(argv[optind], "ring"))
		return capture(argv[optind + 1], filter, max_packets, seconds);
	if (optind + 2 == argc && !strcmp(argv[optind], "file"))
		return from_file(argv[optind + 1], 0);
	if (optind + 3 == argc && !strcmp(argv[optind], "bench"))
		return from_file(argv[optind + 1], atol(argv[optind + 2]));
	fprintf(stderr, "capture: usage: capture [options] ring IFNAME | file PATH | bench PATH N\n");
	return 2;
}
