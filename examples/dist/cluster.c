/*
 * cluster.c - one node of the cluster demonstration (examples/dist/README.md):
 * CPU-heavy jobs on a cluster of krill nodes, where losing a node, even the
 * coordinator's, loses no job.
 *
 *   build/cluster --role coordinator|standby|worker --name NODE --cookie COOKIE
 *                 [--coord NODE] [--standby NODE] [--nodes K] [--jobs N] [--quick]
 *                 [--deadline SECONDS]
 *
 * build/cluster_demo (cluster_demo.c) starts these as OS processes and kills
 * some of them on the way; a node can be started by hand as well.
 *
 * The roles:
 *  - coordinator (node a): the process registered as "coord" holds the
 *    ledger of jobs ("how many primes are there below n?"). Once K worker
 *    nodes have joined it hands each job to a process it spawns on a worker
 *    node (kr_spawn_at, with a monitor), two at a time per node. It is the
 *    jobs' supervisor: a job whose process ends without a result (it
 *    crashed: DOWN with its reason; its node was lost: DOWN noconnection)
 *    is queued again and redone elsewhere.
 *  - standby (node b): a worker node that also runs a second ledger,
 *    registered as "standby", passive. It watches the coordinator's node
 *    (kr_monitor_node) and keeps a copy of the run: every job reports its
 *    result to both ledgers, and the coordinator sends the standby each
 *    assignment (the job and its process's pid). When node a goes down the
 *    standby takes over, as an OTP distributed application fails over: it
 *    monitors the jobs still running (adopting them rather than redoing
 *    them), queues again those whose process it cannot find, and finishes
 *    the run on the nodes that are left.
 *  - worker (nodes c, d): a node that runs jobs. It says hello to both
 *    ledgers, and stops when told to.
 *
 * Each result is counted once: a ledger keys results by job, and a second
 * result for a job already done (from a job run twice because its first
 * run was thought lost) is counted as a duplicate and ignored. The ledger
 * that finishes checks every result against a sieve and prints the
 * verdict, then stops every node.
 *
 * A call to either ledger (gen_server:call({coord, Node}, status) from a
 * BEAM) is answered with a line saying how far the run is.
 */
#include <krill.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {           /* message tags */
	HELLO = 1,   /* a worker node to both ledgers: data, its node's name */
	STANDBY,     /* the standby to the coordinator: "send me your assignments", and back */
	READY,       /* a ledger to its node's "node" process: registered, and known */
	ASSIGN,      /* coordinator to standby: job id (int32), then the job's pid as a term */
	RESULT,      /* a job to both ledgers: job_result */
	FINISHED,    /* coordinator to standby: the run is over */
	QUIT,        /* a ledger to a node's "node" process: stop this node */
	STATUS       /* the reply to a call */
};

#define MAX_JOBS 64
#define MAX_NODES 8
#define SLOTS 2  /* jobs running at once on one node */
#define FLAKY 5  /* this job crashes on its first try */
#define NODE_MAX 128

typedef struct job_result {
	int64_t id;
	int64_t primes;
} job_result;

/* ---- the job: runs on a worker node, spawned by a ledger ---- */

static long count_primes(long n)
{
	long count = 0;
	for (long i = 2; i < n; i++) {
		KR_CHECK(); /* no krill call in this loop: let the node's other processes run */
		bool prime = true;
		for (long d = 2; d * d <= i && prime; d++)
			prime = i % d != 0;
		count += prime;
	}
	return count;
}

/* Spawned as "job" with the text "ID N TRY NODE NAME [NODE NAME]": count
 * the primes below N and send the result to NAME on NODE (each pair). */
static void job(const void *arg, size_t len)
{
	char text[512], node[2][NODE_MAX], name[2][KR_NAME_MAX + 1];
	snprintf(text, sizeof text, "%.*s", (int)len, (const char *)arg);
	int id, attempt;
	long n;
	int k = sscanf(text, "%d %ld %d %127s %63s %127s %63s", &id, &n, &attempt, node[0], name[0],
	               node[1], name[1]);
	if (k < 5)
		kr_crash("bad job argument \"%s\"", text);
	if (id == FLAKY && attempt == 0)
		kr_crash("job %d is flaky: its first try fails", id);
	job_result r = {id, count_primes(n)};
	for (int i = 0; i < (k - 3) / 2; i++)
		kr_send_named_at(node[i], name[i], RESULT, &r, sizeof r);
}

/* ---- the ledger: the coordinator's, and the standby's copy ---- */

enum { WAITING, RUNNING, DONE };

typedef struct job_entry {
	long n;
	int state;
	int tries;    /* processes started for it */
	int node;     /* RUNNING: where (index in nodes) */
	kr_pid pid;   /* RUNNING: its process */
	kr_ref watch; /* RUNNING, active ledger: our monitor of pid */
	long primes;  /* DONE: the answer */
	int results;  /* results that came for it: the first counted, the rest ignored */
} job_entry;

typedef struct node_entry {
	char name[NODE_MAX];
	bool up;
	int busy; /* jobs of ours running there */
	int done; /* results counted from there */
} node_entry;

typedef struct ledger {
	bool active;               /* handing out jobs (else a standby keeping a copy) */
	bool took_over;
	const char *coord_node;    /* the coordinator's node (for the standby) */
	kr_pid standby;            /* the coordinator's: the standby's ledger, or 0 */
	char standby_node[NODE_MAX];
	int want_nodes;            /* worker nodes to wait for before starting */
	int njobs, done, dups, adopted;
	job_entry jobs[MAX_JOBS];
	node_entry nodes[MAX_NODES];
	int nnodes;
} ledger;

/* What a ledger is started with. */
typedef struct ledger_args {
	bool active;
	const char *coord_node;
	int want_nodes, njobs, quick;
	kr_pid node;           /* the node's "node" process, told READY */
} ledger_args;

/* "c" for "c_1234@127.0.0.1": the demo's names are LABEL_PID@HOST. */
static const char *label(const char *node, char *buf, size_t n)
{
	snprintf(buf, n, "%.*s", (int)strcspn(node, "_@"), node);
	return buf;
}
#define L(node) label((node), (char[NODE_MAX]){0}, NODE_MAX)

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int node_index(ledger *l, const char *name)
{
	for (int i = 0; i < l->nnodes; i++)
		if (!strcmp(l->nodes[i].name, name))
			return i;
	return -1;
}

/* A node joins (or is heard of): watch it, so that its loss is a message. */
static int add_node(ledger *l, const char *name)
{
	int i = node_index(l, name);
	if (i >= 0 || l->nnodes == MAX_NODES)
		return i;
	i = l->nnodes++;
	snprintf(l->nodes[i].name, NODE_MAX, "%s", name);
	l->nodes[i].up = true;
	kr_monitor_node(name, 1); /* on our own name this does nothing: we cannot lose ourselves */
	return i;
}

static int up_nodes(const ledger *l)
{
	int k = 0;
	for (int i = 0; i < l->nnodes; i++)
		k += l->nodes[i].up;
	return k;
}

static void requeue(ledger *l, int id)
{
	job_entry *j = &l->jobs[id];
	if (j->state == RUNNING && j->node >= 0)
		l->nodes[j->node].busy--;
	j->state = WAITING;
	j->watch = 0;
}

/* The job argument: where to report. The original coordinator's jobs report
 * to it and to the standby; a standby that took over is the only one left. */
static int job_arg(ledger *l, int id, char *buf, size_t n)
{
	const job_entry *j = &l->jobs[id];
	if (l->took_over)
		return snprintf(buf, n, "%d %ld %d %s standby", id, j->n, j->tries, kr_node_name());
	if (l->standby_node[0])
		return snprintf(buf, n, "%d %ld %d %s coord %s standby", id, j->n, j->tries,
		                kr_node_name(), l->standby_node);
	return snprintf(buf, n, "%d %ld %d %s coord", id, j->n, j->tries, kr_node_name());
}

/* Tell the standby which process runs job id, so that it can adopt it. */
static void tell_standby(ledger *l, int id, kr_pid pid)
{
	if (!l->standby)
		return;
	uint8_t buf[64];
	int32_t id32 = id;
	memcpy(buf, &id32, 4);
	long k = kr_term_put_pid(buf + 4, sizeof buf - 4, pid);
	if (k > 0)
		kr_send(l->standby, ASSIGN, buf, 4 + (size_t)k);
}

/* The up node with the most free slots, or -1. */
static int pick_node(const ledger *l)
{
	int best = -1;
	for (int i = 0; i < l->nnodes; i++)
		if (l->nodes[i].up && l->nodes[i].busy < SLOTS &&
		    (best < 0 || l->nodes[i].busy < l->nodes[best].busy))
			best = i;
	return best;
}

/* Start job id on node i: 0, or -1 if the node cannot be reached. */
static int start_job(ledger *l, int id, int i)
{
	job_entry *j = &l->jobs[id];
	char arg[512];
	int len = job_arg(l, id, arg, sizeof arg);
	kr_ref ref = 0;
	kr_spawn_opts o = {.monitor = &ref};
	kr_pid pid = kr_spawn_at(l->nodes[i].name, "job", arg, (size_t)len, &o);
	if (pid < 0) {
		say("could not spawn job %d on %s (%s): %s is down", id, L(l->nodes[i].name),
		    kr_strerror((int)pid), L(l->nodes[i].name));
		l->nodes[i].up = false;
		return -1;
	}
	j->state = RUNNING;
	j->tries++;
	j->node = i;
	j->pid = pid;
	j->watch = ref;
	l->nodes[i].busy++;
	say("job %2d (n = %ld) -> %s%s", id, j->n, L(l->nodes[i].name),
	    j->tries > 1 ? " (again)" : "");
	tell_standby(l, id, pid);
	return 0;
}

/* Hand waiting jobs to free slots. */
static void dispatch(ledger *l)
{
	if (!l->active || up_nodes(l) < l->want_nodes)
		return;
	l->want_nodes = 0; /* started: from now on, any node that is up will do */
	for (int id = 0; id < l->njobs; id++) {
		if (l->jobs[id].state != WAITING)
			continue;
		int i = pick_node(l);
		if (i < 0)
			return;
		if (start_job(l, id, i) != 0)
			id--; /* that node is down: try this job on another */
	}
}

static void on_result(ledger *l, const kr_msg *m)
{
	job_result r;
	if (m->len != sizeof r)
		return;
	memcpy(&r, m->data, sizeof r);
	if (r.id < 0 || r.id >= l->njobs)
		return;
	job_entry *j = &l->jobs[r.id];
	const char *where = kr_pid_node(m->sender);
	int i = where ? node_index(l, where) : -1;
	if (++j->results > 1 || j->state == DONE) {
		l->dups++;
		if (l->active)
			say("job %2d: a second result (from %s): already counted, ignored", (int)r.id,
		    where ? L(where) : "?");
		return;
	}
	if (j->state == RUNNING && l->active) {
		kr_demonitor(j->watch, 1); /* done: its end is no news */
		l->nodes[j->node].busy--;
	}
	j->state = DONE;
	j->primes = r.primes;
	l->done++;
	if (i >= 0)
		l->nodes[i].done++;
	if (l->active)
		say("job %2d: %ld primes below %ld (computed on %s) [%d/%d]", (int)r.id, j->primes,
		    j->n, where ? L(where) : "?", l->done, l->njobs);
}

static int job_watched_by(const ledger *l, kr_ref ref)
{
	for (int id = 0; id < l->njobs; id++)
		if (l->jobs[id].state == RUNNING && l->jobs[id].watch == ref)
			return id;
	return -1;
}

/* A job's process ended. With its result in, that is the normal end;
 * without, the job is redone. */
static void on_down(ledger *l, const kr_down_msg *d)
{
	int id = job_watched_by(l, d->ref);
	if (id < 0)
		return;
	char why[160];
	kr_reason_format(&d->reason, why, sizeof why);
	const char *node = l->nodes[l->jobs[id].node].name;
	if (d->reason.kind == KR_EXIT_NOCONNECTION)
		say("job %2d: lost with node %s (DOWN %s): queued again", id, L(node), why);
	else
		say("job %2d: its process on %s ended without a result (DOWN %s): queued again", id,
		    L(node), why);
	requeue(l, id);
}

static void on_nodedown(ledger *l, const char *name)
{
	int i = node_index(l, name);
	if (i >= 0 && l->nodes[i].up) {
		l->nodes[i].up = false;
		if (l->active)
			say("node %s is down (nodedown)", L(name));
	}
}

/* ---- the standby ---- */

static void on_assign(ledger *l, const kr_msg *m)
{
	int32_t id;
	kr_pid pid;
	if (m->len < 5)
		return;
	memcpy(&id, m->data, 4);
	if (id < 0 || id >= l->njobs || kr_term_get_pid((const char *)m->data + 4, m->len - 4, &pid) < 0)
		return;
	job_entry *j = &l->jobs[id];
	j->tries++;
	if (j->state == DONE)
		return; /* its result came first, by another road */
	const char *node = kr_pid_node(pid);
	j->state = RUNNING;
	j->pid = pid;
	j->node = node ? add_node(l, node) : -1;
}

/* Node a is down: the standby becomes the coordinator. Jobs still running
 * on nodes that are up are adopted (monitored: a DOWN without a result
 * queues them again); the others are queued again now. */
static void take_over(ledger *l)
{
	l->active = true;
	l->took_over = true;
	say("node %s is down: taking over as coordinator, knowing %d of %d results", L(l->coord_node),
	    l->done, l->njobs);
	for (int id = 0; id < l->njobs; id++) {
		job_entry *j = &l->jobs[id];
		if (j->state != RUNNING)
			continue;
		if (j->node >= 0 && l->nodes[j->node].up) {
			j->watch = kr_monitor(j->pid);
			l->nodes[j->node].busy++;
			l->adopted++;
			say("job %2d: still running on %s: adopted (monitored)", id,
			    L(l->nodes[j->node].name));
		} else {
			j->node = -1;
			say("job %2d: was running on a node that is gone: queued again", id);
			requeue(l, id);
		}
	}
}

/* ---- the end of the run ---- */

/* The number of primes below n for each job, by a sieve: another method
 * than the jobs', to check them. */
static bool check(const ledger *l, int *wrong)
{
	long max = 0;
	for (int id = 0; id < l->njobs; id++)
		if (l->jobs[id].n > max)
			max = l->jobs[id].n;
	char *composite = calloc((size_t)max + 1, 1);
	if (!composite)
		return false;
	for (long i = 2; i * i <= max; i++)
		if (!composite[i])
			for (long k = i * i; k <= max; k += i) {
				KR_CHECK(); /* some 7 million steps: let the node's other processes run */
				composite[k] = 1;
			}
	*wrong = 0;
	for (int id = 0; id < l->njobs; id++) {
		long count = 0;
		for (long i = 2; i < l->jobs[id].n; i++) {
			KR_CHECK();
			count += !composite[i];
		}
		*wrong += l->jobs[id].state != DONE || l->jobs[id].primes != count;
	}
	free(composite);
	return true;
}

static void verdict(ledger *l)
{
	int once = 0, wrong = 0, redone = 0;
	for (int id = 0; id < l->njobs; id++) {
		once += l->jobs[id].state == DONE;
		redone += l->jobs[id].tries > 1 ? l->jobs[id].tries - 1 : 0;
	}
	bool checked = check(l, &wrong);
	say("tally: %d of %d jobs have a result, each counted once (%d duplicate result%s ignored)",
	    once, l->njobs, l->dups, l->dups == 1 ? "" : "s");
	char where[256] = "";
	for (int i = 0; i < l->nnodes; i++) {
		size_t k = strlen(where);
		snprintf(where + k, sizeof where - k, "%s%d on %s", k ? ", " : "", l->nodes[i].done,
		         L(l->nodes[i].name));
	}
	say("tally: counted %s; %d run%s redone (a crash, a lost node), %d adopted at the takeover",
	    where, redone, redone == 1 ? "" : "s", l->adopted);
	say("tally: every result checked against a sieve: %d wrong", checked ? wrong : -1);
	bool pass = checked && once == l->njobs && wrong == 0;
	say("verdict: %s: %d jobs, every result counted exactly once and correct%s",
	    pass ? "PASS" : "FAIL", l->njobs,
	    l->took_over ? ", after the coordinator's node was lost" : "");
}

/* Stop every other node that is up, wait (a little) for each to go, then
 * this one. */
static void stop_cluster(ledger *l)
{
	say("the run is over: stopping the cluster");
	if (l->standby)
		kr_send(l->standby, FINISHED, NULL, 0);
	int waiting = 0;
	for (int i = 0; i < l->nnodes; i++) {
		if (!l->nodes[i].up || !strcmp(l->nodes[i].name, kr_node_name()))
			continue;
		kr_send_named_at(l->nodes[i].name, "node", QUIT, NULL, 0);
		waiting++;
	}
	kr_msg *m;
	while (waiting > 0 && kr_recv_tag(&m, KR_TAG_NODEDOWN, 3000) == 0) {
		int i = node_index(l, m->data);
		if (i >= 0 && l->nodes[i].up) {
			l->nodes[i].up = false;
			waiting--;
		}
		kr_msg_free(m);
	}
	kr_send_named("node", QUIT, NULL, 0);
}

/* ---- the ledger's process ---- */

static void status(ledger *l, const kr_msg *m)
{
	char text[200];
	int running = 0;
	for (int id = 0; id < l->njobs; id++)
		running += l->jobs[id].state == RUNNING;
	if (!l->active)
		snprintf(text, sizeof text, "standby on %s, watching %s: a copy of %d of %d results",
		         L(kr_node_name()), L(l->coord_node), l->done, l->njobs);
	else
		snprintf(text, sizeof text, "coordinator on %s%s: %d of %d jobs done, %d running",
		         L(kr_node_name()), l->took_over ? " (took over)" : "", l->done, l->njobs,
		         running);
	kr_reply(m, STATUS, text, strlen(text));
	const char *from = kr_pid_node(m->sender);
	say("a call from %s: answered \"%s\"", from ? L(from) : "?", text);
}

/* One message; false when the run is over for this ledger. */
static bool handle(ledger *l, kr_msg *m)
{
	if (kr_msg_down(m)) { /* before calls: a DOWN message carries its monitor's ref too */
		on_down(l, kr_msg_down(m));
	} else if (m->tag == KR_TAG_NODEDOWN) {
		if (!l->active && !strcmp(m->data, l->coord_node))
			take_over(l);
		else
			on_nodedown(l, m->data);
	} else if (m->ref) {
		status(l, m);
	} else if (m->tag == STANDBY && m->sender) {
		l->standby = m->sender;
		snprintf(l->standby_node, NODE_MAX, "%s", kr_pid_node(m->sender));
		say("%s is the standby: it gets every result and a copy of every assignment",
		    L(l->standby_node));
		kr_send(m->sender, STANDBY, NULL, 0);
	} else if (m->tag == HELLO && m->len > 0 && m->len <= NODE_MAX) {
		const char *name = m->data;
		if (node_index(l, name) < 0 && add_node(l, name) >= 0 && l->active)
			say("node %s joined: %d job slots", L(name), SLOTS);
	} else if (m->tag == ASSIGN) {
		on_assign(l, m);
	} else if (m->tag == RESULT) {
		on_result(l, m);
	} else if (m->tag == FINISHED) {
		say("the coordinator finished the run: standing down");
		return false;
	}
	return !l->active || l->done < l->njobs;
}

static void ledger_main(void *arg)
{
	const ledger_args *a = arg;
	ledger *l = kr_calloc(1, sizeof *l);
	l->active = a->active;
	l->coord_node = a->coord_node;
	l->want_nodes = a->want_nodes;
	l->njobs = a->njobs;
	for (int id = 0; id < l->njobs; id++) {
		/* 1.6 to 3.0 million, mixed: about 0.3 to 0.7 s each on one core. */
		l->jobs[id].n = 1600000 + (id * 7 % 15) * 100000;
		if (a->quick)
			l->jobs[id].n /= 4;
	}
	kr_register(l->active ? "coord" : "standby", kr_self());
	if (l->active) {
		say("the coordinator: %d jobs, to start once %d worker nodes have joined", l->njobs,
		    l->want_nodes);
	} else {
		/* Introduce ourselves and wait for the answer, so that the
		 * coordinator knows us before any job starts. */
		kr_msg *r;
		kr_send_named_at(l->coord_node, "coord", STANDBY, NULL, 0);
		if (kr_recv_tag(&r, STANDBY, 10000) != 0)
			kr_crash("the coordinator on %s did not answer", l->coord_node);
		kr_msg_free(r);
		kr_monitor_node(l->coord_node, 1);
		say("the standby: watching node %s (kr_monitor_node), keeping a copy of the run",
		    L(l->coord_node));
	}
	kr_send(a->node, READY, NULL, 0);
	for (;;) {
		dispatch(l);
		kr_msg *m;
		if (kr_recv(&m, KR_INFINITY) != 0)
			continue;
		bool go_on = handle(l, m);
		kr_msg_free(m);
		if (!go_on)
			break;
	}
	if (l->active) {
		verdict(l);
		stop_cluster(l);
	}
}

/* ---- a node ---- */

typedef struct options {
	const char *role, *name, *cookie, *coord, *standby;
	int nodes, jobs, quick, deadline;
} options;

/* Say hello to a ledger on node, so that it hands us jobs. */
static void hello(const char *node, const char *name)
{
	if (node)
		kr_send_named_at(node, name, HELLO, kr_node_name(), strlen(kr_node_name()) + 1);
}

static int ready_or_down(const kr_msg *m, void *ref)
{
	return m->tag == READY || (kr_msg_down(m) && kr_msg_down(m)->ref == *(kr_ref *)ref);
}

static void node_main(void *arg)
{
	const options *o = arg;
	kr_spawnable("job", job);
	kr_node_config cfg = {.name = o->name, .cookie = o->cookie};
	int rc = kr_node_start(&cfg);
	if (rc != 0) {
		say("cannot start node %s: %s", o->name, kr_strerror(rc));
		exit(1);
	}
	kr_register("node", kr_self());
	bool coordinator = !strcmp(o->role, "coordinator");
	bool standby = !strcmp(o->role, "standby");
	ledger_args la = {.active = coordinator, .coord_node = o->coord, .want_nodes = o->nodes,
	                  .njobs = o->jobs, .quick = o->quick, .node = kr_self()};
	kr_msg *m;
	if (coordinator || standby) { /* its ledger first: registered, and known to the coordinator */
		kr_ref ref = kr_monitor(kr_spawn(ledger_main, &la));
		if (kr_recv_match(&m, ready_or_down, &ref, KR_INFINITY) == 0 && m->tag != READY)
			exit(1); /* the ledger crashed: its report says why */
	}
	say("node %s ready (OS pid %d)", kr_node_name(), (int)getpid());
	if (!coordinator) {
		hello(o->coord, "coord");
		hello(o->standby, "standby");
	}
	kr_recv_tag(&m, QUIT, KR_INFINITY);
	say("node %s stops", L(kr_node_name()));
}

/* krill's reports (a crash): the first line, marked. */
static void print_report(const char *line, void *ctx)
{
	(void)ctx;
	printf("  | %.*s\n", (int)strcspn(line, "\n"), line);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: cluster --role coordinator|standby|worker --name NODE --cookie COOKIE\n"
	        "               [--coord NODE] [--standby NODE] [--nodes K] [--jobs N] [--quick]\n"
	        "               [--deadline SECONDS]\n");
	exit(2);
}

static void parse(int argc, char **argv, options *o)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			o->quick = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(argv[i - 1], "--role"))
			o->role = v;
		else if (!strcmp(argv[i - 1], "--name"))
			o->name = v;
		else if (!strcmp(argv[i - 1], "--cookie"))
			o->cookie = v;
		else if (!strcmp(argv[i - 1], "--coord"))
			o->coord = v;
		else if (!strcmp(argv[i - 1], "--standby"))
			o->standby = v;
		else if (!strcmp(argv[i - 1], "--nodes"))
			o->nodes = atoi(v);
		else if (!strcmp(argv[i - 1], "--jobs"))
			o->jobs = atoi(v);
		else if (!strcmp(argv[i - 1], "--deadline"))
			o->deadline = atoi(v);
		else
			usage();
	}
	bool known = o->role && (!strcmp(o->role, "coordinator") || !strcmp(o->role, "standby") ||
	                         !strcmp(o->role, "worker"));
	if (!known || !o->name || !o->cookie || (strcmp(o->role, "coordinator") && !o->coord) ||
	    o->jobs < 1 || o->jobs > MAX_JOBS || o->nodes < 1)
		usage();
}

int main(int argc, char **argv)
{
	options o = {.nodes = 2, .jobs = 20, .deadline = 120};
	parse(argc, argv, &o);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Never outlive a run that went wrong: SIGALRM ends the process. */
	alarm((unsigned)o.deadline);
	kr_config cfg = {.log = print_report};
	return kr_main(&cfg, node_main, &o) == 0 ? 0 : 1;
}
