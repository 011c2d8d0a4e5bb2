/*
 * peer.c - the peer table, its connection states, and remote pids
 * (peer.h).
 *
 * One mutex guards every state change; it is never held across a krill
 * call (a call may yield, and another process on this thread would then
 * wait on a lock its own thread holds). Slots and pid table entries are
 * written once, then published with a release store of their count, so
 * the send path reads them without the lock.
 */
#include "peer.h"

#include <atomic_ops.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "node.h"

#define SLOT_SHIFT 50
#define SLOTS 8192          /* slot 0 is this node */
#define BIG_BIT ((uint64_t)1 << 49)
#define ID_BITS 26
#define SERIAL_BITS 23      /* of 24: the top one marks a table entry */
#define BIG_CHUNK 4096
#define BIG_CHUNKS 4096     /* 16 M pids that do not fit, at most */

typedef struct slot {
	krd_peer *peer;
	uint32_t creation;
} slot;

typedef struct big_pid {
	uint32_t slot, id, serial;
} big_pid;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static slot slots[SLOTS];
static AO_t nslots = 1; /* slots[1 .. nslots) are published */
static krd_peer **peers;
static size_t npeers, peers_cap;
static big_pid *big[BIG_CHUNKS];
static AO_t nbig;
static uint32_t *big_index; /* open addressing: entry + 1, 0 empty */
static size_t big_index_cap;

/* ---- peers ---- */

/* p went DOWN (the caller made it so, and holds no lock): its links and
 * monitors fire, and if it had been UP, node watchers hear of it. */
static void peer_lost(krd_peer *p, bool was_up)
{
	krd_track_lost(&p->track, p->name);
	if (was_up)
		krd_node_event(p->name, false);
}

krd_peer *krd_peer_find(const char *name, bool create)
{
	if (strlen(name) > KRD_NODE_NAME_MAX)
		return NULL;
	krd_peer *found = NULL;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < npeers && !found; i++)
		if (!strcmp(peers[i]->name, name))
			found = peers[i];
	if (!found && create) {
		if (npeers == peers_cap) {
			size_t cap = peers_cap ? peers_cap * 2 : 16;
			krd_peer **p = realloc(peers, cap * sizeof *p);
			if (p)
				peers = p, peers_cap = cap;
		}
		if (npeers < peers_cap && (found = calloc(1, sizeof *found))) {
			strcpy(found->name, name);
			krd_track_init(&found->track);
			peers[npeers++] = found;
		}
	}
	pthread_mutex_unlock(&lock);
	return found;
}

krd_peer *krd_peer_of(kr_pid pid, uint32_t *creation)
{
	uint64_t s = (uint64_t)pid >> SLOT_SHIFT;
	/* Acquire: pairs with slot_for's release; the slot is written. */
	if (pid <= 0 || !s || s >= AO_load_acquire(&nslots))
		return NULL;
	*creation = slots[s].creation;
	return slots[s].peer;
}

/* The slot of (p, creation), made if new: under the lock. 0 when full. */
static uint32_t slot_for(krd_peer *p, uint32_t creation)
{
	size_t n = AO_load(&nslots);
	for (size_t i = 1; i < n; i++)
		if (slots[i].peer == p && slots[i].creation == creation)
			return (uint32_t)i;
	if (n == SLOTS)
		return 0;
	slots[n] = (slot){p, creation};
	AO_store_release(&nslots, n + 1); /* readers see the slot written */
	return (uint32_t)n;
}

bool krd_peer_writer_alive(krd_peer *p)
{
	pthread_mutex_lock(&lock);
	kr_pid w = p->writer;
	pthread_mutex_unlock(&lock);
	return w > 0 && kr_is_alive(w);
}

uint32_t krd_peer_creation(krd_peer *p)
{
	pthread_mutex_lock(&lock);
	uint32_t c = p->state == KRD_UP ? p->creation : 0;
	pthread_mutex_unlock(&lock);
	return c;
}

/* Under the lock: p is DOWN. Its writer (to stop), and in *was_up
 * whether it had been UP. */
static kr_pid down(krd_peer *p, bool *was_up)
{
	kr_pid w = p->writer;
	*was_up = p->state == KRD_UP;
	p->state = KRD_DOWN;
	p->writer = p->reader = p->connector = p->asked_alive = 0;
	p->creation = 0;
	AO_store(&p->queued, 0); /* what the writer held goes with it */
	return w;
}

kr_pid krd_peer_writer(krd_peer *p)
{
	pthread_mutex_lock(&lock);
	kr_pid w = p->writer;
	pthread_mutex_unlock(&lock);
	if (w > 0 && kr_is_alive(w))
		return w;
	if (w > 0) { /* killed from outside: the peer starts again from DOWN */
		pthread_mutex_lock(&lock);
		bool lost = p->writer == w, was_up = false;
		if (lost)
			(void)down(p, &was_up);
		pthread_mutex_unlock(&lock);
		if (lost)
			peer_lost(p, was_up);
	}
	/* Spawn outside the lock (a spawn may yield), then claim. */
	w = krd_writer_spawn(p);
	if (w <= 0)
		return 0;
	pthread_mutex_lock(&lock);
	kr_pid had = p->writer;
	bool call = false;
	if (!had) {
		p->writer = w;
		if (p->state == KRD_DOWN)
			p->state = KRD_PENDING;
		call = !p->reader && !p->connector; /* no connection under way: make one */
	}
	pthread_mutex_unlock(&lock);
	if (had) { /* another sender won: ours goes */
		kr_exit_sig(w, KR_EXIT_SHUTDOWN);
		return had;
	}
	if (call)
		(void)krd_connector_spawn(p);
	return w;
}

bool krd_peer_still_pending(krd_peer *p, kr_pid self)
{
	pthread_mutex_lock(&lock);
	bool ok = p->state == KRD_PENDING && p->connector == self && !p->reader;
	pthread_mutex_unlock(&lock);
	return ok;
}

bool krd_peer_connecting(krd_peer *p, kr_pid self)
{
	pthread_mutex_lock(&lock);
	bool ok = p->state == KRD_PENDING && !p->reader && !p->connector;
	if (ok)
		p->connector = self;
	pthread_mutex_unlock(&lock);
	return ok;
}

/* Connection states. ---- */

krd_hs_status krd_peer_admit(krd_peer *p, kr_pid self)
{
	krd_hs_status st = KRD_HS_OK;
	pthread_mutex_lock(&lock);
	switch (p->state) {
	case KRD_DOWN:
		p->state = KRD_PENDING;
		p->reader = self;
		break;
	case KRD_PENDING:
		if (p->reader) {
			st = KRD_HS_NOK; /* another of theirs is under way */
		} else if (p->connector && strcmp(krd_me.name, p->name) > 0) {
			st = KRD_HS_NOK; /* ours wins (net_kernel: the greater name refuses) */
		} else {
			st = p->connector ? KRD_HS_OK_SIMULTANEOUS : KRD_HS_OK;
			p->reader = self;
			p->connector = 0; /* ours loses its claim (net_kernel kills it) */
		}
		break;
	case KRD_UP:
		st = KRD_HS_ALIVE; /* the peer may have restarted: it says */
		p->asked_alive = self;
		break;
	}
	pthread_mutex_unlock(&lock);
	return st;
}

void krd_peer_connector_lost(krd_peer *p, kr_pid self)
{
	pthread_mutex_lock(&lock);
	if (p->connector == self)
		p->connector = 0;
	pthread_mutex_unlock(&lock);
}

kr_pid krd_peer_up(krd_peer *p, kr_pid self, uint32_t creation, uint64_t flags)
{
	kr_pid w = 0, old = 0;
	pthread_mutex_lock(&lock);
	bool mine = p->state == KRD_PENDING && (p->reader == self || (!p->reader &&
	                                                               p->connector == self));
	bool takeover = p->state == KRD_UP && p->asked_alive == self; /* answered alive/true */
	if ((mine || takeover) && slot_for(p, creation)) {
		old = takeover ? p->reader : 0;
		p->asked_alive = 0;
		p->state = KRD_UP;
		p->reader = self;
		if (p->connector == self)
			p->connector = 0;
		p->creation = creation;
		p->flags = flags;
		w = p->writer;
	}
	pthread_mutex_unlock(&lock);
	if (old)
		kr_exit_sig(old, KR_EXIT_SHUTDOWN);
	if (w && !old)
		krd_node_event(p->name, true);
	return w;
}

kr_pid krd_peer_gone(krd_peer *p, kr_pid self)
{
	kr_pid w = 0;
	pthread_mutex_lock(&lock);
	bool had_role = p->connector == self || p->reader == self;
	if (p->connector == self)
		p->connector = 0;
	if (p->reader == self)
		p->reader = 0;
	/* Down when nothing else may still bring it up: self was the
	 * connection, or the last attempt. A process that held no part (one
	 * refused, or that lost its claim, or one left over from before a
	 * kr_node_stop) leaves the peer to those that hold one: its end must
	 * not drop what a later attempt's writer holds. */
	bool lost = had_role && (p->state == KRD_UP ? p->reader == 0
	                                            : p->state == KRD_PENDING && !p->reader &&
	                                                      !p->connector);
	bool was_up = false;
	if (lost)
		w = down(p, &was_up);
	pthread_mutex_unlock(&lock);
	if (lost)
		peer_lost(p, was_up);
	return w;
}

bool krd_peer_writer_gone(krd_peer *p, kr_pid w)
{
	pthread_mutex_lock(&lock);
	bool gone = p->writer != w || p->state == KRD_PENDING;
	bool lost = p->writer == w && p->state == KRD_PENDING, was_up = false;
	if (lost)
		(void)down(p, &was_up);
	pthread_mutex_unlock(&lock);
	if (lost)
		peer_lost(p, was_up);
	return gone;
}

void krd_peers_reset(void)
{
	pthread_mutex_lock(&lock);
	size_t n = npeers;
	krd_peer **all = malloc(n * sizeof *all + 1);
	bool *up = malloc(n * sizeof *up + 1);
	for (size_t i = 0; i < n; i++) {
		bool was_up;
		(void)down(peers[i], &was_up);
		if (all && up)
			all[i] = peers[i], up[i] = was_up;
	}
	pthread_mutex_unlock(&lock);
	/* A peer lives until the VM stops; the array may move meanwhile. */
	for (size_t i = 0; all && up && i < n; i++)
		peer_lost(all[i], up[i]);
	free(all);
	free(up);
}

int krd_peers_up(const char **out, int n)
{
	int k = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < npeers; i++)
		if (peers[i]->state == KRD_UP) {
			if (k < n)
				out[k] = peers[i]->name;
			k++;
		}
	pthread_mutex_unlock(&lock);
	return k;
}

int krd_peers_procs(kr_pid *out, int n)
{
	int k = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < npeers; i++) {
		kr_pid ps[3] = {peers[i]->writer, peers[i]->reader, peers[i]->connector};
		for (int j = 0; j < 3; j++)
			if (ps[j] && k < n)
				out[k++] = ps[j];
	}
	pthread_mutex_unlock(&lock);
	return k;
}

/* ---- pids ---- */

static uint64_t big_hash(uint32_t s, uint32_t id, uint32_t serial)
{
	uint64_t h = ((uint64_t)s << 40) ^ ((uint64_t)serial << 20) ^ id;
	h *= 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

static big_pid *big_at(uint64_t i)
{
	return &big[i / BIG_CHUNK][i % BIG_CHUNK];
}

static bool big_index_grow(void)
{
	size_t cap = big_index_cap ? big_index_cap * 2 : 1024;
	uint32_t *ix = calloc(cap, sizeof *ix);
	if (!ix)
		return false;
	uint64_t n = AO_load(&nbig);
	for (uint64_t e = 0; e < n; e++) {
		big_pid *b = big_at(e);
		size_t h = big_hash(b->slot, b->id, b->serial) & (cap - 1);
		while (ix[h])
			h = (h + 1) & (cap - 1);
		ix[h] = (uint32_t)e + 1;
	}
	free(big_index);
	big_index = ix;
	big_index_cap = cap;
	return true;
}

/* The table entry of a pid that does not fit: under the lock. */
static kr_pid big_join(uint32_t s, uint32_t id, uint32_t serial)
{
	uint64_t n = AO_load(&nbig);
	if ((n + 1) * 2 > big_index_cap && !big_index_grow())
		return KR_ENOMEM;
	size_t h = big_hash(s, id, serial) & (big_index_cap - 1);
	for (; big_index[h]; h = (h + 1) & (big_index_cap - 1)) {
		big_pid *b = big_at(big_index[h] - 1);
		if (b->slot == s && b->id == id && b->serial == serial)
			return (kr_pid)((uint64_t)s << SLOT_SHIFT | BIG_BIT | (big_index[h] - 1));
	}
	if (n == (uint64_t)BIG_CHUNK * BIG_CHUNKS)
		return KR_ELIMIT;
	if (!big[n / BIG_CHUNK] && !(big[n / BIG_CHUNK] = malloc(BIG_CHUNK * sizeof(big_pid))))
		return KR_ENOMEM;
	*big_at(n) = (big_pid){s, id, serial};
	big_index[h] = (uint32_t)n + 1;
	AO_store_release(&nbig, n + 1); /* krd_pid_split reads the entry unlocked */
	return (kr_pid)((uint64_t)s << SLOT_SHIFT | BIG_BIT | n);
}

kr_pid krd_peer_anchor(krd_peer *p)
{
	pthread_mutex_lock(&lock);
	uint32_t s = slot_for(p, 0);
	pthread_mutex_unlock(&lock);
	return s ? (kr_pid)((uint64_t)s << SLOT_SHIFT) : KR_ELIMIT;
}

kr_pid krd_pid_join(const char *node, uint32_t id, uint32_t serial, uint32_t creation)
{
	if (krd_node_running() && !strcmp(node, krd_me.name)) {
		if (creation != krd_me.creation || !serial || id >> ID_BITS || serial >> 24)
			return 0; /* an earlier incarnation of this node, or never a pid of ours */
		return (kr_pid)((uint64_t)serial << ID_BITS | id);
	}
	krd_peer *p = krd_peer_find(node, true);
	if (!p)
		return KR_ENOMEM;
	pthread_mutex_lock(&lock);
	uint32_t s = slot_for(p, creation);
	kr_pid pid = KR_ELIMIT;
	if (s && !(id >> ID_BITS) && !(serial >> SERIAL_BITS))
		pid = (kr_pid)((uint64_t)s << SLOT_SHIFT | (uint64_t)serial << ID_BITS | id);
	else if (s)
		pid = big_join(s, id, serial);
	pthread_mutex_unlock(&lock);
	return pid;
}

bool krd_pid_split(kr_pid pid, krd_pid_parts *out)
{
	if (pid <= 0)
		return false;
	uint64_t u = (uint64_t)pid, s = u >> SLOT_SHIFT;
	if (!s) {
		if (!krd_node_running())
			return false;
		*out = (krd_pid_parts){krd_me.name, (uint32_t)(u & ((1u << ID_BITS) - 1)),
		                       (uint32_t)(u >> ID_BITS), krd_me.creation};
		return true;
	}
	uint32_t creation;
	krd_peer *p = krd_peer_of(pid, &creation);
	if (!p)
		return false;
	if (u & BIG_BIT) {
		uint64_t e = u & (BIG_BIT - 1);
		/* Acquire: pairs with big_join's release; the entry is written. */
		if (e >= AO_load_acquire(&nbig))
			return false;
		big_pid *b = big_at(e);
		*out = (krd_pid_parts){p->name, b->id, b->serial, creation};
		return true;
	}
	*out = (krd_pid_parts){p->name, (uint32_t)(u & ((1u << ID_BITS) - 1)),
	                       (uint32_t)((u >> ID_BITS) & ((1u << SERIAL_BITS) - 1)), creation};
	return true;
}

void krd_peers_free(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < npeers; i++) {
		krd_track_free(&peers[i]->track);
		free(peers[i]);
	}
	free(peers);
	peers = NULL;
	npeers = peers_cap = 0;
	for (size_t i = 0; i < BIG_CHUNKS && big[i]; i++) {
		free(big[i]);
		big[i] = NULL;
	}
	free(big_index);
	big_index = NULL;
	big_index_cap = 0;
	AO_store(&nbig, 0);
	memset(slots, 0, sizeof slots);
	AO_store(&nslots, 1);
	pthread_mutex_unlock(&lock);
}
