/*
 * Negative control of the kernel matrix: bpf_ktime_get_coarse_ns() arrived in Linux 5.11, so the host's
 * verifier accepts this program and 5.10's rejects it for an unknown helper.
 */
#include <uapi/linux/bpf.h>

BPF_ARRAY(stamps, __u64, 1);

static __u64 (*coarse_ns)(void) = (void *)BPF_FUNC_ktime_get_coarse_ns;

int xdp_coarse_clock(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *stamp = stamps.lookup(&key);

	if (stamp)
		*stamp = coarse_ns();
	return XDP_PASS;
}
