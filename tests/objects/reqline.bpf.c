// SPDX-License-Identifier: GPL-2.0
// xhdr-expect: accept
/*
 * An example of a user's own parser, written in libbpf style and independent of bpf/xhdr.c: it logs the method
 * and target of each TCP segment to port 80 (IPv4 or IPv6, no VLAN tag, no IPv6 extension header, no IPv4
 * fragment) whose payload starts with a request line, one ring-buffer record per such segment. Its decoder and
 * its oracle (what it should log for a frame, in Python) are tests/objects/reqline.py; tests/test_example_parser.py
 * runs it through the harness the way a user would: the pytest plugin, the fuzzer and the cost benchmark.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define METHOD_MAX 16
#define TARGET_MAX 64
#define HTTP_PORT 80
#define IP_FRAGMENT 0x3FFF	/* MF and the fragment offset */
#define FRAME_MASK 0x3FFF	/* frames are shorter than 16 KiB */

struct request_line {
	__u8 method_len;
	__u8 target_len;
	__u8 truncated;		/* the target is longer than TARGET_MAX */
	__u8 zero;
	char method[METHOD_MAX];
	char target[TARGET_MAX];
};

#ifndef RING_PAGES
#define RING_PAGES 64	/* tests/test_example_parser.py builds it with a one-page ring too */
#endif

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RING_PAGES * 4096);
} lines SEC(".maps");

/* The payload of a segment to port 80: [*start, *stop) as offsets into the frame; 0 when there is none. */
static __always_inline int payload_of(struct xdp_md *ctx, __u32 *start, __u32 *stop)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;
	__u32 ip_end;

	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->ihl < 5 || ip->protocol != IPPROTO_TCP ||
		    (ip->frag_off & bpf_htons(IP_FRAGMENT)))
			return 0;
		tcp = (void *)ip + ip->ihl * 4;
		ip_end = sizeof(*eth) + bpf_ntohs(ip->tot_len);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return 0;
		tcp = (void *)(ip6 + 1);
		ip_end = sizeof(*eth) + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	} else {
		return 0;
	}
	if ((void *)(tcp + 1) > end || tcp->dest != bpf_htons(HTTP_PORT) || tcp->doff < 5)
		return 0;
	*start = (void *)tcp - data + tcp->doff * 4;
	/* Ethernet padding is not payload; a frame cut short ends it early */
	*stop = ip_end < end - data ? ip_end : end - data;
	return *start < *stop;
}

/*
 * The byte at frame offset `at`, or -1 past `stop`. Every read checks the packet's end itself: the verifier
 * trusts a comparison with data_end only, not with an offset computed from the IP header. The mask bounds
 * the offset so that offset + 1 stays within what it tracks as a packet offset (0xFFFF): with 0xFFFF itself
 * the check would prove nothing.
 */
static __always_inline int byte_at(struct xdp_md *ctx, __u32 at, __u32 stop)
{
	__u8 *p = (__u8 *)(long)ctx->data + (at & FRAME_MASK);

	if (at >= stop || (void *)(p + 1) > (void *)(long)ctx->data_end)
		return -1;
	return *p;
}

SEC("xdp")
int reqline(struct xdp_md *ctx)
{
	struct request_line rec = {};
	__u32 start, stop, i;
	int c;

	if (!payload_of(ctx, &start, &stop))
		return XDP_PASS;
	/* the method: 1 to METHOD_MAX upper-case letters, then SP */
	for (i = 0; i <= METHOD_MAX; i++) {
		c = byte_at(ctx, start + i, stop);
		if (c == ' ')
			break;
		if (c < 'A' || c > 'Z' || i == METHOD_MAX)
			return XDP_PASS;
		rec.method[i] = c;
	}
	if (i == 0)
		return XDP_PASS;
	rec.method_len = i;
	start += i + 1;
	/*
	 * The target: up to SP, CR, LF or the payload's end, the first TARGET_MAX bytes kept. Unrolled for Linux
	 * 5.10: clang closed this loop with a fall-through into its head, and 5.10's verifier refuses a back-edge
	 * that is a fall-through ("back-edge from insn 175 to 176"); later kernels accept it. The kernel matrix,
	 * `xhdr verify --kernels 5.10,host`, found this.
	 */
#pragma unroll
	for (i = 0; i <= TARGET_MAX; i++) {
		c = byte_at(ctx, start + i, stop);
		if (c < 0 || c == ' ' || c == '\r' || c == '\n')
			break;
		if (i == TARGET_MAX) {
			rec.truncated = 1;
			break;
		}
		rec.target[i] = c;
	}
	rec.target_len = i;
#ifdef PLANTED_SLOWDOWN
	/*
	 * A second, plainly slower build of the same program, for the A/B gate's test (tests/test_example_parser.py):
	 * PLANTED_SLOWDOWN rounds of arithmetic on the record's spare byte, which the decoder ignores.
	 */
	for (i = 0; i < PLANTED_SLOWDOWN; i++)
		rec.zero = rec.zero * 31 + i;
#endif
	bpf_ringbuf_output(&lines, &rec, sizeof(rec), 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
