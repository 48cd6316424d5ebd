// SPDX-License-Identifier: GPL-2.0
/*
 * consumer: the data path of `xhdr log`. It reads struct xhdr_event records straight out of
 * the extractor's ring buffer and writes one line per event, JSON or text, byte for byte as
 * harness/log/format.py (event_json, event_line) renders them; tests/test_consumer.py holds it
 * to that. Decoding each record in Python cost about 36 us, far more than the kernel spends
 * extracting the request.
 *
 * Only the head of struct xhdr_event (everything before data[]) and data_len are read. The -D
 * limits of the extractor size data[] but move nothing before it, so one binary serves every
 * configuration; the limits that say where the parts of data[] end, max_target_len (the target or
 * SNI) and max_value_len (a TLS event's ALPN bytes), come on the command line.
 *
 * An event is a request, a TLS ClientHello or a request's response (its kind field,
 * docs/EXTRACTION.md R21, R22, R25); all share the flow's fields, requests and ClientHellos the flags
 * word, each with flag names of its own.
 *
 * The ring buffer is read as libbpf reads it: the consumer page mapped writable, the producer
 * page and the data area (mapped twice in a row, so a record that wraps is contiguous) read-only.
 *
 * --format records writes the records themselves (docs/RECORDS.md): a line costs several times the
 * record it is made of, so a machine that reads the log can have the records and make lines later,
 * with --input, which reads such a file instead of the ring buffer.
 */
#define _GNU_SOURCE
#include <linux/bpf.h>
#include <linux/types.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xhdr_event.h"

/*
 * The extractor wakes readers once a CPU has written a batch to the ring (names.wake_bytes), so the wait
 * must also end on its own.
 */
#define WAIT_MS		100
#define OUT_BYTES	(1 << 20)
/*
 * Room a line needs besides its escaped bytes: names, flags, numbers, addresses. Generous on
 * purpose: it is only compared with the free space of the output buffer once per event.
 */
#define LINE_OVERHEAD	8192
#define EVENT_FLAGS	16
#define EVENT_FLAG_MASK	((1U << EVENT_FLAGS) - 1)	/* the flags Python has names for */
#define TLS_FLAGS	7
#define TLS_FLAG_MASK	((1U << TLS_FLAGS) - 1)
#define FLAG_TEXT_MAX	24
#define ONES		0x0101010101010101ULL
#define HIGHS		0x8080808080808080ULL
#define SLOT_FLAGS	4

enum format { FORMAT_JSON, FORMAT_TEXT, FORMAT_RECORDS };

/* One byte as it appears in a line: up to 6 output bytes, padded so a copy is one 8-byte store. */
struct esc {
	char s[7];
	unsigned char n;
};

struct rule {
	char name[XHDR_NAME_MAX + 1];
	enum xhdr_mode mode;
	char prefix[XHDR_NAME_MAX * 6 + 64];	/* what comes before the slot's own value: its name */
	size_t prefix_len;
};

struct settings {
	int ring_fd;
	const char *input;		/* --input: a records file to render instead of the ring buffer */
	size_t ring_bytes;
	size_t max_target_len;
	size_t max_value_len;		/* where a TLS event's kept ALPN bytes end */
	enum format format;
	unsigned long long count;	/* 0: no limit */
	const char *output;
	const char *audit_key;		/* --audit: chain the JSON lines with HMAC-SHA256 (docs/AUDIT.md) */
	struct rule rules[XHDR_SLOTS];
	int nrules;
	int request_id_slot;		/* the slot of an X-Request-ID rule in value mode, or -1 */
	int responses;			/* response events may come: --responses, or any records file */
};

/*
 * R25: the X-Request-ID of recent requests, so that a response's JSON line carries its request's
 * (harness/log/format.py's JsonLines keeps the same table). A request logged with the header takes
 * the entry its time and ports index, replacing what was there; the response that names the
 * request's time and flow takes it out.
 */
#define REQUEST_IDS	4096
#define REQUEST_ID_MAX	256		/* the largest max_value_len */

struct request_id {
	uint64_t ns;
	uint16_t sport, dport;
	uint8_t family;
	uint8_t used;
	uint8_t saddr[16];
	size_t len;
	__u8 value[REQUEST_ID_MAX];
};

static struct request_id request_ids[REQUEST_IDS];

/*
 * A records file (docs/RECORDS.md) is a section per run: this magic line, "max-target-len N",
 * "max-value-len N", a "header NAME:MODE" line per slot and an empty line, zero-padded to 8 bytes;
 * then each record as a 4-byte little-endian length, 4 zero bytes and the record, zero-padded to 8
 * bytes. Every record thus starts 8-byte aligned in a mapped file, and a length (below 2^24) never
 * reads as the magic. The number in the magic changes with the head of struct xhdr_event.
 */
#define RECORDS_MAGIC	"XHDR-RECORDS 4\n"
#define RECORDS_HEADER_MAX	(64 + XHDR_SLOTS * (XHDR_NAME_MAX + 32))
#define RECORD_PREFIX	8
#define RECORD_MAX	(1U << 24)
#define INPUT_BYTES	(1U << 20)	/* what one read of --input asks for */

/* The audit chain: each line's MAC covers the MAC of the line before it and the line itself. */
#define AUDIT_KEY_MIN	16
#define AUDIT_KEY_MAX	1024
#define AUDIT_MAC	32
/* What an audited line adds: ,"seq":<20 digits>,"mac":"<64 hex>" */
#define AUDIT_EXTRA	(8 + 20 + 8 + 2 * AUDIT_MAC + 2)

struct audit {
	EVP_MAC_CTX *ctx;
	unsigned char mac[AUDIT_MAC];	/* of the last line; zero before the first */
	unsigned long long seq;		/* of the last line */
};

struct ring {
	unsigned long *consumer;
	const unsigned long *producer;
	const __u8 *data;
	unsigned long mask;
};

struct out {
	char *buf;
	size_t len;
	size_t cap;
	int fd;
	const char *where;
	unsigned long long pending;	/* events in buf, not yet written */
	unsigned long long written;	/* events the output has taken */
};

/* The parts of a record a line is made of, each clamped to the record as Python slices clamp. */
struct view {
	const struct xhdr_event *ev;
	const __u8 *data;
	size_t data_len;
	size_t target_len;
	size_t method_len;
	const __u8 *sni;	/* TLS: the kept bytes of the server name */
	const __u8 *alpn;	/* TLS: the kept bytes of the ALPN list */
	size_t alpn_len;
	const __u8 *rule;	/* R27: the name of the request's rule (rule_len 0: none matched) */
	size_t rule_len;
};

static const char *const event_flag_names[EVENT_FLAGS] = {
	"TARGET_TRUNCATED", "LINE_CUT", "HEADERS_CUT", "SCAN_LIMIT", "TOO_MANY_HEADERS",
	"BAD_LINE", "TRANSFER_ENCODING", "BAD_CONTENT_LENGTH", "NAME_SPLIT", "BARE_LF",
	"OBS_FOLD", "WS_BEFORE_COLON", "CL_AND_TE", "TE_NOT_CHUNKED", "CONTROL_BYTE", "DROPPED",
};

static const char *const tls_flag_names[TLS_FLAGS] = {
	"SNI_TRUNCATED", "ALPN_TRUNCATED", "HELLO_CUT", "SCAN_LIMIT", "TOO_MANY_EXTENSIONS",
	"BAD_EXTENSIONS", "SPLIT_EXTENSION",
};

/* tls_version_name() of harness/core/event.py for 0x0300 to 0x0304; other versions are in hex. */
static const char *const tls_version_names[] = { "ssl3.0", "1.0", "1.1", "1.2", "1.3" };

static const char *const slot_flag_names[SLOT_FLAGS] = {
	"PRESENT", "TRUNCATED", "CUT", "REPEATED",
};

/* Action.label of harness/core/rules.py (R28). */
static const char *const action_names[] = {
	[XHDR_ACTION_NONE] = "none",
	[XHDR_ACTION_LOG] = "log",
	[XHDR_ACTION_DROP] = "drop",
	[XHDR_ACTION_COUNT] = "count",
	[XHDR_ACTION_SAMPLE] = "sample",
};

static const char *const mode_names[] = {
	[XHDR_MODE_VALUE] = "value",
	[XHDR_MODE_HASH] = "hash",
	[XHDR_MODE_AUTH] = "auth",
	[XHDR_MODE_PRESENCE] = "presence",
};

static struct esc json_esc[256];
static struct esc text_esc[256];
/* "\"PRESENT\",\"CUT\"" and so on for every combination of the four slot flags. */
static char slot_flags_json[1 << SLOT_FLAGS][64];
static size_t slot_flags_json_len[1 << SLOT_FLAGS];
static char event_flag_text[EVENT_FLAGS][FLAG_TEXT_MAX];
static char tls_flag_text[TLS_FLAGS][FLAG_TEXT_MAX];
static char dec_pairs[100][2];

static struct out out = { .fd = STDOUT_FILENO, .where = "stdout" };
static struct audit audit;
static int ready_said;
static volatile sig_atomic_t stopping;
static volatile sig_atomic_t reopening;	/* SIGUSR2: --output is to be opened again (log rotation) */

/* --- Ending ----------------------------------------------------------------------------------- */

/* Every exit after the ring is mapped says how many events were written: the parent reads it. */
static void __attribute__((noreturn)) finish(int code)
{
	if (ready_said)
		fprintf(stderr, "consumer events=%llu\n", out.written);
	exit(code);
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fputs("xhdr log: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	finish(1);
}

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static void on_reopen(int sig)
{
	(void)sig;
	reopening = 1;
}

/* --- Escape tables ---------------------------------------------------------------------------- */

static void set_esc(struct esc *e, const char *s)
{
	e->n = strlen(s);
	memcpy(e->s, s, e->n);
}

/*
 * json.dumps with ensure_ascii: only ' ' to '~' stay as they are (so DEL is escaped too), '"' and
 * '\\' and five controls get their short escapes, every other byte (a latin-1 character) is \u00xx.
 */
static void init_json_esc(void)
{
	char buf[8];
	int c;

	for (c = 0; c < 256; c++) {
		if (c >= ' ' && c <= '~') {
			buf[0] = c;
			buf[1] = 0;
		} else {
			snprintf(buf, sizeof(buf), "\\u%04x", c);
		}
		set_esc(&json_esc[c], buf);
	}
	set_esc(&json_esc['"'], "\\\"");
	set_esc(&json_esc['\\'], "\\\\");
	set_esc(&json_esc['\b'], "\\b");
	set_esc(&json_esc['\f'], "\\f");
	set_esc(&json_esc['\n'], "\\n");
	set_esc(&json_esc['\r'], "\\r");
	set_esc(&json_esc['\t'], "\\t");
}

/*
 * log_format.printable(): a latin-1 character that str.isprintable() rejects (C0, DEL, the C1
 * controls, NBSP and the soft hyphen) becomes \xNN; the others leave as UTF-8, as Python prints
 * them.
 */
static void init_text_esc(void)
{
	char buf[8];
	int c;

	for (c = 0; c < 256; c++) {
		if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) {
			snprintf(buf, sizeof(buf), "\\x%02x", c);
		} else if (c < 0x80) {
			buf[0] = c;
			buf[1] = 0;
		} else {
			buf[0] = (char)(0xc0 | (c >> 6));
			buf[1] = (char)(0x80 | (c & 0x3f));
			buf[2] = 0;
		}
		set_esc(&text_esc[c], buf);
	}
}

static void init_dec_pairs(void)
{
	int n;

	for (n = 0; n < 100; n++) {
		dec_pairs[n][0] = '0' + n / 10;
		dec_pairs[n][1] = '0' + n % 10;
	}
}

/* The text line names flags in lower case. */
static void lower_names(char (*text)[FLAG_TEXT_MAX], const char *const *names, int n)
{
	size_t i;
	int bit;

	for (bit = 0; bit < n; bit++) {
		for (i = 0; names[bit][i]; i++) {
			char c = names[bit][i];

			text[bit][i] = c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
		}
		text[bit][i] = 0;
	}
}

static void init_flag_names(void)
{
	int mask, bit;

	for (mask = 0; mask < 1 << SLOT_FLAGS; mask++) {
		char *p = slot_flags_json[mask];

		for (bit = 0; bit < SLOT_FLAGS; bit++) {
			if (!(mask & (1 << bit)))
				continue;
			p += sprintf(p, "%s\"%s\"", p == slot_flags_json[mask] ? "" : ",",
				     slot_flag_names[bit]);
		}
		slot_flags_json_len[mask] = p - slot_flags_json[mask];
	}
	lower_names(event_flag_text, event_flag_names, EVENT_FLAGS);
	lower_names(tls_flag_text, tls_flag_names, TLS_FLAGS);
}

/* --- Putting bytes into a line ---------------------------------------------------------------- */

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT_LIT(p, lit) put(p, lit, sizeof(lit) - 1)

static char *put_str(char *p, const char *s)
{
	return put(p, s, strlen(s));
}

/* Decimal digits of v: the count first, so put_u64() can write each pair where it belongs. */
static unsigned int decimal_digits(uint64_t v)
{
	unsigned int n = 1;

	for (; v >= 10000; v /= 10000)
		n += 4;
	return n + (v >= 10) + (v >= 100) + (v >= 1000);
}

/*
 * A JSON line holds about ten numbers: two digits per division, written from the last one backwards
 * straight into the line. Staging them in a buffer and copying it out cost more than the
 * divisions: the wide load of bytes just stored two at a time cannot be forwarded from the stores
 * and waits for them to reach the cache.
 */
static char *put_u64(char *p, uint64_t v)
{
	char *end = p + decimal_digits(v), *d = end;

	while (v >= 100) {
		d -= 2;
		memcpy(d, dec_pairs[v % 100], 2);
		v /= 100;
	}
	if (v >= 10)
		memcpy(d - 2, dec_pairs[v], 2);
	else
		d[-1] = '0' + v;
	return end;
}

/*
 * Eight hex digits at once: each nibble of a 32-bit value is spread into a byte of its own (nibble
 * i into byte i), turned into its digit (a nibble of 10 or more gains 'a' - '0' - 10), and the
 * word is byte-swapped so the most significant digit is stored first. A JSON line has a hash per
 * slot in the hash and auth modes.
 */
static char *put_hex8(char *p, uint32_t v)
{
	uint64_t x = v, letters;

	x = (x | x << 16) & 0x0000ffff0000ffffULL;
	x = (x | x << 8) & 0x00ff00ff00ff00ffULL;
	x = (x | x << 4) & 0x0f0f0f0f0f0f0f0fULL;
	letters = ((x + 0x0606060606060606ULL) >> 4) & ONES;
	x += 0x3030303030303030ULL + letters * ('a' - '0' - 10);
	x = __builtin_bswap64(x);
	memcpy(p, &x, 8);
	return p + 8;
}

static char *put_hex16(char *p, uint64_t v)
{
	p = put_hex8(p, v >> 32);
	return put_hex8(p, (uint32_t)v);
}

/* Four lower-case hex digits. */
static char *put_hex4(char *p, unsigned int v)
{
	int shift;

	for (shift = 12; shift >= 0; shift -= 4)
		*p++ = "0123456789abcdef"[(v >> shift) & 0xf];
	return p;
}

static char *put_tls_version(char *p, unsigned int version)
{
	if (version >= 0x0300 && version <= 0x0304)
		return put_str(p, tls_version_names[version - 0x0300]);
	p = PUT_LIT(p, "0x");
	return put_hex4(p, version);
}

/* Nonzero when a byte of x is below n (0 < n <= 128); exact as a yes or no. */
#define HAS_LESS(x, n)	(((x) - ONES * (n)) & ~(x) & HIGHS)
#define HAS_BYTE(x, b)	HAS_LESS((x) ^ (ONES * (b)), 1)

/*
 * Whether a word of 8 bytes has one that does not stand for itself: outside ' '..'~' in both
 * formats, and '"' or a backslash in JSON. A false yes only sends the word down the slow path.
 */
static inline uint64_t odd_bytes(uint64_t x, enum format format)
{
	uint64_t odd = HAS_LESS(x, 0x20) | (((x + ONES) | x) & HIGHS);

	if (format == FORMAT_JSON)
		odd |= HAS_BYTE(x, '"') | HAS_BYTE(x, '\\');
	return odd;
}

/*
 * Most of a line is plain ASCII, which goes out 8 bytes at a time. A word with an odd byte goes
 * through the table: each entry is copied whole (8 bytes) and the pointer moved by its length.
 */
static inline char *put_escaped(char *p, const __u8 *s, size_t n, enum format format)
{
	const struct esc *table = format == FORMAT_JSON ? json_esc : text_esc;
	size_t i = 0, end;
	uint64_t word;

	while (i < n) {
		end = n;
		if (n - i >= 8) {
			memcpy(&word, s + i, 8);
			if (!odd_bytes(word, format)) {
				memcpy(p, &word, 8);
				p += 8;
				i += 8;
				continue;
			}
			end = i + 8;
		}
		for (; i < end; i++) {
			const struct esc *e = &table[s[i]];

			memcpy(p, e, sizeof(*e));
			p += e->n;
		}
	}
	return p;
}

static char *put_ipv4(char *p, const __u8 *a)
{
	int i;

	for (i = 0; i < 4; i++) {
		if (i)
			*p++ = '.';
		p = put_u64(p, a[i]);
	}
	return p;
}

static char *put_hextet(char *p, unsigned int h)
{
	static const char hex[] = "0123456789abcdef";
	int shift, started = 0;

	for (shift = 12; shift >= 0; shift -= 4) {
		unsigned int digit = (h >> shift) & 0xf;

		if (digit || started || !shift) {
			*p++ = hex[digit];
			started = 1;
		}
	}
	return p;
}

/*
 * str(ipaddress.IPv6Address) of Python 3.11: the longest run of two or more zero hextets (the
 * first of equal runs) becomes "::", hex is lower-case, and an IPv4-mapped address gets no dotted
 * quad, which is why this is not inet_ntop.
 */
static char *put_ipv6(char *p, const __u8 *a)
{
	unsigned int h[8];
	int i, run = 0, best = -1, best_len = 0;

	for (i = 0; i < 8; i++) {
		h[i] = a[2 * i] << 8 | a[2 * i + 1];
		run = h[i] ? 0 : run + 1;
		if (run > best_len) {
			best_len = run;
			best = i - run + 1;
		}
	}
	if (best_len < 2)
		best = -1;
	for (i = 0; i < 8; i++) {
		if (i == best) {
			p = PUT_LIT(p, "::");
			i += best_len - 1;
			continue;
		}
		if (i && i != best + best_len)
			*p++ = ':';
		p = put_hextet(p, h[i]);
	}
	return p;
}

/* decode_event reads four address bytes for family 4 and sixteen for anything else. */
static char *put_address(char *p, const struct xhdr_event *ev, const __u8 *addr)
{
	return ev->family == 4 ? put_ipv4(p, addr) : put_ipv6(p, addr);
}

/* --- Records ---------------------------------------------------------------------------------- */

/* data[off : off + len] as Python slices it: clamped to what the record holds. */
static size_t slice(const struct view *v, size_t off, size_t len, const __u8 **start)
{
	size_t end = off + len;

	if (off > v->data_len)
		off = v->data_len;
	if (end > v->data_len)
		end = v->data_len;
	*start = v->data + off;
	return end - off;
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* The lengths of a record's parts, all kept inside the record whatever its fields claim. */
static void view_of(struct view *v, const __u8 *record, size_t size,
		    const struct settings *s)
{
	const struct xhdr_event *ev = (const struct xhdr_event *)record;

	v->ev = ev;
	v->data = record + XHDR_EVENT_FIXED_BYTES;
	v->data_len = min_size(ev->data_len, size - XHDR_EVENT_FIXED_BYTES);
	v->target_len = min_size(min_size(ev->target_length, s->max_target_len), v->data_len);
	v->method_len = min_size(ev->method_len, XHDR_METHOD_MAX);
	v->sni = v->data;
	v->alpn = v->data;
	v->alpn_len = 0;
	v->rule = v->data;
	v->rule_len = 0;
	if (ev->kind == XHDR_KIND_HTTP && ev->rule_len)
		v->rule_len = slice(v, ev->rule_off, ev->rule_len, &v->rule);
	/* A TLS event's SNI and ALPN bytes are where its slots 0 and 1 say (bpf/xhdr.c, keep_bytes()). */
	if (ev->kind == XHDR_KIND_TLS) {
		v->target_len = slice(v, ev->slots[0].value_off,
				      min_size(ev->slots[0].value_len, s->max_target_len), &v->sni);
		v->alpn_len = slice(v, ev->slots[1].value_off,
				    min_size(ev->slots[1].value_len, s->max_value_len), &v->alpn);
	}
}

/*
 * alpn_names() of harness/core/event.py: the kept ALPN bytes hold names of a length byte and that
 * many bytes, read in order up to a zero length or a name that does not fit. Returns the length of
 * the name at *at and moves *at past it, or 0 when no name is left.
 */
static size_t next_alpn_name(const struct view *v, size_t *at, const __u8 **name)
{
	size_t n;

	if (*at >= v->alpn_len)
		return 0;
	n = v->alpn[*at];
	if (!n || *at + 1 + n > v->alpn_len)
		return 0;
	*name = v->alpn + *at + 1;
	*at += 1 + n;
	return n;
}

/*
 * An upper bound of the bytes the event's line takes: every data byte may become 6. An ALPN name's
 * quotes and comma fit in the 6 counted for its length byte, which is not shown.
 */
static size_t line_bound(const struct view *v, const struct settings *s)
{
	size_t bytes = v->method_len + v->target_len + v->alpn_len + v->rule_len;
	const __u8 *unused;
	int i;

	for (i = 0; i < s->nrules; i++)
		bytes += slice(v, v->ev->slots[i].value_off, v->ev->slots[i].value_len, &unused);
	if (v->ev->kind == XHDR_KIND_RESPONSE)
		bytes += REQUEST_ID_MAX;	/* its request's X-Request-ID (json_response()) */
	return LINE_OVERHEAD + AUDIT_EXTRA + 6 * bytes;
}

/* --- JSON ------------------------------------------------------------------------------------- */

/*
 * The keys of HeaderEvent.to_json() that map header names: "headers" (each present header's kept
 * bytes), then, each only when a present header has something for it, "lengths" (a length its kept
 * bytes do not show), "hashes" (the hash and auth modes) and "header_flags" (flags besides PRESENT).
 */
enum header_key { HEADER_VALUES, HEADER_LENGTHS, HEADER_HASHES, HEADER_FLAGS, HEADER_KEYS };

static const char *const header_key_opens[HEADER_KEYS] = {
	",\"headers\":{", ",\"lengths\":{", ",\"hashes\":{", ",\"header_flags\":{",
};

#define SLOT_FLAGS_BUT_PRESENT	(((1U << SLOT_FLAGS) - 1) & ~XHDR_S_PRESENT)

static int slot_has(enum header_key key, const struct rule *r, const struct xhdr_slot *slot, size_t kept)
{
	switch (key) {
	case HEADER_LENGTHS:
		return slot->length != kept;
	case HEADER_HASHES:
		return r->mode == XHDR_MODE_HASH || r->mode == XHDR_MODE_AUTH;
	case HEADER_FLAGS:
		return slot->flags & SLOT_FLAGS_BUT_PRESENT;
	default:
		return 1;
	}
}

static char *json_header_key(char *p, enum header_key key, const struct view *v,
			     const struct settings *s)
{
	const struct xhdr_slot *slot;
	const __u8 *value;
	int i, shown = 0;
	size_t n;

	if (key == HEADER_VALUES)
		p = put_str(p, header_key_opens[key]);	/* the one key every request has */
	for (i = 0; i < s->nrules; i++) {
		slot = &v->ev->slots[i];
		if (!(slot->flags & XHDR_S_PRESENT))
			continue;
		n = slice(v, slot->value_off, slot->value_len, &value);
		if (!slot_has(key, &s->rules[i], slot, n))
			continue;
		if (shown++)
			*p++ = ',';
		else if (key != HEADER_VALUES)
			p = put_str(p, header_key_opens[key]);
		p = put(p, s->rules[i].prefix, s->rules[i].prefix_len);
		if (key == HEADER_LENGTHS) {
			p = put_u64(p, slot->length);
		} else if (key == HEADER_FLAGS) {
			*p++ = '[';
			p = put(p, slot_flags_json[slot->flags & SLOT_FLAGS_BUT_PRESENT],
				slot_flags_json_len[slot->flags & SLOT_FLAGS_BUT_PRESENT]);
			*p++ = ']';
		} else {
			*p++ = '"';
			p = key == HEADER_HASHES ? put_hex16(p, slot->hash) :
						    put_escaped(p, value, n, FORMAT_JSON);
			*p++ = '"';
		}
	}
	if (shown || key == HEADER_VALUES)
		*p++ = '}';
	return p;
}

/* An action's name; one the table has none for shows as "none". */
static const char *action_label(unsigned int action)
{
	return action < sizeof(action_names) / sizeof(action_names[0]) ? action_names[action] : "none";
}

/* flags_json() of harness/core/event.py: "flags" with the names of the set bits, when one is set. */
static char *json_flags(char *p, unsigned int bits, const char *const *names)
{
	int first = 1;

	if (!bits)
		return p;
	p = PUT_LIT(p, ",\"flags\":[");
	for (; bits; bits &= bits - 1) {
		p = first ? p : PUT_LIT(p, ",");
		*p++ = '"';
		p = put_str(p, names[__builtin_ctz(bits)]);
		*p++ = '"';
		first = 0;
	}
	return PUT_LIT(p, "]");
}

/* What every kind starts with: {"kind":...,"family":... up to "dport", and "vlan_ids" on a tagged flow. */
static char *json_flow(char *p, const struct xhdr_event *ev)
{
	int i;

	if (ev->kind == XHDR_KIND_TLS)
		p = PUT_LIT(p, "{\"kind\":\"tls\",\"family\":");
	else if (ev->kind == XHDR_KIND_RESPONSE)
		p = PUT_LIT(p, "{\"kind\":\"response\",\"family\":");
	else
		p = PUT_LIT(p, "{\"kind\":\"http\",\"family\":");
	p = put_u64(p, ev->family);
	p = PUT_LIT(p, ",\"saddr\":\"");
	p = put_address(p, ev, ev->saddr);
	p = PUT_LIT(p, "\",\"daddr\":\"");
	p = put_address(p, ev, ev->daddr);
	p = PUT_LIT(p, "\",\"sport\":");
	p = put_u64(p, ev->sport);
	p = PUT_LIT(p, ",\"dport\":");
	p = put_u64(p, ev->dport);
	if (!ev->vlan_count)
		return p;
	p = PUT_LIT(p, ",\"vlan_ids\":[");
	for (i = 0; i < ev->vlan_count && i < 2; i++) {
		if (i)
			*p++ = ',';
		p = put_u64(p, ev->vlan_ids[i]);
	}
	return PUT_LIT(p, "]");
}

/* The keys every kind carries after its own: when and on which interface the event was made. */
static char *json_when_where(char *p, const struct xhdr_event *ev)
{
	p = PUT_LIT(p, ",\"timestamp_ns\":");
	p = put_u64(p, ev->timestamp_ns);
	p = PUT_LIT(p, ",\"ifindex\":");
	return put_u64(p, ev->ifindex);
}

/* TlsHello.to_json(). */
static char *json_hello(char *p, const struct view *v)
{
	const struct xhdr_event *ev = v->ev;
	const __u8 *name;
	size_t at = 0, n;
	int first = 1;

	p = json_flow(p, ev);
	p = PUT_LIT(p, ",\"sni\":\"");
	p = put_escaped(p, v->sni, v->target_len, FORMAT_JSON);
	p = PUT_LIT(p, "\",\"sni_length\":");
	p = put_u64(p, ev->target_length);
	p = PUT_LIT(p, ",\"alpn\":[");
	while ((n = next_alpn_name(v, &at, &name))) {
		p = first ? p : PUT_LIT(p, ",");
		*p++ = '"';
		p = put_escaped(p, name, n, FORMAT_JSON);
		*p++ = '"';
		first = 0;
	}
	p = PUT_LIT(p, "],\"alpn_length\":");
	p = put_u64(p, ev->alpn_length);
	p = PUT_LIT(p, ",\"tls_version\":\"");
	p = put_tls_version(p, ev->tls_version);
	*p++ = '"';
	p = json_flags(p, ev->flags & TLS_FLAG_MASK, tls_flag_names);
	p = json_when_where(p, ev);
	return PUT_LIT(p, "}\n");
}

/* HttpResponse.latency_us: whole microseconds from the request to its response, 0 if a record says less. */
static uint64_t latency_us(const struct xhdr_event *ev)
{
	return ev->timestamp_ns > ev->request_ns ? (ev->timestamp_ns - ev->request_ns) / 1000 : 0;
}

static struct request_id *request_id_entry(uint64_t ns, uint16_t sport, uint16_t dport)
{
	return &request_ids[(ns ^ (uint64_t)sport << 16 ^ dport) & (REQUEST_IDS - 1)];
}

/* JsonLines.line() of a request: its X-Request-ID value, as its line shows it, kept for its response's line. */
static void note_request_id(const struct view *v, const struct settings *s)
{
	const struct xhdr_event *ev = v->ev;
	const struct xhdr_slot *slot;
	struct request_id *e;
	const __u8 *value;

	/*
	 * Without responses no line asks for a request's value, and keeping it costs a write to a random entry
	 * of a 1.2 MB table per event: 15% of a JSON line's CPU time (the consumer suite: 662 ns a line, 563 not
	 * kept).
	 */
	if (!s->responses || s->request_id_slot < 0 || ev->kind != XHDR_KIND_HTTP)
		return;
	slot = &ev->slots[s->request_id_slot];
	if (!(slot->flags & XHDR_S_PRESENT))
		return;
	e = request_id_entry(ev->timestamp_ns, ev->sport, ev->dport);
	e->len = min_size(slice(v, slot->value_off, slot->value_len, &value), REQUEST_ID_MAX);
	memcpy(e->value, value, e->len);
	e->ns = ev->timestamp_ns;
	e->sport = ev->sport;
	e->dport = ev->dport;
	e->family = ev->family;
	memcpy(e->saddr, ev->saddr, sizeof(e->saddr));
	e->used = 1;
}

/* JsonLines.line() of a response: the kept X-Request-ID of the request it answers, or NULL. */
static const struct request_id *take_request_id(const struct xhdr_event *ev)
{
	struct request_id *e = request_id_entry(ev->request_ns, ev->sport, ev->dport);

	if (!e->used || e->ns != ev->request_ns || e->sport != ev->sport || e->dport != ev->dport ||
	    e->family != ev->family || memcmp(e->saddr, ev->saddr, sizeof(e->saddr)))
		return NULL;
	e->used = 0;
	return e;
}

/* HttpResponse.to_json(), then its request's X-Request-ID when a rule logs it (JsonLines.line()). */
static char *json_response(char *p, const struct xhdr_event *ev, const struct settings *s)
{
	const struct request_id *id;

	p = json_flow(p, ev);
	p = PUT_LIT(p, ",\"status\":");
	p = put_u64(p, ev->status);
	p = PUT_LIT(p, ",\"version\":");
	p = put_u64(p, ev->version);
	p = PUT_LIT(p, ",\"latency_us\":");
	p = put_u64(p, latency_us(ev));
	p = PUT_LIT(p, ",\"request_timestamp_ns\":");
	p = put_u64(p, ev->request_ns);
	p = json_when_where(p, ev);
	if (s->request_id_slot >= 0) {
		id = take_request_id(ev);
		if (id) {
			p = PUT_LIT(p, ",\"request_id\":\"");
			p = put_escaped(p, id->value, id->len, FORMAT_JSON);
			*p++ = '"';
		} else {
			p = PUT_LIT(p, ",\"request_id\":null");
		}
	}
	return PUT_LIT(p, "}\n");
}

/* HeaderEvent.to_json(). */
static char *json_line(char *p, const struct view *v, const struct settings *s)
{
	const struct xhdr_event *ev = v->ev;
	enum header_key key;

	if (ev->kind == XHDR_KIND_TLS)
		return json_hello(p, v);
	if (ev->kind == XHDR_KIND_RESPONSE)
		return json_response(p, ev, s);
	p = json_flow(p, ev);
	if (ev->request_index) {
		p = PUT_LIT(p, ",\"request_index\":");
		p = put_u64(p, ev->request_index);
	}
	p = PUT_LIT(p, ",\"method\":\"");
	p = put_escaped(p, ev->method, v->method_len, FORMAT_JSON);
	p = PUT_LIT(p, "\",\"target\":\"");
	p = put_escaped(p, v->data, v->target_len, FORMAT_JSON);
	*p++ = '"';
	if (ev->target_length != v->target_len) {
		p = PUT_LIT(p, ",\"target_length\":");
		p = put_u64(p, ev->target_length);
	}
	p = PUT_LIT(p, ",\"version\":");
	p = put_u64(p, ev->version);
	p = json_flags(p, ev->flags & EVENT_FLAG_MASK, event_flag_names);
	p = PUT_LIT(p, ",\"header_lines\":");
	p = put_u64(p, ev->header_lines);
	p = json_when_where(p, ev);
	if (v->rule_len) {	/* HeaderEvent.rule_json() */
		p = PUT_LIT(p, ",\"rule\":\"");
		p = put_escaped(p, v->rule, v->rule_len, FORMAT_JSON);
		p = PUT_LIT(p, "\",\"action\":\"");
		p = put_str(p, action_label(ev->action));
		*p++ = '"';
	}
	for (key = HEADER_VALUES; key < HEADER_KEYS; key++)
		p = json_header_key(p, key, v, s);
	return PUT_LIT(p, "}\n");
}

/* --- Text ------------------------------------------------------------------------------------- */

/* "[v6]:port" or "v4:port": an address with a colon gets brackets (log_format._endpoint). */
static char *text_endpoint(char *p, const struct xhdr_event *ev, const __u8 *addr, __u16 port)
{
	if (ev->family == 4) {
		p = put_ipv4(p, addr);
	} else {
		*p++ = '[';
		p = put_ipv6(p, addr);
		*p++ = ']';
	}
	*p++ = ':';
	return put_u64(p, port);
}

/* HeaderValue.shown() of a present slot. */
static char *text_slot(char *p, const struct view *v, const struct rule *r,
		       const struct xhdr_slot *slot)
{
	const __u8 *value;
	size_t n = slice(v, slot->value_off, slot->value_len, &value);

	p = put(p, r->prefix, r->prefix_len);
	switch (r->mode) {
	case XHDR_MODE_HASH:
	case XHDR_MODE_AUTH:
		if (n) {
			p = put_escaped(p, value, n, FORMAT_TEXT);
			*p++ = ' ';
		}
		*p++ = '#';
		return put_hex16(p, slot->hash);
	case XHDR_MODE_PRESENCE:
		p = PUT_LIT(p, "present (");
		p = put_u64(p, slot->length);
		return PUT_LIT(p, " bytes)");
	default:
		p = put_escaped(p, value, n, FORMAT_TEXT);
		if (slot->flags & (XHDR_S_TRUNCATED | XHDR_S_CUT))
			p = PUT_LIT(p, "...");
		return p;
	}
}

/* "TLS 1.3 sni=example.com alpn=h2,http/1.1": log_format._hello(). */
static char *text_hello(char *p, const struct view *v)
{
	const struct xhdr_event *ev = v->ev;
	const __u8 *name;
	size_t at = 0, n;
	int first = 1;

	p = PUT_LIT(p, "TLS ");
	p = put_tls_version(p, ev->tls_version);
	p = PUT_LIT(p, " sni=");
	if (!v->target_len && !ev->target_length) {
		*p++ = '-';
	} else {
		p = put_escaped(p, v->sni, v->target_len, FORMAT_TEXT);
		if (ev->target_length > v->target_len)
			p = PUT_LIT(p, "...");
	}
	p = PUT_LIT(p, " alpn=");
	while ((n = next_alpn_name(v, &at, &name))) {
		p = first ? p : PUT_LIT(p, ",");
		p = put_escaped(p, name, n, FORMAT_TEXT);
		first = 0;
	}
	if (first)
		*p++ = '-';
	return p;
}

/* "HTTP/1.1 404 after 512 us": log_format._response(). */
static char *text_response(char *p, const struct xhdr_event *ev)
{
	p = PUT_LIT(p, "HTTP/");
	p = put_u64(p, ev->version / 10);
	*p++ = '.';
	p = put_u64(p, ev->version % 10);
	*p++ = ' ';
	p = put_u64(p, ev->status);
	p = PUT_LIT(p, " after ");
	p = put_u64(p, latency_us(ev));
	return PUT_LIT(p, " us");
}

/* "METHOD target HTTP/1.1 | Name: shown ...": log_format._request(). */
static char *text_request(char *p, const struct view *v, const struct settings *s)
{
	const struct xhdr_event *ev = v->ev;
	int i;

	p = put_escaped(p, ev->method, v->method_len, FORMAT_TEXT);
	*p++ = ' ';
	p = put_escaped(p, v->data, v->target_len, FORMAT_TEXT);
	if (ev->target_length > v->target_len)
		p = PUT_LIT(p, "...");
	if (ev->version) {
		p = PUT_LIT(p, " HTTP/");
		p = put_u64(p, ev->version / 10);
		*p++ = '.';
		p = put_u64(p, ev->version % 10);
	} else {
		p = PUT_LIT(p, " HTTP/?");
	}
	for (i = 0; i < s->nrules; i++)
		if (ev->slots[i].flags & XHDR_S_PRESENT)
			p = text_slot(p, v, &s->rules[i], &ev->slots[i]);
	if (v->rule_len) {
		p = PUT_LIT(p, " | rule ");
		p = put_escaped(p, v->rule, v->rule_len, FORMAT_TEXT);
		p = PUT_LIT(p, ": ");
		p = put_str(p, action_label(ev->action));
	}
	return p;
}

static char *text_line(char *p, const struct view *v, const struct settings *s)
{
	const struct xhdr_event *ev = v->ev;
	int tls = ev->kind == XHDR_KIND_TLS, first = 1;
	unsigned int bits;

	p = text_endpoint(p, ev, ev->saddr, ev->sport);
	p = PUT_LIT(p, " -> ");
	p = text_endpoint(p, ev, ev->daddr, ev->dport);
	*p++ = ' ';
	if (ev->kind == XHDR_KIND_RESPONSE)
		p = text_response(p, ev);
	else
		p = tls ? text_hello(p, v) : text_request(p, v, s);
	/* Python tests the whole flag word, so bits it has no name for still give the brackets. */
	if (ev->flags) {
		p = PUT_LIT(p, " [");
		for (bits = ev->flags & (tls ? TLS_FLAG_MASK : EVENT_FLAG_MASK); bits; bits &= bits - 1) {
			p = first ? p : PUT_LIT(p, ",");
			p = put_str(p, (tls ? tls_flag_text : event_flag_text)[__builtin_ctz(bits)]);
			first = 0;
		}
		*p++ = ']';
	}
	*p++ = '\n';
	return p;
}

/* --- Output ----------------------------------------------------------------------------------- */

/* Blocks until the output can take more: stdout may be a non-blocking pipe of the parent's. */
static void wait_writable(void)
{
	struct pollfd pfd = { .fd = out.fd, .events = POLLOUT };

	if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
		fail("cannot wait for %s to take events: %s", out.where, strerror(errno));
}

/* A reader that went away (`xhdr log | head`) is a normal end, not an error. */
static void flush_out(void)
{
	size_t done = 0;

	while (done < out.len) {
		ssize_t n = write(out.fd, out.buf + done, out.len - done);

		if (n >= 0) {
			done += n;
		} else if (errno == EAGAIN) {
			wait_writable();
		} else if (errno == EPIPE) {
			finish(0);
		} else if (errno != EINTR) {
			fail("cannot write events to %s: %s; "
			     "free space or point --output elsewhere", out.where, strerror(errno));
		}
	}
	out.len = 0;
	out.written += out.pending;
	out.pending = 0;
}

/* --- Audit chain ------------------------------------------------------------------------------ */

/* The key file's bytes are the key; OpenSSL computes HMAC-SHA256 with the CPU's SHA extensions. */
static void audit_open(const char *path)
{
	unsigned char key[AUDIT_KEY_MAX + 1];
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *hmac;
	size_t len;
	FILE *f = fopen(path, "rb");

	if (!f)
		fail("cannot read --audit key %s: %s", path, strerror(errno));
	len = fread(key, 1, sizeof(key), f);
	fclose(f);
	if (len < AUDIT_KEY_MIN || len > AUDIT_KEY_MAX)
		fail("--audit key %s has %zu bytes; it needs %d to %d (xhdr audit newkey FILE makes one)",
		     path, len, AUDIT_KEY_MIN, AUDIT_KEY_MAX);
	hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	audit.ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
	EVP_MAC_free(hmac);
	if (!audit.ctx || !EVP_MAC_init(audit.ctx, key, len, params))
		fail("OpenSSL has no HMAC-SHA256 here; reinstall libssl3");
	memset(key, 0, sizeof(key));
}

/*
 * Seals the line [start, end), which ends in "}": the line gets "seq" (counting from 1 in each run) and
 * then "mac", HMAC-SHA256 over the previous line's MAC and the line up to and including "seq" with its
 * closing brace, which is what `xhdr audit verify` recomputes. Returns the new end, after a newline.
 */
static char *audit_seal(char *start, char *end)
{
	size_t mac_len = 0;
	char *p = end - 1;	/* the closing brace */
	int i;

	p = PUT_LIT(p, ",\"seq\":");
	p = put_u64(p, ++audit.seq);
	*p = '}';
	if (!EVP_MAC_init(audit.ctx, NULL, 0, NULL) ||
	    !EVP_MAC_update(audit.ctx, audit.mac, AUDIT_MAC) ||
	    !EVP_MAC_update(audit.ctx, (const unsigned char *)start, p + 1 - start) ||
	    !EVP_MAC_final(audit.ctx, audit.mac, &mac_len, AUDIT_MAC) || mac_len != AUDIT_MAC)
		fail("HMAC-SHA256 failed in OpenSSL; run again");
	p = PUT_LIT(p, ",\"mac\":\"");
	for (i = 0; i < AUDIT_MAC; i++) {
		*p++ = "0123456789abcdef"[audit.mac[i] >> 4];
		*p++ = "0123456789abcdef"[audit.mac[i] & 15];
	}
	p = PUT_LIT(p, "\"}\n");
	return p;
}

/* The last line of a run that ended as asked: without it, a log cut after its last line looks whole. */
static void audit_close(void)
{
	char line[256], *p = line;

	p = PUT_LIT(p, "{\"audit\":\"end\",\"events\":");
	p = put_u64(p, audit.seq);
	*p++ = '}';
	p = audit_seal(line, p);
	if (out.cap - out.len < (size_t)(p - line))
		flush_out();
	memcpy(out.buf + out.len, line, p - line);
	out.len += p - line;
	flush_out();
}

/* Room for `need` more bytes of output: flushed first when short, grown (never cut) when still short. */
static char *out_room(size_t need)
{
	if (out.cap - out.len < need)
		flush_out();
	if (out.cap < need) {
		/* Only a record far beyond any configured limit gets here. */
		out.buf = realloc(out.buf, need);
		if (!out.buf)
			fail("out of memory for a %zu-byte line; raise the memory limit", need);
		out.cap = need;
	}
	return out.buf + out.len;
}

/* The header of a section of a records file: what --input needs to make the lines xhdr log would. */
static void put_records_header(const struct settings *s)
{
	char *start = out_room(RECORDS_HEADER_MAX), *p = start;
	int i;

	p = PUT_LIT(p, RECORDS_MAGIC "max-target-len ");
	p = put_u64(p, s->max_target_len);
	p = PUT_LIT(p, "\nmax-value-len ");
	p = put_u64(p, s->max_value_len);
	*p++ = '\n';
	for (i = 0; i < s->nrules; i++) {
		p = PUT_LIT(p, "header ");
		p = put_str(p, s->rules[i].name);
		*p++ = ':';
		p = put_str(p, mode_names[s->rules[i].mode]);
		*p++ = '\n';
	}
	*p++ = '\n';
	while ((p - start) % RECORD_PREFIX)
		*p++ = 0;
	out.len += p - start;
	flush_out();
}

/* A record as the ring held it, behind its length and padded (RECORDS_MAGIC). */
static void put_record(const __u8 *record, size_t size)
{
	size_t padded = (size + 7) & ~7UL;
	char *p = out_room(RECORD_PREFIX + padded);
	__u32 len = size;

	memcpy(p, &len, sizeof(len));
	memset(p + sizeof(len), 0, RECORD_PREFIX - sizeof(len));
	memcpy(p + RECORD_PREFIX, record, size);
	memset(p + RECORD_PREFIX + size, 0, padded - size);
	out.len += RECORD_PREFIX + padded;
	out.pending++;
}

static void render(const __u8 *record, size_t size, const struct settings *s)
{
	struct view v;
	char *end;

	if (s->format == FORMAT_RECORDS) {
		put_record(record, size);
		return;
	}
	view_of(&v, record, size, s);
	out_room(line_bound(&v, s));
	if (s->format == FORMAT_JSON) {
		note_request_id(&v, s);
		end = json_line(out.buf + out.len, &v, s);
	} else {
		end = text_line(out.buf + out.len, &v, s);
	}
	if (audit.ctx)
		end = audit_seal(out.buf + out.len, end - 1);	/* without the newline */
	out.len = end - out.buf;
	out.pending++;
}

/* --- Ring buffer ------------------------------------------------------------------------------ */

static int count_reached(const struct settings *s)
{
	return s->count && out.written + out.pending >= s->count;
}

/* The lines before it are good, so they are written first. */
static void __attribute__((noreturn)) bad_record(__u32 size, unsigned long pos)
{
	flush_out();
	fail("the %u-byte ring buffer record at position %lu is not an event (head %zu bytes); "
	     "pass the extractor's events map and rebuild both from one bpf/xhdr_event.h",
	     size, pos, (size_t)XHDR_EVENT_FIXED_BYTES);
}

/*
 * One pass up to the producer position seen at its start, so a stop or a flush is never held off
 * by a producer that keeps writing. Each record is released as soon as its line is in the buffer.
 */
static void drain(const struct ring *r, const struct settings *s)
{
	unsigned long cons = __atomic_load_n(r->consumer, __ATOMIC_RELAXED);
	unsigned long prod = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE);

	while (cons < prod && !count_reached(s)) {
		const __u8 *hdr = r->data + (cons & r->mask);
		__u32 len = __atomic_load_n((const __u32 *)hdr, __ATOMIC_ACQUIRE);
		__u32 size = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);

		/* Reserved, not yet submitted: the records after it wait too (kernel rule). */
		if (len & BPF_RINGBUF_BUSY_BIT)
			break;
		if (size > r->mask || size < XHDR_EVENT_FIXED_BYTES)
			bad_record(size, cons);
		if (!(len & BPF_RINGBUF_DISCARD_BIT))
			render(hdr + BPF_RINGBUF_HDR_SZ, size, s);
		cons += (size + BPF_RINGBUF_HDR_SZ + 7) & ~7UL;
		__atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
	}
}

/* Turns a wrong fd or size into a clear message instead of an mmap error or garbage lines. */
static void check_ring(const struct settings *s)
{
	char path[64], line[128];
	long type = -1, entries = -1;
	FILE *info;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", s->ring_fd);
	info = fopen(path, "r");
	if (!info)
		fail("--ring-fd %d is not an open file descriptor; "
		     "pass the ring buffer map's fd to the consumer (subprocess pass_fds)",
		     s->ring_fd);
	while (fgets(line, sizeof(line), info)) {
		sscanf(line, "map_type: %ld", &type);
		sscanf(line, "max_entries: %ld", &entries);
	}
	fclose(info);
	if (type != BPF_MAP_TYPE_RINGBUF)
		fail("--ring-fd %d is not a BPF ring buffer map; "
		     "pass the extractor's events map fd", s->ring_fd);
	if ((size_t)entries != s->ring_bytes)
		fail("the ring buffer of --ring-fd %d holds %ld bytes, not --ring-bytes %zu; "
		     "pass %ld", s->ring_fd, entries, s->ring_bytes, entries);
}

static void map_ring(struct ring *r, const struct settings *s)
{
	size_t page = sysconf(_SC_PAGESIZE);
	void *cons, *prod;

	cons = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, s->ring_fd, 0);
	if (cons == MAP_FAILED)
		fail("cannot map the consumer page of the ring buffer: %s; run as root (CAP_BPF)",
		     strerror(errno));
	prod = mmap(NULL, page + 2 * s->ring_bytes, PROT_READ, MAP_SHARED, s->ring_fd, page);
	if (prod == MAP_FAILED)
		fail("cannot map the data of the ring buffer: %s; check --ring-bytes",
		     strerror(errno));
	r->consumer = cons;
	r->producer = prod;
	r->data = (const __u8 *)prod + page;
	r->mask = s->ring_bytes - 1;
}

static void open_output(const struct settings *s)
{
	if (!s->output)
		return;
	out.fd = open(s->output, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (out.fd < 0)
		fail("cannot open --output %s: %s; check the path and its permissions", s->output,
		     strerror(errno));
	out.where = s->output;
}

/*
 * Log rotation: once the file was renamed, the lines written so far stay in it and the next ones go to a new
 * file at the --output path, as nginx does on its USR1. Each file is whole on its own: an audited run ends in
 * the old file with its end record and a new run starts in the new one (docs/AUDIT.md), and a records file
 * starts with its section header. Users send SIGUSR1 to xhdr log, which passes it on as SIGUSR2: a USR1 sent to
 * every process of the logger (`systemctl kill`) then reopens once, not twice.
 */
static void reopen_output(const struct settings *s)
{
	if (!reopening)
		return;
	reopening = 0;
	if (!s->output)
		return;
	flush_out();
	if (audit.ctx) {
		audit_close();
		audit.seq = 0;
		memset(audit.mac, 0, sizeof(audit.mac));
	}
	if (close(out.fd))
		fail("cannot close %s to open it again: %s; check the disk", out.where, strerror(errno));
	open_output(s);
	if (s->format == FORMAT_RECORDS)
		put_records_header(s);
}

/*
 * SIGINT and SIGTERM (stop) and SIGUSR2 (reopen) are held except while waiting, and epoll_pwait and
 * ppoll let them in atomically, so neither can interrupt a line nor slip in between the check and the
 * wait. SIGUSR1 is for xhdr log (see reopen_output()): ignored here rather than fatal.
 */
static void take_signals(sigset_t *wait_mask)
{
	struct sigaction stop = { .sa_handler = on_stop }, reopen = { .sa_handler = on_reopen };
	sigset_t held;

	sigemptyset(&held);
	sigaddset(&held, SIGINT);
	sigaddset(&held, SIGTERM);
	sigaddset(&held, SIGUSR2);
	sigprocmask(SIG_BLOCK, &held, wait_mask);
	sigdelset(wait_mask, SIGINT);
	sigdelset(wait_mask, SIGTERM);
	sigdelset(wait_mask, SIGUSR2);
	sigemptyset(&stop.sa_mask);
	sigaction(SIGINT, &stop, NULL);
	sigaction(SIGTERM, &stop, NULL);
	sigemptyset(&reopen.sa_mask);
	sigaction(SIGUSR2, &reopen, NULL);
	signal(SIGUSR1, SIG_IGN);
	/* A reader that leaves shows up as EPIPE from write, which ends the program quietly. */
	signal(SIGPIPE, SIG_IGN);
}

static void run(const struct settings *s, const sigset_t *wait_mask)
{
	struct epoll_event ev = { .events = EPOLLIN }, got;
	struct ring r;
	int ep;

	check_ring(s);
	map_ring(&r, s);
	open_output(s);
	if (s->format == FORMAT_RECORDS)
		put_records_header(s);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->ring_fd, &ev))
		fail("cannot wait on the ring buffer: %s; check the kernel's BPF support",
		     strerror(errno));
	ready_said = 1;
	fputs("ready\n", stderr);
	for (;;) {
		drain(&r, s);
		if (out.pending)
			flush_out();
		reopen_output(s);
		/* A stop seen in the wait was followed by the drain above: what was left is out. */
		if (stopping || count_reached(s))
			return;
		if (epoll_pwait(ep, &got, 1, WAIT_MS, wait_mask) < 0 && errno != EINTR)
			fail("waiting on the ring buffer failed: %s; run again", strerror(errno));
	}
}

/* --- Header rules ---------------------------------------------------------------------------- */

static int is_tchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The slot's fixed text, escaped now so a line only copies it. */
static void make_prefix(struct rule *r, enum format format)
{
	const __u8 *name = (const __u8 *)r->name;
	char *p = r->prefix;

	if (format == FORMAT_JSON) {
		*p++ = '"';
		p = put_escaped(p, name, strlen(r->name), FORMAT_JSON);
		p = PUT_LIT(p, "\":");
	} else {
		p = PUT_LIT(p, " | ");
		p = put_escaped(p, name, strlen(r->name), FORMAT_TEXT);
		p = PUT_LIT(p, ": ");
	}
	r->prefix_len = p - r->prefix;
}

/* Adds the rule NAME:MODE (a --header, or a header line of a records file); NULL, or what is wrong. */
static const char *add_rule(struct settings *s, const char *arg)
{
	const char *colon = strrchr(arg, ':');
	struct rule *r = &s->rules[s->nrules];
	size_t len = colon ? (size_t)(colon - arg) : 0, i;
	int m, j;

	if (s->nrules == XHDR_SLOTS)
		return "more than 8 header rules; the event has 8 slots";
	if (!colon || !len || len > XHDR_NAME_MAX)
		return "a header rule needs NAME:MODE with a name of 1 to 32 characters";
	for (i = 0; i < len; i++)
		if (!is_tchar((unsigned char)arg[i]))
			return "a header name has a character that is not a token character";
	memcpy(r->name, arg, len);
	r->name[len] = 0;
	for (j = 0; j < s->nrules; j++)
		if (!strcasecmp(s->rules[j].name, r->name))
			return "a header name is listed twice; give one rule per header";
	r->mode = XHDR_MODE_NONE;
	for (m = XHDR_MODE_VALUE; m <= XHDR_MODE_PRESENCE; m++)
		if (!strcmp(colon + 1, mode_names[m]))
			r->mode = m;
	if (r->mode == XHDR_MODE_NONE)
		return "a header MODE must be value, hash, auth or presence";
	if (r->mode == XHDR_MODE_VALUE && !strcasecmp(r->name, "X-Request-ID"))
		s->request_id_slot = s->nrules;
	s->nrules++;
	return NULL;
}

/* --- Records files (--input) ------------------------------------------------------------------ */

/* What is wrong at byte `at` of the input; the lines before it are good, so they are written first. */
static void __attribute__((noreturn)) bad_input(const struct settings *s, size_t at, const char *what)
{
	flush_out();
	fail("%s: %s at byte %zu; pass a file that xhdr log --records wrote", s->input, what, at);
}

/*
 * A section header's "NAME N" line of a limit (N from 1 to 65535) into *value when the line is NAME's;
 * returns whether it was.
 */
static int read_limit(const struct settings *s, size_t at, const char *line, const char *name, size_t *value)
{
	size_t len = strlen(name);
	unsigned long long limit;
	char *end, what[64];

	if (strncmp(line, name, len) || line[len] != ' ')
		return 0;
	errno = 0;
	limit = strtoull(line + len + 1, &end, 10);
	if (errno || *end || limit < 1 || limit > 65535) {
		snprintf(what, sizeof(what), "a section header with a bad %s", name);
		bad_input(s, at, what);
	}
	*value = limit;
	return 1;
}

/*
 * The input being rendered, read as it comes: a file, or a pipe from `xhdr log --records -` that may stay open
 * for hours, so nothing waits for its end. buf[start, end) holds the bytes from offset `at` of the input on.
 */
struct input {
	const char *name;
	int fd;
	char *buf;
	size_t cap, start, end;
	size_t at;		/* the input's offset of buf[start], for messages */
	int eof;
	int stopped;		/* SIGINT or SIGTERM came while waiting for more */
	const sigset_t *wait_mask;	/* the signals let in while waiting (see take_signals()) */
	const struct settings *settings;	/* where the lines go, for a reopen while waiting */
};

/*
 * Makes `want` bytes available from the input's position, reading more as needed; returns how many are
 * (fewer only at the end of the input, or after a stop). Lines already made are written before a wait, so a
 * reader of a live pipe sees each request's line when its record arrives; the wait lets SIGINT and SIGTERM
 * in, which end the rendering there, and SIGUSR2, which reopens the output.
 */
static size_t input_fill(struct input *in, size_t want)
{
	struct pollfd pfd = { .fd = in->fd, .events = POLLIN };
	ssize_t n;

	while (in->end - in->start < want && !in->eof && !in->stopped) {
		if (in->start) {
			memmove(in->buf, in->buf + in->start, in->end - in->start);
			in->end -= in->start;
			in->start = 0;
		}
		if (in->cap - in->end < want) {
			char *grown = realloc(in->buf, want + INPUT_BYTES);

			if (!grown)
				fail("out of memory for a %zu-byte input buffer; raise the memory limit",
				     want + INPUT_BYTES);
			in->buf = grown;
			in->cap = want + INPUT_BYTES;
		}
		flush_out();
		if (ppoll(&pfd, 1, NULL, in->wait_mask) < 0 && errno != EINTR)
			fail("cannot wait for --input %s: %s; check the file", in->name, strerror(errno));
		if (stopping) {
			in->stopped = 1;
			break;
		}
		reopen_output(in->settings);	/* everything made so far was written above */
		n = read(in->fd, in->buf + in->end, in->cap - in->end);
		if (n < 0 && errno != EINTR)
			fail("cannot read --input %s: %s; check the file", in->name, strerror(errno));
		if (n == 0)
			in->eof = 1;
		if (n > 0)
			in->end += n;
	}
	return in->end - in->start;
}

static void input_skip(struct input *in, size_t n)
{
	in->start += n;
	in->at += n;
}

/*
 * The section header at the input's position: its rules and limits replace the last ones. Returns its size, or 0
 * after a stop.
 */
static size_t read_records_header(struct settings *s, struct input *in)
{
	char header[RECORDS_HEADER_MAX + 1], *line, *next;
	const char *stop = NULL, *p;
	size_t have = 0;
	int i;

	/* its end is the first empty line; only what it needs is waited for */
	while (!stop && have < RECORDS_HEADER_MAX) {
		size_t more = input_fill(in, have + 1);

		if (more == have || in->stopped)
			break;
		have = more < RECORDS_HEADER_MAX ? more : RECORDS_HEADER_MAX;
		stop = memmem(in->buf + in->start, have, "\n\n", 2);
	}
	if (in->stopped)
		return 0;
	if (!stop)
		bad_input(s, in->at, "a section header without its end");
	p = in->buf + in->start;
	memcpy(header, p, stop + 1 - p);
	header[stop + 1 - p] = 0;
	line = header + strlen(RECORDS_MAGIC);
	s->nrules = 0;
	s->request_id_slot = -1;
	memset(request_ids, 0, sizeof(request_ids));	/* a new run: its responses answer its requests */
	s->max_target_len = 0;
	s->max_value_len = 0;
	for (; *line; line = next + 1) {
		next = strchr(line, '\n');
		*next = 0;
		if (!strncmp(line, "header ", 7)) {
			if (add_rule(s, line + 7))
				bad_input(s, in->at, "a section header with a bad header rule");
		} else if (!read_limit(s, in->at, line, "max-target-len", &s->max_target_len) &&
			   !read_limit(s, in->at, line, "max-value-len", &s->max_value_len)) {
			bad_input(s, in->at, "a section header with a line it does not know");
		}
	}
	if (!s->max_target_len)
		bad_input(s, in->at, "a section header without max-target-len");
	if (!s->max_value_len)
		bad_input(s, in->at, "a section header without max-value-len");
	for (i = 0; i < s->nrules; i++)
		make_prefix(&s->rules[i], s->format);
	return ((stop + 2 - p) + RECORD_PREFIX - 1) & ~(size_t)(RECORD_PREFIX - 1);
}

/*
 * Whether the `need` bytes at the input's position are there, waiting for `want` (`need` or more) unless the
 * input ends first; false after a stop. An input that ends before `need` bytes is `what`, an error.
 */
static int have(const struct settings *s, struct input *in, size_t want, size_t need, const char *what)
{
	if (input_fill(in, want) >= need)
		return 1;
	if (!in->stopped)
		bad_input(s, in->at, what);
	return 0;
}

/*
 * Renders every record of the --input file or stream ("-": standard input), section by section, as the
 * ring's records are, until its end or a stop.
 */
static void replay(struct settings *s, const sigset_t *wait_mask)
{
	size_t magic = strlen(RECORDS_MAGIC), size, padded;
	struct input in = { .name = s->input, .fd = STDIN_FILENO, .wait_mask = wait_mask, .settings = s };
	__u32 len[2];

	if (strcmp(s->input, "-")) {
		in.fd = open(s->input, O_RDONLY | O_CLOEXEC);
		if (in.fd < 0)
			fail("cannot read --input %s: %s; check the path", s->input, strerror(errno));
	} else {
		s->input = in.name = "standard input";	/* what messages call it */
	}
	if (input_fill(&in, magic) < magic && in.stopped)
		finish(0);
	if (in.end - in.start < magic || memcmp(in.buf + in.start, RECORDS_MAGIC, magic))
		fail("%s is not an xhdr records file (it does not start with %.14s); "
		     "pass a file that xhdr log --records wrote", s->input, RECORDS_MAGIC);
	open_output(s);
	ready_said = 1;	/* the events line at exit */
	while (!count_reached(s)) {
		size = input_fill(&in, magic);
		if (!size || in.stopped)
			break;
		if (size >= magic && !memcmp(in.buf + in.start, RECORDS_MAGIC, magic)) {
			padded = read_records_header(s, &in);
			if (!padded || !have(s, &in, padded, padded, "the file ends inside a section header"))
				break;
			input_skip(&in, padded);
			continue;
		}
		if (!have(s, &in, RECORD_PREFIX, RECORD_PREFIX, "the file ends inside a record's length"))
			break;
		memcpy(len, in.buf + in.start, sizeof(len));
		if (len[0] < XHDR_EVENT_FIXED_BYTES || len[0] >= RECORD_MAX || len[1])
			bad_input(s, in.at, "a record length that is not one");
		/* the padding after a record is waited for, so the next one is read from its start */
		padded = RECORD_PREFIX + ((len[0] + 7) & ~7UL);
		if (!have(s, &in, padded, RECORD_PREFIX + len[0], "the file ends inside a record"))
			break;
		render((const __u8 *)in.buf + in.start + RECORD_PREFIX, len[0], s);
		input_skip(&in, padded < in.end - in.start ? padded : in.end - in.start);
	}
	flush_out();
	free(in.buf);
	if (in.fd != STDIN_FILENO)
		close(in.fd);
}

/* --- Command line ----------------------------------------------------------------------------- */

static void __attribute__((noreturn)) usage(const char *problem)
{
	fprintf(stderr,
		"xhdr log: consumer: %s; usage: consumer --ring-fd FD --ring-bytes N "
		"--max-target-len T --max-value-len V --format json|text|records [--count N] "
		"[--output FILE] [--header NAME:MODE]... [--audit KEYFILE] [--responses]; or consumer --input FILE "
		"--format json|text [--count N] [--output FILE] [--audit KEYFILE]\n",
		problem);
	exit(1);
}

static unsigned long long number(const char *opt, const char *text, unsigned long long low,
				 unsigned long long high)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || *end || *text == '-' || v < low || v > high) {
		fprintf(stderr,
			"xhdr log: consumer: %s %s is not a number from %llu to %llu; "
			"fix the option\n",
			opt, text, low, high);
		exit(1);
	}
	return v;
}

static void parse_args(struct settings *s, int argc, char **argv)
{
	static const struct option options[] = {
		{ "ring-fd", required_argument, NULL, 'f' },
		{ "ring-bytes", required_argument, NULL, 'b' },
		{ "max-target-len", required_argument, NULL, 't' },
		{ "max-value-len", required_argument, NULL, 'v' },
		{ "format", required_argument, NULL, 'F' },
		{ "count", required_argument, NULL, 'c' },
		{ "output", required_argument, NULL, 'o' },
		{ "header", required_argument, NULL, 'H' },
		{ "audit", required_argument, NULL, 'a' },
		{ "input", required_argument, NULL, 'i' },
		{ "responses", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *problem_of_rule;
	char problem[128];
	int opt, have = 0;

	opterr = 0;
	s->ring_fd = -1;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'f':
			s->ring_fd = number("--ring-fd", optarg, 0, 1 << 30);
			break;
		case 'b':
			s->ring_bytes = number("--ring-bytes", optarg, 1, 1ULL << 40);
			have |= 1;
			break;
		case 't':
			s->max_target_len = number("--max-target-len", optarg, 1, 65535);
			have |= 2;
			break;
		case 'v':
			s->max_value_len = number("--max-value-len", optarg, 1, 65535);
			have |= 8;
			break;
		case 'F':
			if (!strcmp(optarg, "json"))
				s->format = FORMAT_JSON;
			else if (!strcmp(optarg, "text"))
				s->format = FORMAT_TEXT;
			else if (!strcmp(optarg, "records"))
				s->format = FORMAT_RECORDS;
			else
				usage("--format must be json, text or records");
			have |= 4;
			break;
		case 'c':
			s->count = number("--count", optarg, 1, ~0ULL);
			break;
		case 'o':
			s->output = optarg;
			break;
		case 'H':
			problem_of_rule = add_rule(s, optarg);
			if (problem_of_rule)
				usage(problem_of_rule);
			break;
		case 'i':
			s->input = optarg;
			break;
		case 'a':
			s->audit_key = optarg;
			break;
		case 'r':
			s->responses = 1;
			break;
		default:
			snprintf(problem, sizeof(problem), "%s is unknown or lacks its value",
				 argv[optind - 1]);
			usage(problem);
		}
	}
	if (optind < argc)
		usage("unexpected argument");
	if (s->input) {
		if (have != 4 || s->ring_fd >= 0 || s->nrules || s->responses)
			usage("--input takes --format json or text, and the rest from the file");
		if (s->format == FORMAT_RECORDS)
			usage("--input makes lines: --format json or text");
		s->responses = 1;	/* a records file does not say whether it holds any */
		return;
	}
	if (s->ring_fd < 0 || have != 15)
		usage("--ring-fd, --ring-bytes, --max-target-len, --max-value-len and --format are "
		      "required");
	if (s->ring_bytes & (s->ring_bytes - 1) || s->ring_bytes % sysconf(_SC_PAGESIZE))
		usage("--ring-bytes must be a power of two and a multiple of the page size");
	if (s->audit_key && s->format != FORMAT_JSON)
		usage("--audit needs --format json");
}

int main(int argc, char **argv)
{
	static struct settings s;
	sigset_t wait_mask;
	int i;

	/* Before anything else, so a stop sent while starting up is kept for the loop. */
	take_signals(&wait_mask);
	/*
	 * xhdr log starts the consumer in a process group of its own, so that a Ctrl-C reaches only xhdr log,
	 * which stops the consumer after the detach. Should xhdr log be killed outright, the kernel stops the
	 * consumer too; a parent that died before this call has already left it to init.
	 */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		fail("the process that started the consumer is gone; run xhdr log instead");
	init_json_esc();
	init_text_esc();
	init_flag_names();
	init_dec_pairs();
	s.request_id_slot = -1;
	parse_args(&s, argc, argv);
	for (i = 0; i < s.nrules; i++)
		make_prefix(&s.rules[i], s.format);
	out.cap = OUT_BYTES;
	out.buf = malloc(out.cap);
	if (!out.buf)
		fail("out of memory for the %d-byte output buffer; raise the memory limit",
		     OUT_BYTES);
	if (s.audit_key)
		audit_open(s.audit_key);
	if (s.input)
		replay(&s, &wait_mask);
	else
		run(&s, &wait_mask);
	if (audit.ctx)
		audit_close();
	finish(0);
}
