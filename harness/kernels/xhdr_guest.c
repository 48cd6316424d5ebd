// SPDX-License-Identifier: GPL-2.0
/*
 * xhdr_guest: the static loader xhdr runs as init inside a qemu guest.
 *
 * The host (harness/kernels/guest.py) compiles each variant with BCC and writes
 * one description file: for every variant its maps (type, sizes, flags and
 * the entries user space wrote), its programs (the instructions BCC
 * produced, and which ld_imm64 refers to which map) and its prog-array
 * slots; then the corpus frames. This loader recreates the maps with the
 * bpf() syscall, patches each map reference with the new fd, loads every
 * program with a statistics log, fills the prog array and runs every frame
 * through BPF_PROG_TEST_RUN on the entry program. No libbpf: the guest has
 * no libraries, and the raw syscall keeps the loader honest about what the
 * guest kernel itself accepts.
 *
 * Output goes to the file named by argv[2] (the second serial port), one
 * record per line, hex for bytes, so that kernel messages on the console
 * can never interleave with it:
 *   V <variant>
 *   P <prog> ok <verified_insns|-> <processed|->
 *   P <prog> rejected <errno> <processed|-> <hex of the log tail>
 *   M <variant> <errno> <map>             (a map the kernel refused)
 *   F <frame> <retval|-errno> <c0,c1,...> <hex event> <hex event> ...
 *   END
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_MAPS 16
#define MAX_PROGS 16
#define STATS_LOG_SIZE (1 << 16)
#define TRACE_LOG_SIZE (1 << 24)
#define LOG_TAIL 3000
#define RINGBUF_BUSY (1U << 31)
#define RINGBUF_DISCARD (1U << 30)
#define RINGBUF_HDR 8
#define LOG_LEVEL_TRACE 1
#define LOG_LEVEL_STATS 4	/* BPF_LOG_STATS, not in the UAPI header */

struct map_desc {
	char name[64];
	uint32_t type, key_size, value_size, max_entries, flags;
	int fd;
	void *consumer, *producer, *data;	/* ring buffers only */
	size_t page;
};

struct prog_desc {
	char name[64];
	uint32_t type;		/* enum bpf_prog_type: XDP, or SCHED_CLS for the responses program */
	uint32_t insn_cnt;
	struct bpf_insn *insns;
	int fd;
};

static const uint8_t *cur, *end;
static FILE *out;
static long page_size;
static int ncpus;

static void die(const char *what)
{
	fprintf(out, "ERROR %s: %s\n", what, strerror(errno));
	fflush(out);
	exit(1);
}

static uint32_t get_u32(void)
{
	uint32_t value;

	if (end - cur < 4) {
		errno = EINVAL;
		die("description truncated");
	}
	memcpy(&value, cur, 4);
	cur += 4;
	return value;
}

static const uint8_t *get_bytes(uint32_t len)
{
	const uint8_t *start = cur;

	if ((size_t)(end - cur) < len) {
		errno = EINVAL;
		die("description truncated");
	}
	cur += len;
	return start;
}

static void get_name(char *buf, size_t size)
{
	uint32_t len = get_u32();
	const uint8_t *bytes = get_bytes(len);

	if (len >= size)
		len = size - 1;
	memcpy(buf, bytes, len);
	buf[len] = 0;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static void hex(const void *data, size_t len)
{
	const uint8_t *bytes = data;
	size_t i;

	for (i = 0; i < len; i++)
		fprintf(out, "%02x", bytes[i]);
}

static int possible_cpus(void)
{
	char buf[64] = "";
	int first = 0, last = 0;
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");

	if (!f)
		return 1;
	if (fgets(buf, sizeof(buf), f) &&
	    sscanf(buf, "%d-%d", &first, &last) < 2)
		last = first;
	fclose(f);
	return last + 1;
}

static int create_map(struct map_desc *m)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.map_type = m->type;
	attr.key_size = m->key_size;
	attr.value_size = m->value_size;
	attr.max_entries = m->max_entries;
	attr.map_flags = m->flags;
	strncpy(attr.map_name, m->name, BPF_OBJ_NAME_LEN - 1);
	m->fd = sys_bpf(BPF_MAP_CREATE, &attr);
	if (m->fd < 0)
		return -errno;
	if (m->type == BPF_MAP_TYPE_RINGBUF) {
		m->page = page_size;
		m->consumer = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
				   MAP_SHARED, m->fd, 0);
		m->producer = mmap(NULL, page_size + 2 * (size_t)m->max_entries,
				   PROT_READ, MAP_SHARED, m->fd, page_size);
		if (m->consumer == MAP_FAILED || m->producer == MAP_FAILED)
			die("mmap of the ring buffer");
		m->data = (uint8_t *)m->producer + page_size;
	}
	return 0;
}

static int update_elem(int fd, const void *key, const void *value)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.map_fd = fd;
	attr.key = (uintptr_t)key;
	attr.value = (uintptr_t)value;
	return sys_bpf(BPF_MAP_UPDATE_ELEM, &attr) ? -errno : 0;
}

/* processed insns from a BPF_LOG_STATS log, or -1. */
static long processed(const char *log)
{
	const char *line = strstr(log, "processed ");
	long n;

	if (line && sscanf(line, "processed %ld insns", &n) == 1)
		return n;
	return -1;
}

static int load_prog(struct prog_desc *p, char *log, uint32_t log_size,
		     uint32_t level)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	log[0] = 0;
	attr.prog_type = p->type;
	attr.insns = (uintptr_t)p->insns;
	attr.insn_cnt = p->insn_cnt;
	attr.license = (uintptr_t)"GPL";
	attr.log_buf = (uintptr_t)log;
	attr.log_size = log_size;
	attr.log_level = level;
	strncpy(attr.prog_name, p->name, BPF_OBJ_NAME_LEN - 1);
	p->fd = sys_bpf(BPF_PROG_LOAD, &attr);
	return p->fd < 0 ? -errno : 0;
}

/* verified_insns (Linux 5.16+), or -1 where the kernel's bpf_prog_info is shorter. */
static long verified_insns(int fd)
{
	struct bpf_prog_info info;
	union bpf_attr attr;

	memset(&info, 0, sizeof(info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = (uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr))
		return -1;
	if (attr.info.info_len < offsetof(struct bpf_prog_info, verified_insns) +
				 sizeof(info.verified_insns))
		return -1;
	return info.verified_insns;
}

static void sum_counters(struct map_desc *m, uint64_t *sums, uint32_t n)
{
	size_t stride = (m->value_size + 7) & ~7U;
	uint8_t *values = calloc(ncpus, stride);
	union bpf_attr attr;
	uint32_t key = 0, i;
	int cpu;

	memset(sums, 0, n * sizeof(*sums));
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = m->fd;
	attr.key = (uintptr_t)&key;
	attr.value = (uintptr_t)values;
	if (!values || sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr))
		die("reading the counters");
	for (cpu = 0; cpu < ncpus; cpu++)
		for (i = 0; i < n; i++) {
			uint64_t v;

			memcpy(&v, values + cpu * stride + i * 8, 8);
			sums[i] += v;
		}
	free(values);
}

/* Prints every committed ring-buffer record and consumes it. */
static void drain_ringbuf(struct map_desc *m)
{
	uint64_t *consumer_pos = m->consumer;
	uint64_t *producer_pos = m->producer;
	uint64_t cons = __atomic_load_n(consumer_pos, __ATOMIC_ACQUIRE);
	uint64_t prod = __atomic_load_n(producer_pos, __ATOMIC_ACQUIRE);
	uint64_t mask = m->max_entries - 1;

	while (cons < prod) {
		uint8_t *hdr = (uint8_t *)m->data + (cons & mask);
		uint32_t len = __atomic_load_n((uint32_t *)hdr, __ATOMIC_ACQUIRE);

		if (len & RINGBUF_BUSY)
			break;
		cons += (RINGBUF_HDR + (len & ~(RINGBUF_BUSY | RINGBUF_DISCARD)) + 7) & ~7ULL;
		if (!(len & RINGBUF_DISCARD)) {
			fputc(' ', out);
			hex(hdr + RINGBUF_HDR, len & ~(RINGBUF_BUSY | RINGBUF_DISCARD));
		}
		__atomic_store_n(consumer_pos, cons, __ATOMIC_RELEASE);
	}
}

static void run_frames(const uint8_t *frames, int entry, struct map_desc *counters,
		       uint32_t ncounters, struct map_desc *ring)
{
	const uint8_t *saved = cur;
	uint64_t before[64], after[64];
	uint32_t nframes, f, i;

	cur = frames;
	nframes = get_u32();
	if (ncounters > 64)
		ncounters = 64;
	for (f = 0; f < nframes; f++) {
		uint32_t len = get_u32();
		const uint8_t *data = get_bytes(len);
		uint8_t data_out[4096];
		union bpf_attr attr;
		long ret;

		if (counters)
			sum_counters(counters, before, ncounters);
		memset(&attr, 0, sizeof(attr));
		attr.test.prog_fd = entry;
		attr.test.data_in = (uintptr_t)data;
		attr.test.data_size_in = len;
		attr.test.data_out = (uintptr_t)data_out;
		attr.test.data_size_out = sizeof(data_out);
		attr.test.repeat = 1;
		ret = sys_bpf(BPF_PROG_TEST_RUN, &attr) ? -errno : (long)attr.test.retval;
		fprintf(out, "F %u %ld ", f, ret);
		if (counters) {
			sum_counters(counters, after, ncounters);
			for (i = 0; i < ncounters; i++)
				fprintf(out, "%s%llu", i ? "," : "",
					(unsigned long long)(after[i] - before[i]));
		} else {
			fputc('-', out);
		}
		if (ring)
			drain_ringbuf(ring);
		fputc('\n', out);
	}
	fflush(out);
	cur = saved;
}

static void print_tail(const char *log)
{
	size_t len = strlen(log);

	fputc(' ', out);
	hex(len > LOG_TAIL ? log + len - LOG_TAIL : log,
	    len > LOG_TAIL ? LOG_TAIL : len);
}

static void run_variant(const uint8_t *frames, char *log)
{
	struct map_desc maps[MAX_MAPS];
	struct prog_desc progs[MAX_PROGS];
	uint32_t nmaps, nprogs, nslots, entry, counters, ncounters, ring;
	uint32_t i, j, loaded = 0;
	char variant[64];

	get_name(variant, sizeof(variant));
	fprintf(out, "V %s\n", variant);
	nmaps = get_u32();
	if (nmaps > MAX_MAPS) {
		errno = E2BIG;
		die("too many maps");
	}
	for (i = 0; i < nmaps; i++) {
		struct map_desc *m = &maps[i];
		uint32_t nentries;
		int err;

		get_name(m->name, sizeof(m->name));
		m->type = get_u32();
		m->key_size = get_u32();
		m->value_size = get_u32();
		m->max_entries = get_u32();
		m->flags = get_u32();
		nentries = get_u32();
		err = create_map(m);
		if (err)
			fprintf(out, "M %s %d %s\n", variant, -err, m->name);
		for (j = 0; j < nentries; j++) {
			const uint8_t *key = get_bytes(m->key_size);
			const uint8_t *value = get_bytes(m->value_size);

			if (!err && update_elem(m->fd, key, value))
				die("writing a map entry");
		}
	}
	nprogs = get_u32();
	if (nprogs > MAX_PROGS) {
		errno = E2BIG;
		die("too many programs");
	}
	for (i = 0; i < nprogs; i++) {
		struct prog_desc *p = &progs[i];
		uint32_t nrelocs;

		get_name(p->name, sizeof(p->name));
		p->type = get_u32();
		p->insn_cnt = get_u32();
		p->insns = malloc(p->insn_cnt * sizeof(*p->insns));
		if (!p->insns)
			die("malloc");
		memcpy(p->insns, get_bytes(p->insn_cnt * 8), p->insn_cnt * 8);
		nrelocs = get_u32();
		for (j = 0; j < nrelocs; j++) {
			uint32_t insn = get_u32(), map = get_u32();

			if (insn >= p->insn_cnt || map >= nmaps) {
				errno = EINVAL;
				die("bad relocation");
			}
			p->insns[insn].imm = maps[map].fd;
		}
	}
	entry = get_u32();
	nslots = get_u32();
	for (i = 0; i < nprogs; i++) {
		struct prog_desc *p = &progs[i];
		int err = load_prog(p, log, STATS_LOG_SIZE, LOG_LEVEL_STATS);
		long n = processed(log);

		if (!err) {
			long v = verified_insns(p->fd);

			loaded++;
			fprintf(out, "P %s ok ", p->name);
			fprintf(out, v < 0 ? "-" : "%ld", v);
			fprintf(out, n < 0 ? " -\n" : " %ld\n", n);
			continue;
		}
		/* Again with the instruction trace, whose tail says why. */
		load_prog(p, log, TRACE_LOG_SIZE, LOG_LEVEL_TRACE);
		if (n < 0)
			n = processed(log);
		fprintf(out, "P %s rejected %d ", p->name, -err);
		fprintf(out, n < 0 ? "-" : "%ld", n);
		print_tail(log);
		fputc('\n', out);
	}
	for (i = 0; i < nslots; i++) {
		uint32_t map = get_u32(), key = get_u32(), prog = get_u32();

		if (map < nmaps && prog < nprogs && progs[prog].fd >= 0)
			update_elem(maps[map].fd, &key, &progs[prog].fd);
	}
	counters = get_u32();
	ncounters = get_u32();
	ring = get_u32();
	if (loaded == nprogs && entry < nprogs)
		run_frames(frames, progs[entry].fd,
			   counters < nmaps ? &maps[counters] : NULL, ncounters,
			   ring < nmaps ? &maps[ring] : NULL);
	for (i = 0; i < nprogs; i++) {
		if (progs[i].fd >= 0)
			close(progs[i].fd);
		free(progs[i].insns);
	}
	for (i = 0; i < nmaps; i++) {
		if (maps[i].type == BPF_MAP_TYPE_RINGBUF && maps[i].fd >= 0) {
			munmap(maps[i].consumer, page_size);
			munmap(maps[i].producer, page_size + 2 * (size_t)maps[i].max_entries);
		}
		if (maps[i].fd >= 0)
			close(maps[i].fd);
	}
	fflush(out);
}

int main(int argc, char **argv)
{
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	const uint8_t *frames;
	uint32_t nvariants, i;
	char *log;
	long size;
	FILE *f;
	uint8_t *buf;

	out = stdout;
	if (argc > 2) {
		out = fopen(argv[2], "w");
		if (!out) {
			out = stdout;
			die(argv[2]);
		}
	}
	/* Before 5.11 BPF memory is charged to RLIMIT_MEMLOCK (64 KiB by default). */
	if (setrlimit(RLIMIT_MEMLOCK, &unlimited))
		die("raising RLIMIT_MEMLOCK");
	page_size = sysconf(_SC_PAGESIZE);
	ncpus = possible_cpus();
	f = fopen(argc > 1 ? argv[1] : "/xhdr.desc", "rb");
	if (!f)
		die("opening the description");
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	buf = malloc(size);
	log = malloc(TRACE_LOG_SIZE);
	if (!buf || !log || fread(buf, 1, size, f) != (size_t)size)
		die("reading the description");
	fclose(f);
	cur = buf;
	end = buf + size;
	if (memcmp(get_bytes(4), "XHD1", 4)) {
		errno = EINVAL;
		die("not an xhdr description");
	}
	frames = buf + get_u32();
	nvariants = get_u32();
	for (i = 0; i < nvariants; i++)
		run_variant(frames, log);
	fprintf(out, "END\n");
	fclose(out);
	return 0;
}
