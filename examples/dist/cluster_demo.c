/*
 * cluster_demo.c - the driver of the cluster demonstration
 * (examples/dist/README.md): three krill nodes on loopback, each an OS
 * process running build/cluster, a fourth started on the way, and a BEAM
 * node when erl is installed. It starts them, kills two with SIGKILL at the
 * worst moments it can pick (each right after a job was handed out), prints
 * what every node says, one line each, and checks the outcome.
 *
 *   build/cluster_demo [--quick] [--jobs N] [--no-erl] [--deadline SECONDS]
 *
 * The story:
 *   a  the coordinator; b  the standby, and a worker node; c  a worker node;
 *   beam  an Erlang node: pings a, calls the coordinator, monitors it;
 *   once c has joined the jobs start; after 3 results, SIGKILL to c right
 *   after a job was handed to it; a notices (DOWN noconnection, nodedown)
 *   and redoes c's jobs elsewhere; d, a fresh worker node, joins; past half
 *   of the results, SIGKILL to a right after it handed out a job; b takes
 *   over, adopts the running jobs, and finishes the run; the BEAM sees its
 *   monitor fire with noconnection and calls the standby.
 *
 * It ends with "cluster demo: PASS" (exit status 0) when the run was
 * finished with every job's result counted once and correct, after both
 * kills and the takeover; otherwise "cluster demo: FAIL" (status 1). Every
 * process it started is killed on every path: each gets SIGKILL when the
 * driver dies (PR_SET_PDEATHSIG), and the nodes also end themselves past a
 * deadline (alarm).
 *
 * This driver uses no krill: it is plain POSIX.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_ 96

typedef struct child {
	const char *label;     /* a, b, c, d, beam */
	char name[NAME_MAX_];  /* its node name */
	pid_t pid;             /* 0: not started, or ended and reaped */
	int out;               /* its stdout and stderr; -1 when closed */
	char buf[8192];        /* a line not yet finished */
	size_t len;
	bool killed;           /* by us */
} child;

enum { A, B, C, D, BEAM, NCHILD };
static child kids[NCHILD] = {{.label = "a"}, {.label = "b"}, {.label = "c"}, {.label = "d"},
                             {.label = "beam"}};

/* What the lines told so far. */
static struct {
	bool ready[NCHILD];
	int results;           /* a's "primes below" lines */
	int kill_c_after;      /* results before c is killed */
	int kill_a_after;
	bool c_has_job;        /* a handed c a job after kill_c_after results */
	bool a_handed_out;     /* a handed out a job after kill_a_after results */
	int lost_with_c;       /* a's "lost with node c" lines */
	uint64_t lost_ids;     /* the jobs lost with c, by id */
	uint64_t redone_ids;   /* of those, the ones a handed out again */
	bool took_over;        /* b: "taking over" */
	bool adopted_or_requeued;
	bool beam_monitoring, beam_pong, beam_down_noconnection, beam_called_standby, beam_done;
	int verdict;           /* 0 none yet, 1 PASS, -1 FAIL */
} seen;

static struct timespec t0;
static char cookie[64];
static const char *cluster_bin;

static double elapsed(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

static void out(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(const char *who, const char *fmt, ...)
{
	printf("%5.2f %-6s| ", elapsed(), who);
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* ---- children ---- */

static void start(child *k, char *const argv[])
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0) {
		perror("pipe2");
		exit(1);
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		/* Die with the driver, whatever kills it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	k->pid = pid;
	k->out = fds[0];
	k->len = 0;
	fcntl(k->out, F_SETFL, O_NONBLOCK);
}

static void start_node(child *k, const char *role, const char *extra[], int quick, int jobs)
{
	char njobs[16];
	snprintf(njobs, sizeof njobs, "%d", jobs);
	const char *argv[24] = {cluster_bin, "--role", role, "--name", k->name, "--cookie", cookie,
	                        "--jobs", njobs, "--deadline", "90"};
	int n = 11;
	if (quick)
		argv[n++] = "--quick";
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	out("driver", "starting node %s (%s): %s", k->label, role, k->name);
	start(k, (char *const *)argv);
}

static void sigkill(child *k, const char *why)
{
	out("driver", "SIGKILL to node %s (OS pid %d): %s", k->label, (int)k->pid, why);
	kill(k->pid, SIGKILL);
	k->killed = true;
}

static void kill_all(void)
{
	for (int i = 0; i < NCHILD; i++)
		if (kids[i].pid > 0) {
			kill(kids[i].pid, SIGKILL);
			waitpid(kids[i].pid, NULL, 0);
			kids[i].pid = 0;
		}
}

static void on_signal(int sig)
{
	kill_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- reading what they say ---- */

static bool has(const char *line, const char *s)
{
	return strstr(line, s) != NULL;
}

/* "job  7 (n = 2100000) -> c": a job handed to node label (NULL: any). */
static bool handed_to(const char *line, const char *label)
{
	const char *p = strstr(line, ") -> ");
	if (!p || !label)
		return p != NULL;
	p += 5;
	size_t n = strlen(label);
	return !strncmp(p, label, n) && (p[n] == 0 || p[n] == ' ');
}

static void note(int who, const char *line)
{
	if (has(line, " ready (OS pid"))
		seen.ready[who] = true;
	if (has(line, "verdict: PASS"))
		seen.verdict = 1;
	else if (has(line, "verdict: FAIL"))
		seen.verdict = -1;
	if (who == A) {
		seen.results += has(line, " primes below ");
		if (seen.results >= seen.kill_c_after && handed_to(line, "c"))
			seen.c_has_job = true;
		if (seen.results >= seen.kill_a_after && handed_to(line, NULL))
			seen.a_handed_out = true;
		int id;
		if (has(line, "lost with node c") && sscanf(line, "job %d", &id) == 1 && id >= 0 &&
		    id < 64) {
			seen.lost_with_c++;
			seen.lost_ids |= 1ull << id;
		}
		if (handed_to(line, NULL) && sscanf(line, "job %d", &id) == 1 && id >= 0 && id < 64 &&
		    (seen.lost_ids >> id & 1))
			seen.redone_ids |= 1ull << id;
	} else if (who == B) {
		seen.took_over |= has(line, "taking over");
		seen.adopted_or_requeued |= has(line, "adopted") || has(line, "queued again");
	} else if (who == BEAM) {
		seen.beam_pong |= has(line, "ping(a) -> pong");
		seen.beam_monitoring |= has(line, "monitoring");
		seen.beam_down_noconnection |= has(line, "'DOWN'") && has(line, "noconnection");
		seen.beam_called_standby |= has(line, "{standby, b}") && has(line, " on b");
		seen.beam_done |= has(line, "done");
	}
}

/* Print and note each whole line of k's output so far. */
static void drain(int who)
{
	child *k = &kids[who];
	for (;;) {
		ssize_t n = read(k->out, k->buf + k->len, sizeof k->buf - 1 - k->len);
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(k->out);
				k->out = -1;
			}
			if (n == 0 && k->len > 0) { /* a last line without its newline */
				k->buf[k->len] = 0;
				out(k->label, "%s", k->buf);
				k->len = 0;
			}
			return;
		}
		k->len += (size_t)n;
		char *line = k->buf, *nl;
		k->buf[k->len] = 0;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			out(k->label, "%s", line);
			note(who, line);
			line = nl + 1;
		}
		k->len -= (size_t)(line - k->buf);
		memmove(k->buf, line, k->len);
		if (k->len == sizeof k->buf - 1) { /* a line longer than the buffer: print it as is */
			out(k->label, "%s", k->buf);
			k->len = 0;
		}
	}
}

static void reap(void)
{
	for (int i = 0; i < NCHILD; i++) {
		child *k = &kids[i];
		int st;
		if (k->pid <= 0 || k->out >= 0 || waitpid(k->pid, &st, WNOHANG) != k->pid)
			continue;
		if (WIFSIGNALED(st))
			out("driver", "node %s's process ended: %s%s", k->label, strsignal(WTERMSIG(st)),
			    k->killed ? " (ours)" : "");
		else
			out("driver", "%s's process ended: exit status %d", k->label, WEXITSTATUS(st));
		k->pid = 0;
	}
}

/* Read every child's output for up to ms. */
static void pump(int ms)
{
	struct pollfd pf[NCHILD];
	int who[NCHILD], n = 0;
	for (int i = 0; i < NCHILD; i++)
		if (kids[i].out >= 0 && kids[i].pid > 0) {
			pf[n] = (struct pollfd){.fd = kids[i].out, .events = POLLIN};
			who[n++] = i;
		}
	if (n == 0) {
		usleep((useconds_t)ms * 1000);
	} else if (poll(pf, (nfds_t)n, ms) > 0) {
		for (int i = 0; i < n; i++)
			if (pf[i].revents)
				drain(who[i]);
	}
	reap();
}

static double deadline;

/* Pump until cond() holds (true) or secs pass, or the demo's deadline
 * (false, said). */
static bool wait_until(bool (*cond)(void), double secs, const char *what)
{
	double end = elapsed() + secs;
	if (end > deadline)
		end = deadline;
	while (!cond()) {
		if (elapsed() >= end) {
			out("driver", "gave up waiting for %s", what);
			return false;
		}
		pump(50);
	}
	return true;
}

static bool a_ready(void) { return seen.ready[A]; }
static bool b_ready(void) { return seen.ready[B]; }
static bool c_ready(void) { return seen.ready[C]; }
static bool d_ready(void) { return seen.ready[D]; }
static bool beam_monitoring(void) { return seen.beam_monitoring || kids[BEAM].pid == 0; }
static bool c_has_job(void) { return seen.c_has_job; }
static bool c_loss_seen(void) { return seen.lost_with_c > 0; }
/* Half the results are in, a has just handed out a job, and a itself has
 * redone every job lost with c (so that the check below sees a's own
 * recovery, not the standby's). */
static bool a_handed_out(void)
{
	return seen.a_handed_out && (seen.lost_ids & ~seen.redone_ids) == 0;
}
static bool verdict(void) { return seen.verdict != 0; }
static bool all_ended(void)
{
	for (int i = 0; i < NCHILD; i++)
		if (kids[i].pid > 0)
			return false;
	return true;
}

/* ---- the BEAM ---- */

static bool have_erl(void)
{
	return system("command -v erl >/dev/null 2>&1") == 0;
}

static void start_beam(void)
{
	static char expr[2400];
	snprintf(expr, sizeof expr,
	         "A = '%s', B = '%s',"
	         "spawn(fun() -> timer:sleep(90000), halt(1) end),"
	         "Say = fun(F, X) -> io:format(F ++ \"~n\", X) end,"
	         "Call = fun(Name, Node) ->"
	         "  case catch gen_server:call({Name, Node}, status, 5000) of"
	         "    {_, S} when is_binary(S) -> binary_to_list(S);"
	         "    Other -> io_lib:format(\"~p\", [Other]) end end,"
	         "Say(\"the BEAM (OTP ~s) as ~s\", [erlang:system_info(otp_release), node()]),"
	         "Say(\"net_adm:ping(a) -> ~p\", [net_adm:ping(A)]),"
	         "Say(\"gen_server:call({coord, a}, status) -> ~s\", [Call(coord, A)]),"
	         "Ref = erlang:monitor(process, {coord, A}),"
	         "Say(\"monitoring the process registered as coord on a (erlang:monitor/2)\", []),"
	         "receive {'DOWN', Ref, process, _, Why} ->"
	         "  Say(\"'DOWN' for coord on a: ~p\", [Why])"
	         "after 80000 -> Say(\"no 'DOWN' for coord on a\", []) end,"
	         "Say(\"gen_server:call({standby, b}, status) -> ~s\", [Call(standby, B)]),"
	         "Say(\"done\", []),"
	         "halt().",
	         kids[A].name, kids[B].name);
	char *argv[] = {"erl", "-noshell", "-name", kids[BEAM].name, "-setcookie", cookie, "-eval",
	                expr, NULL};
	out("driver", "starting the BEAM node beam: %s", kids[BEAM].name);
	start(&kids[BEAM], argv);
}

/* ---- the run ---- */

static void names(void)
{
	for (int i = 0; i < NCHILD; i++)
		snprintf(kids[i].name, NAME_MAX_, "%s_%d@127.0.0.1", kids[i].label, (int)getpid());
	unsigned char r[12];
	FILE *f = fopen("/dev/urandom", "rb");
	if (!f || fread(r, 1, sizeof r, f) != sizeof r) {
		perror("/dev/urandom");
		exit(1);
	}
	fclose(f);
	strcpy(cookie, "demo_");
	for (size_t i = 0; i < sizeof r; i++)
		sprintf(cookie + strlen(cookie), "%02x", r[i]);
}

typedef struct run_opts {
	int quick, jobs, erl;
} run_opts;

/* The story, step by step; false if a step did not come. */
static bool story(const run_opts *o)
{
	const char *coord_args[] = {"--nodes", "2", NULL};
	start_node(&kids[A], "coordinator", coord_args, o->quick, o->jobs);
	if (!wait_until(a_ready, 15, "node a"))
		return false;
	const char *b_args[] = {"--coord", kids[A].name, "--standby", kids[B].name, NULL};
	start_node(&kids[B], "standby", b_args, o->quick, o->jobs);
	if (!wait_until(b_ready, 15, "node b"))
		return false;
	if (o->erl) {
		start_beam();
		wait_until(beam_monitoring, 30, "the BEAM to monitor the coordinator");
	} else {
		out("driver", "the BEAM part is skipped: %s", have_erl() ? "--no-erl" :
		    "erl is not installed (Debian: erlang-nox)");
	}
	/* c is the second worker node: with it the jobs start. */
	const char *w_args[] = {"--coord", kids[A].name, "--standby", kids[B].name, NULL};
	start_node(&kids[C], "worker", w_args, o->quick, o->jobs);
	if (!wait_until(c_ready, 15, "node c") || !wait_until(c_has_job, 40, "a job on c"))
		return false;
	sigkill(&kids[C], "a worker node, lost in the middle of a job");
	if (!wait_until(c_loss_seen, 15, "the coordinator to notice"))
		return false;
	start_node(&kids[D], "worker", w_args, o->quick, o->jobs);
	if (!wait_until(d_ready, 15, "node d") || !wait_until(a_handed_out, 40, "half the results"))
		return false;
	sigkill(&kids[A], "the coordinator's node, right after it handed out a job");
	if (!wait_until(verdict, 60, "the verdict"))
		return false;
	return wait_until(all_ended, 15, "every node to stop");
}

static bool check(const run_opts *o, bool finished)
{
	bool beam_ok = !o->erl || (seen.beam_pong && seen.beam_down_noconnection &&
	                           seen.beam_called_standby);
	bool c_redone = seen.lost_with_c > 0 && (seen.lost_ids & ~seen.redone_ids) == 0;
	out("driver", "checks: c killed mid-job, its jobs redone by a: %s (%d lost with c)",
	    c_redone ? "yes" : "NO", seen.lost_with_c);
	out("driver", "checks: a killed mid-run, b took over and finished: %s",
	    seen.took_over && seen.verdict ? "yes" : "NO");
	if (o->erl)
		out("driver", "checks: the BEAM pinged a, called it, saw its monitor fire with "
		    "noconnection, called b: %s", beam_ok ? "yes" : "NO");
	else
		out("driver", "checks: the BEAM: skipped");
	out("driver", "checks: the verdict: %s", seen.verdict > 0 ? "PASS" : seen.verdict < 0 ?
	    "FAIL" : "none");
	out("driver", "checks: every node process ended: %s", finished ? "yes" : "NO");
	return finished && c_redone && seen.took_over && seen.verdict > 0 && beam_ok;
}

static void usage(void)
{
	fprintf(stderr, "usage: cluster_demo [--quick] [--jobs N] [--no-erl] [--deadline SECONDS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	run_opts o = {.jobs = 20, .erl = 1};
	double secs = 80;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			o.quick = 1;
		else if (!strcmp(argv[i], "--no-erl"))
			o.erl = 0;
		else if (!strcmp(argv[i], "--jobs") && i + 1 < argc)
			o.jobs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--deadline") && i + 1 < argc)
			secs = atof(argv[++i]);
		else
			usage();
	}
	if (o.jobs < 8 || o.jobs > 64)
		usage();
	o.erl = o.erl && have_erl();
	seen.kill_c_after = 3;
	seen.kill_a_after = o.jobs / 2;

	/* build/cluster, beside this program. */
	static char dir[4096], bin[4096 + 16];
	snprintf(dir, sizeof dir, "%s", argv[0]);
	snprintf(bin, sizeof bin, "%s/cluster", dirname(dir));
	cluster_bin = bin;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	deadline = secs;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	atexit(kill_all);
	names();
	out("driver", "a cluster on loopback: a (coordinator), b (standby, worker node), c and "
	    "later d (worker nodes)%s; cookie %s", o.erl ? ", beam (an Erlang node)" : "", cookie);

	bool finished = story(&o);
	kill_all();
	bool pass = check(&o, finished);
	printf("cluster demo: %s (%d jobs, %.1f s)\n", pass ? "PASS" : "FAIL", o.jobs, elapsed());
	fflush(stdout);
	return pass ? 0 : 1;
}
