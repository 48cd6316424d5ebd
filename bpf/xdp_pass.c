/* SPDX-License-Identifier: GPL-2.0 */
/* The floor: an XDP program that does nothing, so cost figures can be read against what XDP itself costs. */
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
