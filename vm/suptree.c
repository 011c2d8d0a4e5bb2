/*
 * suptree.c - kr_sup_tree (include/krill/sup.h): a whole supervision tree,
 * read one supervisor at a time through the public kr_sup_which_children,
 * then walked.
 *
 * Reading comes first, breadth first and without recursion (a tree as deep
 * as a process stack allows nothing else to go wrong), into items that
 * link each child to its next sibling and its first child; the walk is
 * then depth first over those links. Everything read lives on the calling
 * process's heap, so a caller killed mid-read leaves nothing behind; a
 * host thread's walk is read by a proxy process (proxy.h), which hands the
 * walk's order over in raw memory, and fn runs on the host thread.
 */
#include <string.h>

#include "futex.h"
#include "mi.h"
#include "proc.h"
#include "proxy.h"
#include "timeout.h"
#include "vm.h"

#define NONE ((size_t)-1)

typedef struct item {
	kr_sup_node node;
	size_t first, next; /* first child, next sibling: indices, or NONE */
} item;

typedef struct tree {
	item *v;
	size_t n, cap;
	uint64_t deadline_ns; /* 0: none */
} tree;

/* What is left of the walk's time, in ms for the next request. */
static long time_left(const tree *t)
{
	if (!t->deadline_ns)
		return KR_INFINITY;
	uint64_t now = krx_now_ns();
	if (now >= t->deadline_ns)
		return 0;
	return (long)((t->deadline_ns - now + 999999) / 1000000);
}

/* All of sup's children, on the heap, in *out: how many, or an error. */
static int children_of(const tree *t, kr_pid sup, kr_sup_child **out)
{
	size_t cap = 16;
	kr_sup_child *v = NULL;
	for (;;) {
		kr_sup_child *nv = kr_realloc(v, cap * sizeof *v);
		if (!nv) {
			kr_free(v);
			return KR_ENOMEM;
		}
		v = nv;
		int total = kr_sup_which_children_timeout(sup, v, cap, time_left(t));
		if (total >= 0 && (size_t)total > cap) {
			cap = (size_t)total; /* it grew since: ask again, for all */
			continue;
		}
		if (total < 0)
			kr_free(v);
		else
			*out = v;
		return total;
	}
}

/* Append sup's children to t, as siblings under item `parent` (NONE: the
 * root's). 0, or an error that ends the walk. */
static int read_children(tree *t, kr_pid sup, size_t parent, int depth)
{
	kr_sup_child *v = NULL;
	int n = children_of(t, sup, &v);
	if (n == KR_ENOPROC || n == KR_ENOTSUP)
		return parent == NONE ? n : 0; /* below the root: no subtree */
	if (n < 0)
		return n;
	if (t->n + (size_t)n > t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		while (cap < t->n + (size_t)n)
			cap *= 2;
		item *nv = kr_realloc(t->v, cap * sizeof *nv);
		if (!nv) {
			kr_free(v);
			return KR_ENOMEM;
		}
		t->v = nv;
		t->cap = cap;
	}
	for (int i = 0; i < n; i++) {
		item *it = &t->v[t->n + (size_t)i];
		*it = (item){ .node = { .child = v[i], .sup = sup, .depth = depth },
			      .first = NONE,
			      .next = i + 1 < n ? t->n + (size_t)i + 1 : NONE };
	}
	if (parent != NONE && n)
		t->v[parent].first = t->n;
	t->n += (size_t)n;
	kr_free(v);
	return 0;
}

/* Read the whole tree, breadth first: each item, once appended, is
 * expanded in turn if it is a running supervisor. */
static int read_tree(tree *t, kr_pid root)
{
	int rc = read_children(t, root, NONE, 1);
	for (size_t i = 0; !rc && i < t->n; i++) {
		const kr_sup_node *nd = &t->v[i].node;
		if (nd->child.type == KR_SUPERVISOR && nd->child.pid > 0)
			rc = read_children(t, nd->child.pid, i, nd->depth + 1);
	}
	return rc;
}

/* The items in the walk's order, into out (t->n of them): depth first,
 * each subtree before the next sibling. stack: room for t->n indices. */
static void walk_order(const tree *t, kr_sup_node *out, size_t *stack)
{
	size_t sp = 0, k = 0, cur = t->n ? 0 : NONE;
	while (cur != NONE || sp) {
		if (cur == NONE)
			cur = stack[--sp];
		out[k++] = t->v[cur].node;
		if (t->v[cur].next != NONE)
			stack[sp++] = t->v[cur].next;
		cur = t->v[cur].first;
	}
}

/* Read the tree under root from a process: 0 and the nodes in walk order
 * (*out, on the heap; *n of them), or an error. */
static int read_walk(kr_pid root, long timeout_ms, kr_sup_node **out, size_t *n)
{
	tree t = { 0 };
	if (timeout_ms != KR_INFINITY)
		t.deadline_ns = krx_now_ns() + (uint64_t)timeout_ms * 1000000u + 1;
	int rc = read_tree(&t, root);
	kr_sup_node *nodes = rc ? NULL : kr_alloc((t.n ? t.n : 1) * sizeof *nodes);
	size_t *stack = rc ? NULL : kr_alloc((t.n ? t.n : 1) * sizeof *stack);
	if (!rc && (!nodes || !stack))
		rc = KR_ENOMEM;
	if (!rc)
		walk_order(&t, nodes, stack);
	kr_free(stack);
	kr_free(t.v);
	if (rc) {
		kr_free(nodes);
		return rc;
	}
	*out = nodes;
	*n = t.n;
	return 0;
}

typedef struct tree_job {
	kr_pid root;
	long timeout_ms;
} tree_job;

/* A host thread's walk, read by its proxy. */
static int read_for_host(const void *arg, krx_proxy_out *out)
{
	const tree_job *j = arg;
	kr_sup_node *nodes;
	size_t n;
	int rc = read_walk(j->root, j->timeout_ms, &nodes, &n);
	if (rc)
		return rc;
	rc = krx_proxy_put(out, nodes, n * sizeof *nodes);
	kr_free(nodes);
	return rc;
}

static int visit(const kr_sup_node *nodes, size_t n, kr_sup_tree_fn *fn, void *ctx)
{
	size_t i = 0;
	while (i < n && !fn(&nodes[i++], ctx))
		;
	return i > INT32_MAX ? INT32_MAX : (int)i;
}

KR_API int kr_sup_tree(kr_pid sup, kr_sup_tree_fn *fn, void *ctx, long timeout_ms)
{
	if (!fn || !krx_timeout_valid(timeout_ms))
		return KR_EINVAL;
	/* Refused at once, as the requests are (the read would find it too,
	 * but for a host thread only after spawning its proxy). */
	int rc = sup > 0 ? krx_proc_sup_check(sup) : KR_ENOPROC;
	if (rc)
		return rc;
	if (krx_proc_self()) {
		kr_sup_node *nodes;
		size_t n;
		if ((rc = read_walk(sup, timeout_ms, &nodes, &n)))
			return rc;
		rc = visit(nodes, n, fn, ctx);
		kr_free(nodes);
		return rc;
	}
	tree_job j = { sup, timeout_ms };
	krx_proxy_out o;
	if ((rc = krx_proxy_run(read_for_host, &j, sizeof j, timeout_ms, &o)))
		return rc;
	rc = visit(o.data, o.len / sizeof(kr_sup_node), fn, ctx);
	krx_free_raw(o.data);
	return rc;
}
