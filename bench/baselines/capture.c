// SPDX-License-Identifier: GPL-2.0
/*
 * capture: the user-space baseline the XDP extractor is measured against.
 *
 * What a performance engineer would write instead of XDP: an AF_PACKET socket with a TPACKET_V3
 * memory-mapped ring (no copy per packet into user space, one poll() per block), a classic BPF
 * filter so only TCP to the watched ports is copied, and a parser in plain C that implements the
 * rules of docs/EXTRACTION.md (R1-R14) exactly as harness/reference.py reads them. Every request
 * found is written as one line (see print_event(); bench/baselines/events.py reads and writes the
 * same format), so tests can compare it field by field with the reference.
 *
 * Usage:
 *   capture [options] ring IFNAME   capture until SIGINT/SIGTERM, -c packets or -t seconds
 *   capture [options] file PATH     parse frames stored as (u32 length, bytes) records
 *   capture [options] bench PATH N  parse the first frame of PATH N times, print ns per parse
 *   capture [options] ringbuf FD    consume the extractor's events from its BPF ring buffer map
 *                                   (inherited descriptor FD, -B data bytes) and write the same lines
 * Options: -p PORT (repeatable), -H NAME=MODE (value|hash|auth|presence, repeatable, in slot
 * order), -k KEYHEX (16 bytes), -L max_header_lines, -V max_value_len, -T max_target_len,
 * -S max_scan_bytes, -R max_requests, -c PACKETS, -t SECONDS, -f FILTER (tcpdump -ddd text),
 * -q (count requests, print nothing per request), -B ring buffer bytes.
 * -c stops once packets seen plus packets dropped reach the count (events, in ringbuf mode).
 * ringbuf mode needs -DXHDR_EVENTS and the extractor's -D limits, so struct xhdr_event matches.
 * On exit it prints "stats packets=N requests=N drops=N" on stderr; "ready" once the ring is bound.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/types.h>
/* The flag and mode values are the extractor's own, so both write the same lines. */
#include "xhdr_event.h"

#define MAX_PORTS 16
#define MAX_RULES 8
#define NAME_MAX_LEN 32
#define METHOD_MAX 16
#define SCHEME_MAX 16
#define MAX_REQUESTS 8
#define VALUE_MAX 256
#define TARGET_MAX 512
#define FRAME_MAX 65536

struct config {
	uint16_t ports[MAX_PORTS];
	int nports;
	char names[MAX_RULES][NAME_MAX_LEN + 1];
	size_t name_len[MAX_RULES];
	int modes[MAX_RULES];
	int nrules;
	size_t max_header_lines, max_value_len, max_target_len, max_scan_bytes, max_requests;
	uint64_t k0, k1;
};

struct flow {
	int family;
	uint8_t saddr[16], daddr[16];
	uint16_t sport, dport;
	uint16_t vlan_ids[2];
	int vlan_count;
};

struct slot {
	uint8_t flags;
	size_t length;
	uint8_t value[VALUE_MAX];
	size_t value_len;
	uint64_t hash;
};

struct request {
	const uint8_t *method, *target;
	size_t method_len, target_seen;
	int version;
	int line_cut;
	unsigned int flags;
	size_t header_lines;
	struct slot slots[MAX_RULES];
};

static struct config cfg = {
	.max_header_lines = 32, .max_value_len = 128, .max_target_len = 128,
	.max_scan_bytes = 1024, .max_requests = 4,
};
static uint8_t tchar[256], target_char[256];
static volatile sig_atomic_t stop;
static unsigned long long n_packets, n_requests;
static int quiet;

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

static int watched(uint16_t port)
{
	int i;

	for (i = 0; i < cfg.nports; i++)
		if (cfg.ports[i] == port)
			return 1;
	return 0;
}

/* Returns 0 and sets the flow and payload for a TCP segment to a watched port with a payload. */
static int read_layers(const uint8_t *f, size_t len, struct flow *flow,
		       const uint8_t **payload, size_t *payload_len)
{
	size_t off = 14, l4, ip_end, hl, total;
	uint16_t type;

	if (len < 14)
		return -1;
	type = u16(f + 12);
	flow->vlan_count = 0;
	while ((type == 0x8100 || type == 0x88a8) && flow->vlan_count < 2) {
		if (len < off + 4)
			return -1;
		flow->vlan_ids[flow->vlan_count++] = u16(f + off) & 0x0fff;
		type = u16(f + off + 2);
		off += 4;
	}
	if (type == 0x8100 || type == 0x88a8)
		return -1;
	if (type == 0x0800) {
		if (len < off + 20 || f[off] >> 4 != 4)
			return -1;
		hl = (f[off] & 0x0f) * 4;
		total = u16(f + off + 2);
		if (hl < 20 || len < off + hl || total < hl)
			return -1;
		if (u16(f + off + 6) & 0x1fff || f[off + 9] != 6)
			return -1;
		flow->family = 4;
		memcpy(flow->saddr, f + off + 12, 4);
		memcpy(flow->daddr, f + off + 16, 4);
		l4 = off + hl;
		ip_end = off + total < len ? off + total : len;
	} else if (type == 0x86dd) {
		if (len < off + 40 || f[off] >> 4 != 6 || f[off + 6] != 6)
			return -1;	/* extension headers (R5) are not TCP either */
		flow->family = 6;
		memcpy(flow->saddr, f + off + 8, 16);
		memcpy(flow->daddr, f + off + 24, 16);
		l4 = off + 40;
		total = 40 + u16(f + off + 4);
		ip_end = off + total < len ? off + total : len;
	} else {
		return -1;
	}
	if (l4 + 20 > ip_end)
		return -1;
	hl = (f[l4 + 12] >> 4) * 4;
	if (hl < 20 || l4 + hl > ip_end)
		return -1;
	flow->sport = u16(f + l4);
	flow->dport = u16(f + l4 + 2);
	if (!watched(flow->dport) || l4 + hl == ip_end)
		return -1;
	*payload = f + l4 + hl;
	*payload_len = ip_end - l4 - hl;
	return 0;
}

/* --- Requests: R9-R14 ------------------------------------------------------------------------ */

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
	if (v[after] == '\n')
		return (long)after + 1;
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

/* R12, R13: one non-empty header line; returns where the next line starts. */
static size_t field_line(const uint8_t *v, size_t n, size_t start, struct request *req)
{
	const uint8_t *lf = memchr(v + start, '\n', n - start);
	const uint8_t *line = v + start, *colon, *val;
	size_t len = lf ? (size_t)(lf - line) : n - start, name_len, i, vlen;
	int cut = !lf, bad = 0, index;

	colon = memchr(line, ':', len);
	name_len = colon ? (size_t)(colon - line) : len;
	for (i = 0; i < name_len; i++)
		if (!tchar[line[i]])
			break;
	if (i < name_len)
		bad = 1;			/* obs-fold, whitespace or CR before the colon */
	else if (!colon)
		bad = !cut;			/* a colon-less line is bad once its LF is seen */
	else if (name_len == 0)
		bad = 1;
	if (bad)
		req->flags |= XHDR_F_BAD_LINE;
	if (!bad && colon && name_len) {
		index = slot_of(line, name_len);
		if (index >= 0) {
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
			fill(&req->slots[index], cfg.modes[index], val, vlen, cut);
		}
	}
	return cut ? n : (size_t)(lf - v) + 1;
}

/* R11: the header section; returns where a next request may start, or -1. */
static long header_section(const uint8_t *v, size_t n, size_t pos, struct request *req)
{
	for (;;) {
		if (pos == n || (pos + 1 == n && v[pos] == '\r')) {
			req->flags |= XHDR_F_HEADERS_CUT;
			return -1;
		}
		if (v[pos] == '\r' && v[pos + 1] == '\n')
			return (long)pos + 2;
		if (v[pos] == '\n')
			return (long)pos + 1;
		if (req->header_lines == cfg.max_header_lines) {
			req->flags |= XHDR_F_TOO_MANY_HEADERS;
			return -1;
		}
		req->header_lines++;
		pos = field_line(v, n, pos, req);
	}
}

/* R8, R10, R14: the requests of one view, at most cfg.max_requests; returns how many. */
static int scan(const uint8_t *v, size_t n, struct request *reqs)
{
	long pos = 0, next;
	int count = 0;

	while (pos >= 0 && (size_t)pos < n && (size_t)count < cfg.max_requests) {
		struct request *req = &reqs[count];

		memset(req, 0, sizeof(*req));
		next = request_line(v, n, (size_t)pos, req);
		if (next < 0 || (count && next == 0))
			break;
		count++;
		if (next == 0)
			break;
		pos = header_section(v, n, (size_t)next, req);
	}
	return count;
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

/* One frame, arrival to extracted fields: R1-R14, then the log line unless quiet. */
static int handle_frame(const uint8_t *frame, size_t len, int print)
{
	static struct request reqs[MAX_REQUESTS];
	const uint8_t *payload;
	size_t payload_len, view_len;
	struct flow flow;
	int count, i;

	n_packets++;
	if (read_layers(frame, len, &flow, &payload, &payload_len))
		return 0;
	view_len = payload_len < cfg.max_scan_bytes ? payload_len : cfg.max_scan_bytes;
	count = scan(payload, view_len, reqs);
	n_requests += count;
	if (print)
		for (i = 0; i < count; i++)
			print_event(stdout, &flow, &reqs[i], i,
				    payload_len > view_len ? XHDR_F_SCAN_LIMIT : 0);
	return count;
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
	while (!stop && (!max_packets || n_packets + dropped < max_packets)) {
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
	fprintf(stderr, "stats packets=%llu requests=%llu drops=%llu\n", n_packets, n_requests, dropped);
	return 0;
}

/* --- Event consumer: the extractor's ring buffer, read the way libbpf reads it ---------------- */

#ifdef XHDR_EVENTS

#define RINGBUF_BUSY (1U << 31)
#define RINGBUF_DISCARD (1U << 30)
#define RINGBUF_HDR 8

static void print_record(const struct xhdr_event *e)
{
	struct request req = { 0 };
	struct flow flow = { 0 };
	int i;

	flow.family = e->family;
	memcpy(flow.saddr, e->saddr, 16);
	memcpy(flow.daddr, e->daddr, 16);
	flow.sport = e->sport;
	flow.dport = e->dport;
	flow.vlan_count = e->vlan_count;
	memcpy(flow.vlan_ids, e->vlan_ids, sizeof(flow.vlan_ids));
	req.method = e->method;
	req.method_len = e->method_len;
	req.target = e->data;
	req.target_seen = e->target_length;
	req.version = e->version;
	req.flags = e->flags & ~(XHDR_F_TARGET_TRUNCATED | XHDR_F_LINE_CUT);
	req.line_cut = !!(e->flags & XHDR_F_LINE_CUT);
	req.header_lines = e->header_lines;
	for (i = 0; i < cfg.nrules; i++) {
		req.slots[i].flags = e->slots[i].flags;
		req.slots[i].length = e->slots[i].length;
		req.slots[i].hash = e->slots[i].hash;
		req.slots[i].value_len = e->slots[i].value_len;
		memcpy(req.slots[i].value, e->data + e->slots[i].value_off, e->slots[i].value_len);
	}
	print_event(stdout, &flow, &req, e->request_index, 0);
}

/* Everything between the consumer and producer positions; returns how many events were read. */
static unsigned long long drain(volatile unsigned long *consumer, const unsigned long *producer,
				const uint8_t *data, unsigned long mask)
{
	unsigned long cons = *consumer, prod = __atomic_load_n(producer, __ATOMIC_ACQUIRE);
	unsigned long long count = 0;

	while (cons < prod) {
		const uint8_t *hdr = data + (cons & mask);
		uint32_t len = __atomic_load_n((const uint32_t *)hdr, __ATOMIC_ACQUIRE);

		if (len & RINGBUF_BUSY)
			break;
		cons += ((len & ~(RINGBUF_BUSY | RINGBUF_DISCARD)) + RINGBUF_HDR + 7) & ~7UL;
		if (!(len & RINGBUF_DISCARD)) {
			count++;
			if (!quiet)
				print_record((const struct xhdr_event *)(hdr + RINGBUF_HDR));
		}
		__atomic_store_n(consumer, cons, __ATOMIC_RELEASE);
		prod = __atomic_load_n(producer, __ATOMIC_ACQUIRE);
	}
	return count;
}

static int consume(int fd, unsigned long size, unsigned long long max_events, double seconds)
{
	long page = sysconf(_SC_PAGESIZE);
	struct epoll_event ev = { .events = EPOLLIN }, out;
	struct timespec t0, now;
	volatile unsigned long *consumer;
	const unsigned long *producer;
	int ep = epoll_create1(0);
	uint8_t *ro;

	consumer = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ro = mmap(NULL, page + 2 * size, PROT_READ, MAP_SHARED, fd, page);
	if (consumer == MAP_FAILED || ro == MAP_FAILED || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
		fprintf(stderr, "capture: ring buffer fd %d: %s\n", fd, strerror(errno));
		return 1;
	}
	producer = (const unsigned long *)ro;
	fprintf(stderr, "ready\n");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop && (!max_events || n_requests < max_events)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (seconds > 0 && now.tv_sec - t0.tv_sec + (now.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
			break;
		n_requests += drain(consumer, producer, ro + page, size - 1);
		if (!quiet)
			fflush(stdout);
		epoll_wait(ep, &out, 1, 100);
	}
	n_requests += drain(consumer, producer, ro + page, size - 1);	/* what came before the stop */
	fflush(stdout);
	fprintf(stderr, "stats packets=%llu requests=%llu drops=0\n", n_requests, n_requests);
	return 0;
}
#endif

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
	       n_requests);
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
	unsigned long ring_bytes = 0;
	const char *filter = NULL;
	double seconds = 0;
	int opt;

	tables();
	while ((opt = getopt(argc, argv, "p:H:k:L:V:T:S:R:c:t:f:qB:")) != -1) {
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
		case 'c': max_packets = strtoull(optarg, NULL, 10); break;
		case 't': seconds = atof(optarg); break;
		case 'f': filter = optarg; break;
		case 'q': quiet = 1; break;
		case 'B': ring_bytes = strtoul(optarg, NULL, 10); break;
		default:
			return 2;
		}
	}
	if (cfg.max_value_len > VALUE_MAX || cfg.max_target_len > TARGET_MAX ||
	    cfg.max_requests > MAX_REQUESTS || !cfg.nports || !cfg.nrules) {
		fprintf(stderr, "capture: limits out of range, or no -p/-H given\n");
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (optind + 2 == argc && !strcmp(argv[optind], "ring"))
		return capture(argv[optind + 1], filter, max_packets, seconds);
#ifdef XHDR_EVENTS
	if (optind + 2 == argc && !strcmp(argv[optind], "ringbuf") && ring_bytes)
		return consume(atoi(argv[optind + 1]), ring_bytes, max_packets, seconds);
#endif
	if (optind + 2 == argc && !strcmp(argv[optind], "file"))
		return from_file(argv[optind + 1], 0);
	if (optind + 3 == argc && !strcmp(argv[optind], "bench"))
		return from_file(argv[optind + 1], atol(argv[optind + 2]));
	fprintf(stderr, "capture: usage: capture [options] ring IFNAME | file PATH | bench PATH N\n");
	return 2;
}
