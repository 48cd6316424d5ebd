/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by the extractor and user space. harness/event.py mirrors struct xhdr_event and
 * harness/counters.py mirrors enum xhdr_counter; tests/test_layout.py keeps them from drifting.
 */
#ifndef XHDR_EVENT_H
#define XHDR_EVENT_H

#ifndef XHDR_MAX_VALUE_LEN
#define XHDR_MAX_VALUE_LEN 128
#endif
#ifndef XHDR_MAX_TARGET_LEN
#define XHDR_MAX_TARGET_LEN 128
#endif
#ifndef XHDR_MAX_HEADER_LINES
#define XHDR_MAX_HEADER_LINES 32
#endif
#ifndef XHDR_MAX_SCAN_BYTES
#define XHDR_MAX_SCAN_BYTES 1536
#endif
#ifndef XHDR_MAX_REQUESTS
#define XHDR_MAX_REQUESTS 4
#endif
#ifndef XHDR_MAX_REQUEST_SEGMENTS
#define XHDR_MAX_REQUEST_SEGMENTS 8
#endif
#ifndef XHDR_MAX_FLOWS
#define XHDR_MAX_FLOWS 65536
#endif
#ifndef XHDR_RINGBUF_PAGES
#define XHDR_RINGBUF_PAGES 64
#endif

#define XHDR_SLOTS 8		/* configured header rules; slot masks are one byte */
#define XHDR_METHOD_MAX 16
#define XHDR_SCHEME_MAX 16
#define XHDR_NAME_MAX 32
#define XHDR_RULE_NAME_MAX 32	/* R27: a rule's name, carried in the events of the requests it matches */

enum xhdr_mode {
	XHDR_MODE_NONE = 0,
	XHDR_MODE_VALUE = 1,
	XHDR_MODE_HASH = 2,
	XHDR_MODE_AUTH = 3,
	XHDR_MODE_PRESENCE = 4,
};

enum xhdr_event_flag {
	XHDR_F_TARGET_TRUNCATED = 1 << 0,
	XHDR_F_LINE_CUT = 1 << 1,
	XHDR_F_HEADERS_CUT = 1 << 2,
	XHDR_F_SCAN_LIMIT = 1 << 3,
	XHDR_F_TOO_MANY_HEADERS = 1 << 4,
	XHDR_F_BAD_LINE = 1 << 5,
	XHDR_F_TRANSFER_ENCODING = 1 << 6,
	XHDR_F_BAD_CONTENT_LENGTH = 1 << 7,
	XHDR_F_NAME_SPLIT = 1 << 8,
	/* R19: ambiguities that request smuggling relies on */
	XHDR_F_BARE_LF = 1 << 9,
	XHDR_F_OBS_FOLD = 1 << 10,
	XHDR_F_WS_BEFORE_COLON = 1 << 11,
	XHDR_F_CL_AND_TE = 1 << 12,
	XHDR_F_TE_NOT_CHUNKED = 1 << 13,
	XHDR_F_CONTROL_BYTE = 1 << 14,
	XHDR_F_DROPPED = 1 << 15,	/* R28: a drop rule dropped the segment that carried the request */
};

/* What an event is about: a request (R8), a TLS ClientHello (R21, R22) or a request's response (R24, R25). */
enum xhdr_kind {
	XHDR_KIND_HTTP = 0,
	XHDR_KIND_TLS = 1,
	XHDR_KIND_RESPONSE = 2,
};

/* R22: the flags of a TLS event, in the same field; SCAN_LIMIT is the same bit as a request's. */
enum xhdr_tls_flag {
	XHDR_T_SNI_TRUNCATED = 1 << 0,
	XHDR_T_ALPN_TRUNCATED = 1 << 1,
	XHDR_T_HELLO_CUT = 1 << 2,
	XHDR_T_SCAN_LIMIT = 1 << 3,
	XHDR_T_TOO_MANY_EXTENSIONS = 1 << 4,
	XHDR_T_BAD_EXTENSIONS = 1 << 5,
	XHDR_T_SPLIT_EXTENSION = 1 << 6,
};

enum xhdr_slot_flag {
	XHDR_S_PRESENT = 1 << 0,
	XHDR_S_TRUNCATED = 1 << 1,
	XHDR_S_CUT = 1 << 2,
	XHDR_S_REPEATED = 1 << 3,
};

/* Each frame counts once in packets and once in exactly one outcome (docs/EXTRACTION.md, R1-R8, R15, R16). */
enum xhdr_counter {
	XHDR_C_PACKETS,
	XHDR_C_MALFORMED,
	XHDR_C_VLAN_TOO_DEEP,
	XHDR_C_NOT_IP,
	XHDR_C_LATER_FRAGMENT,
	XHDR_C_IPV6_EXT_HEADER,
	XHDR_C_NOT_TCP,
	XHDR_C_PORT_NOT_WATCHED,
	XHDR_C_TCP_WATCHED,
	XHDR_C_NO_PAYLOAD,
	XHDR_C_NOT_HTTP,
	XHDR_C_HTTP_REQUEST,
	XHDR_C_EVENTS,
	XHDR_C_EVENTS_LOST,
	XHDR_C_MID_STREAM,
	XHDR_C_OUT_OF_SYNC,
	XHDR_C_RETRANSMITTED,
	XHDR_C_OUT_OF_ORDER,
	XHDR_C_BODY,
	XHDR_C_FLOWS_OPENED,
	XHDR_C_FLOWS_CLOSED,
	XHDR_C_FLOWS_LOST,
	XHDR_C_CONTINUED,
	XHDR_C_TLS_HELLO,
	XHDR_C_NOT_TLS,
	XHDR_C_ENCRYPTED,
	/* R25: responses leaving through the egress program; no frame of PACKETS is among them */
	XHDR_C_RESPONSES,
	XHDR_C_RESPONSES_UNMATCHED,
	/* R28, R29: requests a count or sample rule kept from the ring; segments a drop rule dropped */
	XHDR_C_EVENTS_WITHHELD,
	XHDR_C_DROPPED,
	XHDR_C_BLOCKED,		/* R29: an outcome: a segment of a blocked flow, dropped */
	XHDR_C_RESPONSES_WITHHELD,	/* R28: responses to requests whose events a rule withheld */
	XHDR_C_COUNT,
};

struct xhdr_counters {
	__u64 count[XHDR_C_COUNT];
};

struct xhdr_slot {
	__u64 hash;		/* SipHash-2-4 of the value (hash and auth modes) */
	__u16 length;		/* trimmed value length as seen, before truncation */
	__u16 value_len;	/* bytes of the logged value (or scheme) in data[] */
	__u16 value_off;	/* where they start in data[] */
	__u8 flags;		/* enum xhdr_slot_flag */
	__u8 reserved;
};

struct xhdr_event {
	__u64 timestamp_ns;
	__u8 saddr[16];		/* IPv4 uses the first four bytes */
	__u8 daddr[16];
	__u32 ifindex;
	__u16 sport;
	__u16 dport;
	__u16 vlan_ids[2];
	__u16 target_length;	/* target (TLS: SNI) bytes seen, before truncation */
	__u16 flags;		/* enum xhdr_event_flag (TLS: enum xhdr_tls_flag) */
	__u8 family;		/* 4 or 6 */
	__u8 version;		/* 10, 11, or 0 when the request line was cut before it */
	__u8 method_len;
	__u8 vlan_count;
	__u8 request_index;
	__u8 header_lines;
	__u16 data_len;		/* bytes used in data[]; the ring-buffer record ends there */
	__u16 tls_version;	/* TLS: the version the ClientHello offers (R22) */
	__u16 alpn_length;	/* TLS: the ALPN list's bytes, before truncation; kept in data[] after the SNI */
	__u8 kind;		/* enum xhdr_kind */
	__u8 reserved;
	__u16 status;		/* a response: its status code (R25) */
	__u64 request_ns;	/* a response: the timestamp_ns of the request it answers (R25) */
	__u16 rule_off;		/* R27: the name of the rule the request matched is in data[] here, */
	__u8 rule_len;		/* this long (0: no rule matched) */
	__u8 action;		/* R28: that rule's enum xhdr_action */
	__u8 unused[4];
	struct xhdr_slot slots[XHDR_SLOTS];
	/* Everything above is zeroed when a request starts; the buffers below are only read up to their lengths. */
	__u8 method[XHDR_METHOD_MAX];
	/*
	 * The target (its first min(target_length, XHDR_MAX_TARGET_LEN) bytes), then each logged value or
	 * scheme where its slot says. A TLS event holds its SNI (the first min(target_length,
	 * XHDR_MAX_TARGET_LEN) bytes) and the first min(alpn_length, XHDR_MAX_VALUE_LEN) bytes of its ALPN
	 * list where slots 0 and 1 say, in the order the ClientHello had them. Packed, so a record carries only what was found: sending the whole
	 * worst-case buffer made writing the record cost more than parsing the request. Last, the name of the
	 * request's rule, if one matched (R27).
	 */
	__u8 data[XHDR_MAX_TARGET_LEN + XHDR_SLOTS * XHDR_MAX_VALUE_LEN + XHDR_RULE_NAME_MAX];
};

#define XHDR_EVENT_FIXED_BYTES offsetof(struct xhdr_event, data)

/* R27-R29: request rules, written by user space (harness/core/program.py) and changed at runtime. */
#define XHDR_RULES 8
#define XHDR_RULE_CONDITIONS 4
#define XHDR_PATTERN_WORDS 4	/* a pattern's bytes, at most 32, compared as masked words */
#define XHDR_COUNT_BY 2		/* R30: the headers one rule counts the values of */
#define XHDR_FIELD_METHOD XHDR_SLOTS	/* a condition's field: a slot (its value), the method or the target */
#define XHDR_FIELD_TARGET (XHDR_SLOTS + 1)

enum xhdr_action {
	XHDR_ACTION_NONE = 0,
	XHDR_ACTION_LOG = 1,
	XHDR_ACTION_DROP = 2,
	XHDR_ACTION_COUNT = 3,
	XHDR_ACTION_SAMPLE = 4,
};

enum xhdr_match {
	XHDR_MATCH_EXACT = 1,
	XHDR_MATCH_PREFIX = 2,
	XHDR_MATCH_CONTAINS = 3,
};

struct xhdr_condition {
	__u64 pattern[XHDR_PATTERN_WORDS];	/* little-endian words, zero after the pattern */
	__u64 mask[XHDR_PATTERN_WORDS];		/* 0xFF for each byte of the pattern */
	__u8 field;
	__u8 match;				/* enum xhdr_match */
	__u8 len;
	__u8 unused[5];
};

struct xhdr_rule {
	__u64 name[XHDR_RULE_NAME_MAX / 8];	/* zero after the name */
	__u64 key;				/* R30: what its counts by header value are keyed by (a hash of the name) */
	__u8 name_len;
	__u8 action;				/* enum xhdr_action */
	__u8 conditions;			/* all of cond[0..conditions) must hold */
	__u8 count_by[XHDR_COUNT_BY];		/* R30: slots whose values are counted, each + 1 (0: none) */
	__u8 unused[3];
	__u32 every;				/* XHDR_ACTION_SAMPLE: one event per this many hits on a CPU */
	struct xhdr_condition cond[XHDR_RULE_CONDITIONS];
};

/* R30: what one rule's matches had in one header, by endpoint: the key of the `aggregates` map. */
struct xhdr_aggregate_key {
	__u64 rule;		/* the rule's key, a hash of its name: counts go on across a reload that keeps the name */
	__u64 endpoint;		/* R26: a hash of the endpoint */
	__u64 value;		/* SipHash-2-4 of the value as logged, with the extractor's key (0: the header was absent) */
	__u32 slot;
	__u32 zero;
};

#define XHDR_SHOWN_VALUE 32	/* R30: a value's first bytes, kept for display */
#define XHDR_ENDPOINT_BYTES 64	/* R26: an endpoint's bytes */

struct xhdr_aggregate {
	__u64 count;		/* requests, over all CPUs (atomic adds) */
	__u8 path[XHDR_ENDPOINT_BYTES];	/* the endpoint, zero after it */
	__u8 shown[XHDR_SHOWN_VALUE];	/* the value's first bytes, zero after them */
	__u16 length;		/* the value's length as logged */
	__u8 present;
	__u8 unused[5];
};

struct xhdr_rules {
	__u32 count;
	__u32 unused;
	struct xhdr_rule rule[XHDR_RULES];
};

#define XHDR_NAME_WORDS (XHDR_NAME_MAX / 8)

/* Written by user space (harness/core/program.py); read once per packet. */
struct xhdr_names {
	__u64 key[2];				/* SipHash key for hash and auth modes */
	__u64 name[XHDR_SLOTS][XHDR_NAME_WORDS];	/* each name lower-cased, zero-padded, little-endian words */
	__u64 fold[XHDR_SLOTS][XHDR_NAME_WORDS];	/* 0x20 where the name has a letter: (word | fold) == name */
	__u8 mode[XHDR_SLOTS];			/* enum xhdr_mode per slot */
	__u8 highest_bit[256];			/* index of the highest set bit of a byte (0 for 0) */
	__u8 len_mask[XHDR_NAME_MAX + 1];	/* slots whose name has this length */
	__u8 responses;				/* R24: logged requests wait for their responses */
	__u32 wake_bytes;			/* a CPU wakes the consumer after writing this much */
};

#endif /* XHDR_EVENT_H */
