// xhdr-expect: reject "invalid read from stack"
// xhdr-args: --least-privilege
/*
 * Negative control: hands a helper a stack value that was never written. The verifier lets a loader
 * with CAP_PERFMON or CAP_SYS_ADMIN (root) read uninitialised stack, but not one holding only CAP_BPF
 * and CAP_NET_ADMIN, so this case is verified as such a loader (xhdr verify --least-privilege).
 */
#include <uapi/linux/bpf.h>

BPF_ARRAY(last_seen, __u64, 1);

int xdp_uninitialised_stack(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 value;

	last_seen.update(&key, &value);
	return XDP_PASS;
}
