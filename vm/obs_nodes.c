/*
 * obs_nodes.c - the observer across a cluster: GET /api/nodes lists the
 * connected nodes, and for each krill node that runs an observer, the
 * address of its page.
 *
 * An observer registers a process as KRX_OBS_NAME ("krill_observer"),
 * which answers a KRX_OBS_TAG_WHERE message (an 8-byte nonce) with
 * KRX_OBS_TAG_HERE: the nonce and the page's URL. To ask a node, a
 * connection's process monitors {krill_observer, Node} by name and sends
 * the question: a node where no process has that name (a BEAM node, a
 * krill node without an observer) answers the monitor with DOWN noproc at
 * once, and its entry gets null; a node that answers neither within
 * ASK_MS gets null too.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "obs.h"

#define ASK_MS 500
#define MAX_NODES 256

/* This node's page: http://host:port/. */
static void url_of(char *buf, size_t len)
{
	krx_obs *o = &krx_obs_state;
	char host[sizeof krx_obs_state.url_host + 72];
	pthread_mutex_lock(&o->lock);
	snprintf(host, sizeof host, "%s", o->url_host);
	int port = o->port;
	pthread_mutex_unlock(&o->lock);
	if (!host[0]) {
		/* Listening on every address: the node's host, as peers know it. */
		const char *node = kr_node_name();
		const char *at = node ? strchr(node, '@') : NULL;
		if (at)
			snprintf(host, sizeof host, "%s", at + 1);
		else if (gethostname(host, sizeof host))
			snprintf(host, sizeof host, "localhost");
	}
	snprintf(buf, len, "http://%s:%d/", host, port);
}

void krx_obs_where_main(void *arg)
{
	(void)arg;
	(void)kr_register(KRX_OBS_NAME, kr_self()); /* taken by someone: we stay silent */
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, KR_INFINITY))
			continue;
		if (m->tag == KRX_OBS_TAG_WHERE && m->len == sizeof(uint64_t) && m->sender > 0) {
			char buf[sizeof(uint64_t) + 200];
			memcpy(buf, m->data, sizeof(uint64_t));
			url_of(buf + sizeof(uint64_t), sizeof buf - sizeof(uint64_t));
			kr_send(m->sender, KRX_OBS_TAG_HERE, buf,
			        sizeof(uint64_t) + strlen(buf + sizeof(uint64_t)));
		}
		kr_msg_free(m);
	}
}

typedef struct wait_for {
	kr_ref ref;
	uint64_t nonce;
} wait_for;

static int is_answer(const kr_msg *m, void *ctx)
{
	const wait_for *w = ctx;
	const kr_down_msg *d = kr_msg_down(m);
	if (d)
		return d->ref == w->ref;
	uint64_t nonce;
	if (m->tag != KRX_OBS_TAG_HERE || m->len < sizeof nonce)
		return 0;
	memcpy(&nonce, m->data, sizeof nonce);
	return nonce == w->nonce;
}

/* Ask node where its page is: the URL into url (len bytes), or "". */
static void ask(const char *node, char *url, size_t len)
{
	url[0] = 0;
	wait_for w = { .ref = kr_monitor_name_at(node, KRX_OBS_NAME) };
	if (w.ref <= 0)
		return;
	w.nonce = (uint64_t)w.ref;
	kr_msg *m;
	if (kr_send_named_at(node, KRX_OBS_NAME, KRX_OBS_TAG_WHERE, &w.nonce, sizeof w.nonce) == 0 &&
	    kr_recv_match(&m, is_answer, &w, ASK_MS) == 0) {
		if (!kr_msg_down(m)) {
			size_t n = m->len - sizeof w.nonce;
			if (n >= len)
				n = len - 1;
			memcpy(url, (const char *)m->data + sizeof w.nonce, n);
			url[n] = 0;
		}
		kr_msg_free(m);
	}
	kr_demonitor(w.ref, 1);
}

int krx_obs_api_nodes(krx_obs_buf *b)
{
	const char *self = kr_node_name();
	krx_obs_puts(b, "{\"self\": ");
	krx_obs_json_str(b, self);
	krx_obs_puts(b, ", \"nodes\": [");
	const char *names[MAX_NODES];
	int n = self ? kr_nodes(names, MAX_NODES) : 0;
	if (n > MAX_NODES)
		n = MAX_NODES;
	/* The names stay valid until kr_node_stop: copy them before asking
	 * (which waits, and the node may stop meanwhile). */
	char (*copy)[256] = n > 0 ? kr_alloc((size_t)n * sizeof *copy) : NULL;
	for (int i = 0; copy && i < n; i++)
		snprintf(copy[i], sizeof copy[i], "%s", names[i]);
	for (int i = 0; copy && i < n; i++) {
		char url[200];
		ask(copy[i], url, sizeof url);
		krx_obs_puts(b, i ? ", " : "");
		krx_obs_puts(b, "{\"name\": ");
		krx_obs_json_str(b, copy[i]);
		krx_obs_puts(b, ", \"observer\": ");
		krx_obs_json_str(b, url[0] ? url : NULL);
		krx_obs_puts(b, "}");
	}
	kr_free(copy);
	krx_obs_puts(b, "]}");
	return 200;
}
