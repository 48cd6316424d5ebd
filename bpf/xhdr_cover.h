/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The labelled branches of bpf/xhdr.c that a coverage build counts (-DXHDR_COVERAGE): one per decision the
 * rules of docs/EXTRACTION.md make. xhdr.c marks each with COVER(NAME), which counts XHDR_COV_NAME in the
 * per-CPU `coverage` map of a coverage build and is nothing in every other build.
 *
 * This enum is the only list of labels: harness/core/coverage.py reads their names from this file, and
 * tests/test_layout.py checks what it read against the compiler. A new label is a new line here and a
 * COVER() in xhdr.c. Keep one member per line, no explicit values.
 */
#ifndef XHDR_COVER_H
#define XHDR_COVER_H

enum xhdr_cover {
	/* R1-R6: the entry program */
	XHDR_COV_VLAN,			/* a VLAN tag read */
	XHDR_COV_IPV6,			/* an IPv6 packet */
	XHDR_COV_TCP_PAYLOAD,		/* a watched TCP segment with a payload, its flow looked up */
	XHDR_COV_SCAN_LIMIT,		/* R7: the payload is longer than the view */
	/* R15, R16: the flow */
	XHDR_COV_FLOW_OPENED,		/* a SYN opened a new flow state */
	XHDR_COV_FLOW_REOPENED,		/* a SYN reset a state that was there */
	XHDR_COV_FLOW_CLOSED,		/* RST or FIN removed a state */
	XHDR_COV_FLOW_LOST,		/* the flow is out of sync from now on */
	XHDR_COV_MID_STREAM,		/* no state for the flow */
	XHDR_COV_OUT_OF_SYNC,		/* the flow was lost */
	XHDR_COV_RETRANSMITTED,		/* nothing new in the segment */
	XHDR_COV_OUT_OF_ORDER,		/* the segment starts after the expected byte */
	XHDR_COV_OVERLAP,		/* the segment starts before the expected byte and goes past it */
	XHDR_COV_BODY_SKIPPED,		/* the whole segment is body */
	XHDR_COV_BODY_ENDS,		/* a body ends inside the segment and a request follows */
	XHDR_COV_START_PAST_VIEW,	/* where the flow expects a request is past the view */
	XHDR_COV_RESUMED,		/* R18: a header section goes on from the flow's last segment */
	XHDR_COV_RESUME_GONE,		/* R18: its kept event was evicted */
	/* R8-R10: the request line */
	XHDR_COV_NO_METHOD,		/* the view ends where a method should start */
	XHDR_COV_METHOD_BAD,		/* empty, too long, a non-tchar in it or no SP after it */
	XHDR_COV_METHOD,		/* a method and its SP */
	XHDR_COV_TARGET_STEP,		/* a target longer than one step */
	XHDR_COV_TARGET_BAD,		/* empty target, or a CTL other than SP after it */
	XHDR_COV_TARGET_TRUNCATED,	/* longer than XHDR_MAX_TARGET_LEN */
	XHDR_COV_VERSION_BAD,		/* not HTTP/1.0 or HTTP/1.1 */
	XHDR_COV_VERSION_10,
	XHDR_COV_VERSION_11,
	XHDR_COV_LINE_END_BAD,		/* neither CRLF nor LF after the version */
	XHDR_COV_REQUEST_LINE_LF,	/* a bare LF ends the request line */
	XHDR_COV_REQUEST_LINE_CUT,	/* R10: the view ends in the request line */
	/* R11: header lines */
	XHDR_COV_EMPTY_LINE,		/* CRLF ends the header section */
	XHDR_COV_EMPTY_LINE_LF,		/* a bare LF ends it */
	XHDR_COV_LONE_CR,		/* the segment ends with a CR where a line starts */
	XHDR_COV_CR_THEN_LF,		/* R18: ... and the next segment starts with its LF */
	XHDR_COV_CR_THEN_OTHER,		/* R18: ... and with anything else: a bad line */
	XHDR_COV_TOO_MANY_HEADERS,
	XHDR_COV_SKIP_STEP,		/* the rest of a line takes more than one step */
	XHDR_COV_SKIP_LF,		/* a skipped line ends with a bare LF */
	/* R12: field names */
	XHDR_COV_OBS_FOLD,		/* a line starting with SP or HT */
	XHDR_COV_WS_BEFORE_COLON,
	XHDR_COV_BAD_LINE,		/* any other name not ended by a colon */
	XHDR_COV_NAME_RARE_BYTE,	/* a tchar other than a letter, a digit or - in a name, or a bad name */
	XHDR_COV_LONG_NAME,		/* longer than any configured name */
	XHDR_COV_LONG_NAME_STEP,	/* ... and longer than one more step */
	XHDR_COV_LONG_NAME_BAD,		/* ... and not ended by a colon */
	XHDR_COV_NAME_MATCHED,		/* a configured name */
	XHDR_COV_NAME_REPEATED,		/* a configured name seen before in the request */
	XHDR_COV_NAME_SKIPPED,		/* a name that is not logged */
	/* R13: field values */
	XHDR_COV_VALUE_STEP,		/* a value longer than one step */
	XHDR_COV_VALUE_EMPTY,		/* only SP and HT, or nothing */
	XHDR_COV_VALUE_FINAL_CR,	/* a CR dropped before the LF */
	XHDR_COV_VALUE_LF,		/* a bare LF ends a logged value */
	XHDR_COV_VALUE_CUT,		/* the view ends in the value */
	XHDR_COV_VALUE_GOES_ON,		/* R18: a value or presence value goes on in the next segment */
	XHDR_COV_VALUE_CONTINUED,	/* R18: more of a value that the previous segment cut */
	XHDR_COV_VALUE_TRUNCATED,	/* longer than XHDR_MAX_VALUE_LEN */
	XHDR_COV_VALUE_COPIED,		/* value mode */
	XHDR_COV_VALUE_HASHED,		/* hash or auth mode */
	XHDR_COV_AUTH_SCHEME,		/* an auth scheme kept */
	XHDR_COV_AUTH_NO_SCHEME,	/* an auth value without a scheme and SP */
	/* R17, R19: the body's length */
	XHDR_COV_CONTENT_LENGTH,	/* a good Content-Length */
	XHDR_COV_CONTENT_LENGTH_LONG,	/* ... of 9 to 16 digits */
	XHDR_COV_CONTENT_LENGTH_BAD,	/* a bad, empty, cut or second one */
	XHDR_COV_TRANSFER_ENCODING,
	XHDR_COV_CL_AND_TE,
	XHDR_COV_TE_CHUNKED,		/* ... whose last coding is chunked */
	XHDR_COV_TE_NOT_CHUNKED,
	XHDR_COV_CONTROL_BYTE,		/* R19: a control byte in a line that is not its end */
	/* R11, R14, R17, R18: where a request ends */
	XHDR_COV_BODY_UNKNOWN,		/* the flow is lost after the request */
	XHDR_COV_ENDS_WITH_PAYLOAD,	/* the request (and its body) ends with the segment */
	XHDR_COV_BODY_GOES_ON,		/* its body goes on in the next segment */
	XHDR_COV_PIPELINED,		/* another request follows in the same segment */
	XHDR_COV_PIPELINE_LOST,		/* one follows that cannot be read now */
	XHDR_COV_HEADERS_KEPT,		/* R18: the header section goes on in the next segment */
	XHDR_COV_NAME_SPLIT,		/* ... cut inside a name */
	XHDR_COV_HEADERS_CUT,		/* the view ends before the empty line: logged as cut */
	/* R20: chunked bodies */
	XHDR_COV_CHUNKED_BODY,		/* a request's body is chunked: walked in this segment */
	XHDR_COV_SECOND_CHUNKED_BODY,	/* ... a second one in the segment: the flow is lost */
	XHDR_COV_CHUNKS_AT_START,	/* a segment starts inside a chunked body */
	XHDR_COV_CHUNK_DATA,		/* a run of chunk data skipped */
	XHDR_COV_CHUNK_EXTENSION,	/* a chunk extension */
	XHDR_COV_CHUNK_TRAILER,		/* a trailer line */
	XHDR_COV_CHUNKS_END,		/* the body ends in the segment */
	XHDR_COV_CHUNKS_GO_ON,		/* the body goes on in the next segment */
	XHDR_COV_CHUNKS_BAD,		/* a byte the grammar does not allow, or a framing byte past the view */
	XHDR_COV_CHUNK_STEPS_OVER,	/* XHDR_CHUNK_STEPS did not reach an end */
	/* R21, R22: TLS */
	XHDR_COV_ENCRYPTED,		/* a segment of a TLS flow after its first */
	XHDR_COV_PORT_KIND_CHANGED,	/* the flow's mode is of the other kind of port */
	XHDR_COV_NOT_TLS,		/* a TLS flow's first bytes are not a ClientHello */
	XHDR_COV_TLS_HELLO,		/* a ClientHello read */
	XHDR_COV_TLS_SNI,		/* its server name */
	XHDR_COV_TLS_SNI_TRUNCATED,
	XHDR_COV_TLS_ALPN,		/* its ALPN list */
	XHDR_COV_TLS_ALPN_TRUNCATED,
	XHDR_COV_TLS_VERSIONS,		/* its supported_versions */
	XHDR_COV_TLS_GREASE,		/* a GREASE version skipped */
	XHDR_COV_TLS_HELLO_CUT,		/* the view ends inside it */
	XHDR_COV_TLS_BAD_EXTENSIONS,	/* an extension runs past the extensions' end */
	XHDR_COV_TLS_TOO_MANY_EXTENSIONS,
	XHDR_COV_TLS_HELLO_GOES_ON,	/* R23: it is kept for the flow's next segment */
	XHDR_COV_TLS_HELLO_RESUMED,	/* R23: it goes on from the last segment */
	XHDR_COV_TLS_SPLIT_EXTENSION,	/* R23: the segment's end splits an extension R22 reads */
	XHDR_COV_TLS_HEADER_SPLIT,	/* R23: the segment's end splits an extension's header, kept in the flow */
	XHDR_COV_TLS_HEADER_FINISHED,	/* R23: the next segment's first bytes finish that header */
	/* R27-R29: rules */
	XHDR_COV_RULE_LOGS,		/* a request matched a log rule, or a sample rule's Nth hit */
	XHDR_COV_RULE_WITHHOLDS,	/* a count rule, or a sample rule's other hits: no event */
	XHDR_COV_RULE_DROPS,		/* a drop rule matched */
	XHDR_COV_RULE_CONTAINS_STEP,	/* a contains test goes on past sixteen positions */
	XHDR_COV_RULE_COUNTS_VALUES,	/* R30: a matched rule counts by headers */
	XHDR_COV_SEGMENT_DROPPED,	/* R28: the segment is dropped, its flow blocked */
	XHDR_COV_BLOCKED,		/* R29: a segment of a blocked flow, dropped */
	XHDR_COV_BLOCKED_FIN,		/* R29: a FIN without payload leaves it blocked */
	/* Stages */
	XHDR_COV_SCAN_TAIL_CALL,	/* the scan goes on in another invocation */
	XHDR_COV_OUT_OF_STEPS,		/* which the step bound rules out */
	XHDR_COV_HASH_STAGE,
	XHDR_COV_EVENT_LOST,		/* the ring buffer was full */
	XHDR_COV_KEPT_FOR_NEXT,		/* R18: an event kept in `pending` */
	XHDR_COV_COUNT,
};

#endif /* XHDR_COVER_H */
