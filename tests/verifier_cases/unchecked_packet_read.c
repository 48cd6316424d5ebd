// xhdr-expect: reject "invalid access to packet"
/* Negative control: reads the first byte of the frame without comparing against data_end first. */
#include <uapi/linux/bpf.h>

int xdp_unchecked_read(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;

	if (data[0] == 0xff)
		return XDP_DROP;
	return XDP_PASS;
}
