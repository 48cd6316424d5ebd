// SPDX-License-Identifier: GPL-2.0
// xhdr-expect: accept
/*
 * A libbpf-style XDP program with global data, built with clang at test time: its verdict depends on a
 * read-only global (.rodata) and it counts frames in a zeroed one (.bss). libbpf turns both into array maps
 * and refers to them by ld_imm64 of a map value, so the kernel matrix must copy .rodata's contents and relocate
 * those loads for the guests (tests/test_kernel_matrix.py): were either wrong, the guest's verdicts would differ
 * from the host's.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 frames_to_pass = 64;	/* .rodata: volatile, so clang loads it instead of folding it */
__u64 frames_seen;				/* .bss */

SEC("xdp")
int global_port(struct xdp_md *ctx)
{
	/*
	 * The first frames_to_pass frames pass, the rest are dropped: a verdict that needs both globals. The count
	 * is read, then added to without fetching: an atomic add that returns the old value (BPF_FETCH) is refused
	 * by Linux 5.10 ("BPF_STX uses reserved fields"); it came in 5.12.
	 */
	if (frames_seen >= frames_to_pass)
		return XDP_DROP;
	__sync_fetch_and_add(&frames_seen, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
