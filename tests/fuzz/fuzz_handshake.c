/*
 * fuzz_handshake.c - libFuzzer target for the distribution handshake
 * (dist/handshake.c): the fuzz input is what a peer sends, and the
 * handshake machine takes it frame by frame exactly as krd_handshake_accept
 * and krd_handshake_connect would read it from a socket, with no VM and no
 * socket.
 *
 * Input: byte 0 chooses the side (bit 0: 0 accepting, 1 initiating) and,
 * for the accepting side, what admit answers (bits 1-3, modulo the five
 * statuses); the rest is the peer's byte stream: 2-byte big-endian frame
 * lengths and frames. Our challenge is fixed at 0x12345678 (cookie "fuzz",
 * we are "me@fuzz", the initiator wants "peer@fuzz"), so that a seed with
 * the right digests (tests/fuzz/corpus/handshake/) reaches a finished
 * handshake and the fuzzer explores from there.
 *
 * Checked besides the sanitizers: a handshake that succeeds has a valid
 * peer name, and the machine never claims more output than its buffer.
 *
 *   make fuzz-handshake-short    about 20 s (what make test runs)
 *   make fuzz-handshake          FUZZ_SECONDS, 600 by default
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handshake.h"
#include "krill.h"

/* The drivers in handshake.c do I/O through krill; the fuzzer drives the
 * machine alone and never calls them. These stand in for the linker. */
ssize_t kr_read(int fd, void *buf, size_t len, long timeout_ms)
{
	abort();
}

ssize_t kr_write(int fd, const void *buf, size_t len, long timeout_ms)
{
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static krd_hs_status fuzz_admit(const krd_hs_peer *peer, void *ctx)
{
	if (!krd_is_node_name(peer->name, strlen(peer->name)))
		abort(); /* admit is shown only a checked name */
	return (krd_hs_status)(*(const uint8_t *)ctx % 5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const krd_hs_self me = {
		.name = "me@fuzz", .cookie = "fuzz", .flags = 0x7ffffffffull,
		.required = 0x1070f94ull, .creation = 7
	};
	uint8_t answer = (uint8_t)(data[0] >> 1);
	krd_hs hs;
	int rc = data[0] & 1 ? krd_hs_init_connect(&hs, &me, "peer@fuzz")
	                     : krd_hs_init_accept(&hs, &me, fuzz_admit, &answer);
	if (rc != 0)
		abort();
	hs.challenge = 0x12345678;
	size_t at = 1;
	rc = KRD_HS_MORE;
	while (rc == KRD_HS_MORE && size - at >= 2) {
		int len = krd_hs_frame_len(data + at);
		if (len < 0 || (size_t)len > size - at - 2)
			break; /* refused from its header, or truncated: the driver stops too */
		hs.out_len = 0;
		rc = krd_hs_step(&hs, data + at + 2, (size_t)len);
		if (hs.out_len > sizeof hs.out)
			abort();
		at += 2 + (size_t)len;
	}
	if (rc == 0 && !krd_is_node_name(hs.peer.name, strlen(hs.peer.name)))
		abort();
	return 0;
}
