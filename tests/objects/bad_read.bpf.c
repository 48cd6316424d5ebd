// A libbpf-style XDP program the verifier must reject: it reads the packet without checking its length.
// xhdr-expect: reject "invalid access to packet"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int bad_read(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	if (data[0] == 0xff)
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
