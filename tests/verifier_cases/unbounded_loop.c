// xhdr-expect: reject "infinite loop detected"
/* Negative control: the loop's counter wraps around before it reaches its bound, so it never ends. */
#include <uapi/linux/bpf.h>

int xdp_unbounded_loop(struct xdp_md *ctx)
{
	unsigned int i = 0;

	while (i < 8) {
		asm volatile("" : "+r"(i));
		i = (i + 1) & 3;
	}
	return XDP_PASS;
}
