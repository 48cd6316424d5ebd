// xhdr-expect: accept
/* Positive control: the same read as unchecked_packet_read.c, after the bounds check the verifier needs. */
#include <uapi/linux/bpf.h>

BPF_ARRAY(drops, __u64, 1);

int xdp_bounds_checked(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	unsigned char *data_end = (unsigned char *)(long)ctx->data_end;
	__u32 key = 0;
	__u64 *count;

	if (data + 1 > data_end || data[0] != 0xff)
		return XDP_PASS;
	count = drops.lookup(&key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return XDP_DROP;
}
